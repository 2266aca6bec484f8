"""Progress bars: tqdm on stderr, drawn only where stderr is a terminal.

In a log file or a CI transcript a redrawn bar is a stream of carriage returns, so a run
whose stderr is not a terminal shows no bar (its summary lines still say what was done).
"""

from __future__ import annotations

import sys
from typing import Any, Iterable

from tqdm import tqdm


def progress_bar(iterable: Iterable | None = None, **options: Any) -> tqdm:
    """``tqdm(iterable, **options)`` on stderr, disabled off a terminal; options as tqdm's."""
    options.setdefault("file", sys.stderr)
    options.setdefault("dynamic_ncols", True)
    options.setdefault("disable", None)  # tqdm: None means "only when the file is a tty"
    return tqdm(iterable, **options)


__all__ = ["progress_bar"]
