"""``python -m stylize_rt.training generator ...``: the entry point ``torchrun`` launches.

``torchrun --nproc-per-node N -m stylize_rt.training generator --content DIR --out RUN ...``
trains one generator data-parallel over N processes (see :mod:`.distributed`); alone it is
``stylize-rt train generator``. The options are that command's.
"""

from __future__ import annotations

import argparse
import sys

from stylize_rt.errors import run_reporting_errors
from stylize_rt.training import generator_cli

PROG = "python -m stylize_rt.training"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Train a generator; under torchrun, data-parallel (DistributedDataParallel).",
        epilog="torchrun --nproc-per-node 2 -m stylize_rt.training generator --content photos/ --out runs/ddp")
    kinds = parser.add_subparsers(dest="kind", metavar="MODEL", required=True)
    generator_cli.register(kinds)
    args = parser.parse_args(argv)
    return run_reporting_errors(lambda: args.handler(args), prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
