"""Subcommands for captions (`stylize-rt caption`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands to ``stylize-rt``."""
