"""Subcommands for captions (`stylize-rt caption`): runtime only, no torch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylize_rt.errors import EXIT_SKIPPED, BadInputError
from stylize_rt.imageio import IMAGE_SUFFIXES, read_image
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
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image file(s) OpenCV can read, or folders of them")
    p.add_argument("--model", metavar="DIR", help="exported captioner folder (default: embedded 'captioner')")
    p.add_argument("--beam", type=int, default=1, metavar="N", help="beam width (default 1 = greedy)")
    p.add_argument("--length-penalty", type=float, default=1.0, metavar="A",
                   help="beam search: rank finished captions by logprob / length**A (default 1: mean "
                   "log-probability per word, so wide beams do not prefer the shortest caption)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    p.set_defaults(handler=run_caption)


def image_paths(items: list[str]) -> list[Path]:
    """The files named, with each folder replaced by its images (name order); a folder without
    images is bad input."""
    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise BadInputError(f"no images in {item} (looked for {', '.join(IMAGE_SUFFIXES)})")
            paths += found
        else:
            paths.append(item)
    return paths


def run_caption(args: argparse.Namespace) -> int:
    if args.beam < 1:
        raise BadInputError(f"--beam must be at least 1, got {args.beam}")
    paths = image_paths(args.images)
    frames: dict[Path, object] = {}
    problems: list[str] = []
    for path in paths:  # every input is read before the model loads: bad ones are named up front
        try:
            frames[path] = read_image(path)
        except BadInputError as exc:
            if len(paths) == 1:
                raise
            problems.append(str(exc))
            print(f"stylize-rt: warning: skipped {path}: {exc}", file=sys.stderr)
    if not frames:
        raise BadInputError(f"none of the {len(paths)} images could be read")
    captioner = Captioner(args.model, threads=args.threads)
    try:
        for path, frame in frames.items():
            text = captioner.caption(frame, beam=args.beam, length_penalty=args.length_penalty)
            print(f"{path}: {text}" if len(paths) > 1 else text, flush=True)
    finally:
        captioner.close()
    if problems:
        print(f"stylize-rt: captioned {len(frames)} of {len(paths)} images; {len(problems)} skipped", file=sys.stderr)
        return EXIT_SKIPPED
    return 0
