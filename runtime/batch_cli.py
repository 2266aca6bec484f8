"""``stylize-rt batch``: a folder, videos or globs to a folder of stylized files, here or on Ray.

The job itself is :mod:`stylize_rt.runtime.batch`; this module turns arguments into a
``BatchConfig``, prints the summary and maps it to the exit code (4 when some inputs were skipped).
"""

from __future__ import annotations

import argparse
import sys

from stylize_rt.errors import EXIT_SKIPPED
from stylize_rt.runtime.batch import REPORT_FILE, BatchConfig, run_batch
from stylize_rt.runtime.cli import add_style_options, style_choice
from stylize_rt.runtime.session import ModelChoice

EXIT_CODES = ("exit codes: 0 every input stylized or already done, 1 error, 2 bad arguments, input not found or "
              "missing dependency (nothing ran), 3 output not writable, 4 some inputs skipped (unreadable, or an "
              "existing output kept; each named, the others written), 130 interrupted")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``stylize-rt batch``."""
    p = subparsers.add_parser(
        "batch",
        help="stylize folders, videos and globs into an output folder (here, or on a Ray cluster with --ray)",
        description="Stylize every image and video of the inputs into --output (folder structure kept; a video "
        "becomes a video, its frames in order). Resumable: outputs that exist and decode are skipped; nothing "
        "is overwritten unless --overwrite; a corrupt input is reported and skipped. With --ray, Ray Data runs "
        "the same work on an actor pool (each actor opens the model once); a dead actor is restarted and its "
        f"work retried. A JSON report goes to OUTPUT/{REPORT_FILE}.",
        epilog=EXIT_CODES,
    )
    p.add_argument("--input", dest="inputs", action="extend", nargs="+", required=True, metavar="DIR|VIDEO|GLOB",
                   help="folders (recursive), images, videos or quoted globs (repeatable)")
    p.add_argument("--output", required=True, metavar="DIR", help="output folder")
    model = p.add_argument_group("model")
    model.add_argument("--engine", metavar="MODEL",
                       help="model file or triton://HOST:PORT/NAME (default: the embedded default style)")
    model.add_argument("--backend", default="auto", help="backend that runs the model (default: by file type)")
    model.add_argument("--threads", type=int, default=0,
                       help="CPU threads per worker (0: the backend's default; with --ray: --cpus-per-actor)")
    model.add_argument("--layout", choices=("nhwc", "nchw"), help="the model's tensor layout (default: its metadata)")
    model.add_argument("--input-range", choices=("0-255", "0-1", "-1-1"),
                       help="the model's pixel value range (default: its metadata, else probed)")
    add_style_options(p, timeline=False)
    p.add_argument("--batch", type=int, default=4, help="images per model call, frames per call for videos (default 4)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    ray = p.add_argument_group("ray")
    ray.add_argument("--ray", dest="ray_address", nargs="?", const="local", metavar="ADDRESS",
                     help="run on Ray: without ADDRESS a local Ray on this machine, else a cluster address "
                     "(e.g. auto, ray://head:10001); needs pip install 'stylize-rt[scale]'")
    ray.add_argument("--actors", type=int, default=1, help="Ray actors, each with the model open once (default 1)")
    ray.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs Ray reserves per actor (default 1)")
    ray.add_argument("--gpus-per-actor", type=float, default=0.0,
                     help="GPUs per actor (fractions share a GPU: 0.5 = two actors per GPU; default 0)")
    p.add_argument("--report", metavar="PATH", help=f"JSON report (default OUTPUT/{REPORT_FILE})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=batch_command)


def batch_config(args: argparse.Namespace) -> BatchConfig:
    model = ModelChoice(args.engine, args.backend, args.threads, None, args.layout, args.input_range)
    return BatchConfig(inputs=tuple(args.inputs), output=args.output, model=model, style=style_choice(args),
                       batch=args.batch,
                       overwrite=args.overwrite, ray_address=args.ray_address, actors=args.actors,
                       cpus_per_actor=args.cpus_per_actor, gpus_per_actor=args.gpus_per_actor,
                       progress=not args.no_progress, report=args.report)


def batch_command(args: argparse.Namespace) -> int:
    summary = run_batch(batch_config(args))
    for line in summary.lines():
        print(line, file=sys.stderr)
    return EXIT_SKIPPED if summary.failed or summary.plan.kept else 0
