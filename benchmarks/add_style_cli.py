"""``stylize-rt train style``: its parser and handler (the work is in ``benchmarks.add_style``, which needs torch)."""

from __future__ import annotations

import argparse
import sys

from stylize_rt.benchmarks.quality import EDGE_TARGET, FLICKER_TARGET
from stylize_rt.errors import BadInputError
from stylize_rt.models import resolve_model
from stylize_rt.training.generator_cli import require_torch
from stylize_rt.training.threads import apply_threads

DEFAULTS = dict(steps=300, size=128, batch=4, lr=1e-2)


def register(kinds: argparse._SubParsersAction) -> None:
    """Add the ``style`` parser under ``stylize-rt train``."""
    p = kinds.add_parser(
        "style", help="add a style to a multi-style model (only its norm parameters train; minutes on a CPU)",
        description="Add a style to a multi-style model folder: every shared convolution is frozen and only the "
        "new style's conditional-norm parameters train; the folder's ONNX (and INT8) graphs are re-exported with "
        "the style appended, atomically. Prints the new style's quality numbers.",
    )
    p.add_argument("image", metavar="STYLE_IMAGE", help="the new style's image (or a built-in style name, e.g. tartan)")
    p.add_argument("--to", required=True, metavar="MODEL_DIR",
                   help="multi-style model folder (config.json + generator.safetensors), or an embedded model's name")
    p.add_argument("--name", required=True, help="the new style's name (letters, digits, _ . -)")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help=f"training steps (default {DEFAULTS['steps']})")
    p.add_argument("--size", type=int, default=DEFAULTS["size"], help=f"training crop (default {DEFAULTS['size']})")
    p.add_argument("--batch", type=int, default=DEFAULTS["batch"], help=f"batch size (default {DEFAULTS['batch']})")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help=f"learning rate of the norm rows (default {DEFAULTS['lr']:g})")
    p.add_argument("--content", default="builtin", help="content photos folder, or 'builtin' (default)")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: 1 on up to 2 usable cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_add_style)


def run_add_style(args: argparse.Namespace) -> int:
    require_torch()
    if args.steps < 1 or args.size < 32 or args.batch < 1 or args.lr <= 0:
        raise BadInputError("--steps and --batch must be >= 1, --size >= 32 and --lr > 0")
    folder = resolve_model(args.to)
    threads = apply_threads(args.threads)
    print(f"adding style {args.name!r} to {folder} ({threads} CPU thread(s)); only its norm parameters train",
          file=sys.stderr)
    from stylize_rt.benchmarks.add_style import add_style  # torch: adding a style trains

    summary = add_style(args.image, folder, args.name, args.steps, args.size, args.batch, args.lr, args.content,
                        progress=not args.no_progress, log=lambda m: print(m, file=sys.stderr))
    q = summary["quality"]
    verdict = lambda ok: "ok" if ok else "BELOW TARGET"  # noqa: E731
    print(f"added style {summary['name']!r} as style {summary['index']} of {len(summary['styles'])} "
          f"({summary['wall_seconds']:.0f} s, {summary['steps_per_second']:.2f} steps/s)")
    print(f"  held-out edge correlation (worst photo): {q['edge_corr_min']:.3f} (target >= {EDGE_TARGET:g}: "
          f"{verdict(q['edge_corr_min'] >= EDGE_TARGET)})")
    print(f"  flicker ratio under 2/255 noise (worst photo): {q['flicker_max']:.3f} (target <= {FLICKER_TARGET:g}: "
          f"{verdict(q['flicker_max'] <= FLICKER_TARGET)})")
    if summary["int8"] is not None:
        print(f"  int8 graph: {'passed' if summary['int8']['passed'] else 'failed'} its quality floor "
              f"(worst PSNR {summary['int8']['psnr_db_min']:.1f} dB)")
    print(f"  styles: {', '.join(summary['styles'])}")
    return 0


__all__ = ["register", "run_add_style"]
