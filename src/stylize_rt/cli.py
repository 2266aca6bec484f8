"""``stylize-rt``: one command, one subcommand per job; ``run`` is the default.

Each stage contributes its subcommands through a ``register`` function; handlers import
torch-backed modules only when they run, so ``--help`` and the runtime commands work in an
install without torch. This module is the top of the layer order: it imports every stage.
"""

from __future__ import annotations

import argparse
import sys

from stylize_rt import __version__
from stylize_rt.benchmarks import add_style_cli
from stylize_rt.benchmarks import cli as benchmarks_cli
from stylize_rt.engines import cli as engines_cli
from stylize_rt.errors import run_reporting_errors
from stylize_rt.export import cli as export_cli
from stylize_rt.runtime import batch_cli, caption_cli
from stylize_rt.runtime import cli as runtime_cli
from stylize_rt.training import cli as training_cli

# Modules that add subcommands (each has ``register(subparsers)``), in help order.
COMMAND_MODULES = (runtime_cli, caption_cli, batch_cli, training_cli, export_cli, engines_cli, benchmarks_cli)
DEFAULT_COMMAND = "run"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylize-rt",
        description="Real-time neural style transfer: train, export, build engines, run, benchmark.",
        epilog="Without a subcommand, 'run' is assumed: stylize-rt --engine gen.plan --camera 0. "
        "Exit codes: 0 ok, 1 error, 2 bad input or missing dependency, 3 output not writable, "
        "4 done but some inputs skipped (named on stderr), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"stylize-rt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        kinds = module.register(subparsers)
        if module is training_cli:
            add_style_cli.register(kinds)  # `train style`: trains, then re-exports and measures
    return parser


def _with_default_command(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    commands = set()
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no public API for this
        commands.update(action.choices)
    if not argv or argv[0] in commands or argv[0] in ("-h", "--help", "--version"):
        return argv
    return [DEFAULT_COMMAND, *argv]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(_with_default_command(argv, parser))
    return run_reporting_errors(lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
