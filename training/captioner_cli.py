"""``stylize-rt train captioner``: MLE training, then optional caption-GAN fine-tuning."""

from __future__ import annotations

import argparse

from stylize_rt.errors import BadInputError
from stylize_rt.training.caption_metrics import format_scores
from stylize_rt.training.generator_cli import require_torch
from stylize_rt.training.threads import apply_threads


def register(kinds: argparse._SubParsersAction) -> None:
    """Add the ``captioner`` parser under ``stylize-rt train``."""
    p = kinds.add_parser(
        "captioner",
        help="train the spoken-style captioner (default: on synthetic facts; or shape scenes, or a COCO-format set)",
        description="Train the captioner with teacher-forced MLE, then (with --gan-steps N) fine-tune it "
        "adversarially: a conditional caption discriminator rewards the captioner through REINFORCE with a "
        "baseline. The default (--data facts) trains the fact captioner the runtime uses on real frames: its "
        "decoder speaks about recognised facts (nouns with their confidence, faces, colours, brightness, "
        "layout), learned from synthetic fact sets and a wide casual grammar, fresh every step (no images). "
        "Export it with `stylize-rt export captioner`, which adds the ImageNet encoder. "
        "Writes a checkpoint directory (config.json, captioner.safetensors, tokenizer.json, and nouns.json "
        "for facts) and prints held-out BLEU-1..4, CIDEr-D and distinct-2 before and after.",
    )
    p.add_argument("-o", "--out", required=True, help="checkpoint directory to write (replaced atomically)")
    data = p.add_argument_group("data (default: synthetic facts)")
    data.add_argument("--data", choices=("facts", "scenes"), default="facts",
                      help="facts: synthetic fact sets + grammar sentences (the product captioner, default); "
                      "scenes: rendered shape scenes (an image captioner); --coco selects COCO")
    data.add_argument("--eval-facts", type=int, default=500, help="held-out synthetic fact sets (default 500)")
    data.add_argument("--coco", metavar="JSON", help="COCO-format caption file (an image captioner on photos)")
    data.add_argument("--coco-images", metavar="DIR", help="folder holding the COCO file's images")
    data.add_argument("--scenes", type=int, default=20000, help="synthetic training scenes (default 20000)")
    data.add_argument("--eval-scenes", type=int, default=500, help="held-out synthetic scenes (default 500)")
    data.add_argument("--image-size", type=int, default=64, help="square input size (default 64)")
    data.add_argument("--render-scale-max", type=float, default=1.0, metavar="S",
                      help="draw training scenes at up to S x the input size, then area-downsample "
                      "(robustness to frames of other sizes; default 1 = drawn at the input size)")
    data.add_argument("--min-word-count", type=int, default=1,
                      help="words seen fewer times become <unk> (default 1; 5 is usual for COCO)")
    mle = p.add_argument_group("maximum likelihood")
    mle.add_argument("--init", metavar="CKPT", help="start from this captioner checkpoint (weights + tokenizer); "
                     "with --steps 0 only the GAN phase runs")
    mle.add_argument("--steps", type=int, help="MLE updates (default 5000 for facts, 2000 for images; 0 with --init)")
    mle.add_argument("--batch-size", type=int, default=64)
    mle.add_argument("--lr", type=float, default=2e-3)
    gan = p.add_argument_group("adversarial fine-tuning")
    gan.add_argument("--gan-steps", type=int, default=0, help="policy-gradient updates (default 0: no GAN)")
    gan.add_argument("--disc-pretrain", type=int, default=300, help="discriminator updates first (default 300)")
    gan.add_argument("--gan-lr", type=float, default=5e-5, help="captioner learning rate in the GAN phase")
    gan.add_argument("--disc-lr", type=float, default=1e-3)
    gan.add_argument("--mle-weight", type=float, default=0.5, help="MLE loss mixed into GAN updates (default 0.5)")
    gan.add_argument("--baseline", choices=("greedy", "mean"), default="greedy",
                     help="REINFORCE baseline: self-critical greedy reward or moving average")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: 1 on up to 2 usable cores, else half of them)")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    if args.steps is None:
        args.steps = 5000 if args.data == "facts" and not args.coco else 2000
    if args.steps < 0 or args.batch_size < 1 or args.scenes < 1 or args.eval_scenes < 1 or args.gan_steps < 0 \
            or args.eval_facts < 1:
        raise BadInputError("--batch-size, --scenes, --eval-scenes and --eval-facts must be positive, "
                            "--steps and --gan-steps >= 0")
    if args.steps == 0 and not (args.init and args.gan_steps):
        raise BadInputError("--steps 0 trains nothing: use it with --init CKPT and --gan-steps N")
    if args.render_scale_max < 1.0:
        raise BadInputError(f"--render-scale-max must be at least 1, got {args.render_scale_max}")
    if bool(args.coco) != bool(args.coco_images):
        raise BadInputError("--coco and --coco-images go together")
    require_torch()
    from stylize_rt.training.caption_gan import GanConfig  # torch, checked just above
    from stylize_rt.training.train_captioner import TrainConfig, train  # torch

    config = TrainConfig(
        out=args.out,
        data="coco" if args.coco else args.data,
        eval_facts=args.eval_facts,
        coco_json=args.coco,
        coco_images=args.coco_images,
        train_scenes=args.scenes,
        eval_scenes=args.eval_scenes,
        image_size=args.image_size,
        min_word_count=args.min_word_count,
        render_scale_max=args.render_scale_max,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        init=args.init,
        threads=apply_threads(args.threads),
        gan=GanConfig(
            steps=args.gan_steps,
            disc_pretrain=args.disc_pretrain if args.gan_steps else 0,
            batch_size=args.batch_size,
            generator_lr=args.gan_lr,
            disc_lr=args.disc_lr,
            mle_weight=args.mle_weight,
            baseline=args.baseline,
        ),
    )
    try:
        report = train(config)
    except ValueError as exc:  # config values the model rejects (e.g. image size)
        raise BadInputError(str(exc)) from None
    label = "MLE" if args.steps else f"MLE ({args.init})"
    print(f"held-out after {label}: {format_scores(report['mle']['held_out'])} "
          f"(sampled distinct-2 {report['mle']['held_out']['sampled_distinct2']:.3f})")
    if "gan" in report:
        print(f"held-out after GAN: {format_scores(report['gan']['held_out'])} "
              f"(sampled distinct-2 {report['gan']['held_out']['sampled_distinct2']:.3f})")
    print(f"wrote {args.out} in {report['wall_s']:.0f} s")
    return 0
