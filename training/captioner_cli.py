"""``stylize-rt train captioner``."""

from __future__ import annotations

import argparse


def register(kinds: argparse._SubParsersAction) -> None:
    """Add the ``captioner`` parser under ``stylize-rt train``."""
