"""Command-line values, parsed once for the CLI and the pytest plugin: each parser names
the option it reads in its message, so a bad value is refused in one line that says which.

    --rounds       positive("rounds")("5") -> 5
    --world-sizes  positives("world sizes", "1,2,4")("1,2") -> (1, 2)
    --devices      choices("device", ("cpu", "accel"))("cpu") -> ("cpu",)
    --comparisons  action=phrases("comparison", ("mlp bs64",)): mlp bs64 -> ("mlp bs64",)
    --machine-label  label("epyc-2core") -> "epyc-2core"

Each returns a function for argparse's (or pytest's addoption's) `type=`. No torch here.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable

DIGITS = re.compile(r"\s*[0-9]+\s*")  # ASCII digits only: str.isdigit() takes '²', which int() refuses


def positive(what: str) -> Callable[[str], int]:
    """A positive whole number."""

    def parse(text: str) -> int:
        if not DIGITS.fullmatch(text) or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{what} must be a positive whole number (got {text!r})")
        return int(text)

    return parse


def positives(what: str, example: str) -> Callable[[str], tuple[int, ...]]:
    """Positive whole numbers separated by commas."""

    def parse(text: str) -> tuple[int, ...]:
        items = [s.strip() for s in text.split(",")]
        if not items or not all(DIGITS.fullmatch(s) and int(s) >= 1 for s in items):
            raise argparse.ArgumentTypeError(
                f"{what} must be positive whole numbers separated by commas, e.g. {example} (got {text!r})"
            )
        return _once(what, tuple(int(s) for s in items))

    return parse


def choices(what: str, known: Iterable[str]) -> Callable[[str], tuple[str, ...]]:
    """Names from `known`, separated by commas."""
    known = tuple(known)

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(s.strip() for s in text.split(",") if s.strip())
        bad = [i for i in items if i not in known]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(bad) or repr(text)}; choose from {', '.join(known)}"
            )
        return _once(what, items)

    return parse


def phrases(what: str, known: Iterable[str]) -> type[argparse.Action]:
    """An action for names of several words (nargs="+"): each name quoted, or its words given in
    order unquoted, as a shell splits `--comparisons mlp bs64` into two words."""
    known = tuple(known)

    class Phrases(argparse.Action):
        def __call__(self, parser, namespace, words, option_string=None):
            names, words_so_far = [], []
            for word in words:
                words_so_far.append(word)
                name = " ".join(words_so_far)
                if name in known:
                    names.append(name)
                    words_so_far = []
                elif not any(k.startswith(name + " ") for k in known):
                    break
            if words_so_far:
                raise argparse.ArgumentError(
                    self, f"unknown {what} {' '.join(words_so_far)!r}; choose from {'; '.join(known)}"
                )
            try:
                setattr(namespace, self.dest, _once(what, tuple(names)))
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentError(self, str(exc)) from None

    return Phrases


def _once(what: str, items: tuple) -> tuple:
    """The items, each listed once: a repeat would run (or count) its cases twice."""
    twice = sorted({str(i) for i in items if items.count(i) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{what} listed twice: {', '.join(twice)}; list each once")
    return items


def values_may_start_with_minus(parser: argparse.ArgumentParser) -> None:
    """Let `parser` take a word that starts with '-' and a digit (-2%, -0.1) as an option's
    value, as argparse already does for plain negative numbers: its type then refuses it
    with its own message ("threshold must be a positive number"), not "expected one
    argument". For parsers with no option of that shape (argparse keeps the matcher private)."""
    parser._negative_number_matcher = re.compile(r"^-\.?[0-9]")


def threshold(text: str) -> float:
    """A positive fraction, written as 10% or 0.1."""
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"threshold must be a positive number, e.g. 10% or 0.1 (got {text!r})")
    return value


def seconds(option: str, most: float) -> Callable[[str], float]:
    """A number of seconds above 0 and at most `most`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 < value <= most:
            raise argparse.ArgumentTypeError(
                f"{option} must be a number of seconds above 0, at most {most:g} (got {text!r})"
            )
        return value

    return parse


LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)  # a plain file name, in any locale
LABEL_MOST = 100  # characters
BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # reorder the text shown


def label_problem(text: str) -> str | None:
    """Why `text` cannot be a machine label (it names results/LABEL.json), or None: the one
    rule for `run`'s LABEL and every --machine-label."""
    bidi = [c for c in text if c in BIDI]
    if bidi:
        return (
            f"must not hold bidirectional control characters (U+{ord(bidi[0]):04X} here), which show "
            f"text in another order than it is stored; got {text!r}"
        )
    if len(text) > LABEL_MOST:
        return f"must be at most {LABEL_MOST} characters (got {len(text)})"
    if not LABEL.fullmatch(text):
        return f"must be a plain file name (letters, digits, . _ -), got {text!r}"
    return None


def label(text: str) -> str:
    """A machine label (label_problem's rule); "" stands for the default, the hostname."""
    why = label_problem(text) if text else None
    if why:
        raise argparse.ArgumentTypeError(f"a label {why}")
    return text


def seed(text: str) -> int:
    """A random seed: 0 to 2**32 - 1 (torch's generators take larger ones, but not every
    seed plus an epoch or a rank fits them)."""
    if not DIGITS.fullmatch(text) or int(text) > 2**32 - 1:
        raise argparse.ArgumentTypeError(f"--seed must be a whole number from 0 to {2**32 - 1} (got {text!r})")
    return int(text)


def port(text: str) -> int:
    """A TCP port: 0 (a free one) to 65535."""
    if not DIGITS.fullmatch(text) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"--port must be a whole number from 0 (a free one) to 65535 (got {text!r})")
    return int(text)
