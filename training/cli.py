"""``stylize-rt train generator|captioner``: one parser group, one module per model kind."""

from __future__ import annotations

import argparse

from stylize_rt.training import captioner_cli, generator_cli


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add ``train`` and its kinds; returns the kinds, where the top-level CLI adds ``style``
    (adding a style re-exports and measures, stages above training)."""
    train = subparsers.add_parser("train", help="train a style generator or a captioner, or add a style (needs torch)")
    kinds = train.add_subparsers(dest="kind", metavar="MODEL", required=True)
    generator_cli.register(kinds)
    captioner_cli.register(kinds)
    return kinds
