"""Markdown made safe from what result files hold: escaped strings, tables, percentages.

md_table(frame)     # a GitHub table, every string escaped, images/s as whole numbers
escape("# <b>x")    # no heading, tag, link or cell can come from a file
visible(text)       # bidirectional controls shown as escapes (\\u202e), not obeyed
"""

from __future__ import annotations

import html
import re

import pandas as pd

from ..parsing import BIDI

_MARKDOWN = re.compile(r"([\\`*_\[\]|])")  # with [ ] and < > escaped, no link or tag can form
_BIDI = re.compile(f"[{BIDI}]")


def visible(text: str) -> str:
    """Each bidirectional control character (which would show what follows reordered, a
    label from an old file reading as another) written as its escape, \\u202e."""
    return _BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def escape(value) -> str:
    """A string from a file made safe for one markdown line or table cell: whitespace runs
    (newlines too) become one space, so it can start no heading; HTML is escaped, and link,
    code, emphasis and table marks lose their meaning, so it can add no tag, link or cell;
    bidirectional controls are shown as escapes (visible), so it cannot reorder the line."""
    text = visible(html.escape(" ".join(str(value).split()), quote=False))
    return _MARKDOWN.sub(r"\\\1", text)


def md_table(frame: pd.DataFrame, floatfmt: str = ",.4g") -> str:
    """Markdown table, every string escaped; images/s shown as whole numbers."""
    if not len(frame):
        return "(none)"
    if "images/s" in frame:
        frame = frame.assign(**{"images/s": frame["images/s"].round().astype("Int64")})
    frame = frame.rename(columns=escape)
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].map(lambda v: escape(v) if isinstance(v, str) else v)
    return frame.to_markdown(index=False, floatfmt=floatfmt, intfmt=",")


def pct(x) -> str:
    """A fraction as a percentage with one decimal; blank for a missing value."""
    return "" if x is None or pd.isna(x) else f"{x:.1%}"
