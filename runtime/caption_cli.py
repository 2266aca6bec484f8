"""Subcommands for captions (`stylize-rt caption`): runtime only, no torch."""

from __future__ import annotations

import argparse

from stylize_rt.errors import BadInputError
from stylize_rt.imageio import read_image
from stylize_rt.runtime.captioner import Captioner


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands to ``stylize-rt``."""
    p = subparsers.add_parser(
        "caption",
        help="say what is in an image, the way a person would (ONNX Runtime, no torch)",
        description="Caption one or more images with an exported captioner folder "
        "(encoder.onnx, decoder_step.onnx, tokenizer.json, captioner.json). "
        "Default model: the embedded captioner, trained on synthetic scenes of shapes.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image file(s) OpenCV can read")
    p.add_argument("--model", metavar="DIR", help="exported captioner folder (default: embedded 'captioner')")
    p.add_argument("--beam", type=int, default=1, metavar="N", help="beam width (default 1 = greedy)")
    p.add_argument("--length-penalty", type=float, default=0.0, metavar="A",
                   help="beam search: rank finished captions by logprob / length**A (default 0)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    p.set_defaults(handler=run_caption)


def run_caption(args: argparse.Namespace) -> int:
    if args.beam < 1:
        raise BadInputError(f"--beam must be at least 1, got {args.beam}")
    frames = [read_image(path) for path in args.images]  # all inputs checked before the model loads
    captioner = Captioner(args.model, threads=args.threads)
    try:
        for path, frame in zip(args.images, frames):
            text = captioner.caption(frame, beam=args.beam, length_penalty=args.length_penalty)
            print(f"{path}: {text}" if len(args.images) > 1 else text)
    finally:
        captioner.close()
    return 0
