"""How many CPU threads training uses: an explicit ``--threads N``, or a default that holds up on
a shared machine.

On a busy 2-core machine torch's default (one thread per core, spinning OpenMP workers) ran
generator training about 10x slower than one thread (0.4-0.6 steps/s vs 5.1): idle workers
spin for cores that other processes hold. The default therefore leaves headroom: one thread
up to 2 usable cores, half the usable cores above that.
"""

from __future__ import annotations

import os

from stylize_rt.errors import BadInputError


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads(cores: int | None = None) -> int:
    cores = usable_cores() if cores is None else cores
    return 1 if cores <= 2 else cores // 2


def apply_threads(requested: int | None) -> int:
    """Set torch's intra-op threads to ``requested`` (None: :func:`default_threads`); returns the count."""
    import torch  # training needs torch; the CLIs call this only after checking it is installed

    threads = default_threads() if requested is None else requested
    if threads < 1:
        raise BadInputError(f"--threads must be at least 1 (got {threads})")
    torch.set_num_threads(threads)
    return threads


__all__ = ["usable_cores", "default_threads", "apply_threads"]
