"""`models`: per-layer shapes, parameters and MACs of every model."""

from __future__ import annotations

import argparse

from ..errors import EXIT_OK


def add(sub) -> None:
    sub.add_parser("models", help="per-layer shapes, parameters and MACs of every model").set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.models import create_model, list_models, summarize  # noqa: PLC0415 (cli: start-up)

    for name in list_models():
        rows = summarize(create_model(name))
        print(f"{name}: {sum(r.params for r in rows):,} parameters, {sum(r.macs for r in rows):,} MACs per image")
        print(f"  {'layer':<10}{'kind':<10}{'output':<16}{'params':>10}{'MACs':>12}")
        for r in rows:
            shape = "x".join(map(str, r.output_shape))
            print(f"  {r.name:<10}{r.kind:<10}{shape:<16}{r.params:>10,}{r.macs:>12,}")
    return EXIT_OK
