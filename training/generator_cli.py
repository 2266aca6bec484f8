"""``stylize-rt train generator``."""

from __future__ import annotations

import argparse


def register(kinds: argparse._SubParsersAction) -> None:
    """Add the ``generator`` parser under ``stylize-rt train``."""
