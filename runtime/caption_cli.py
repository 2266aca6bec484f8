"""Subcommands for captions (`stylize-rt caption`): runtime only, no torch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylize_rt.caption_facts import describe
from stylize_rt.errors import EXIT_SKIPPED, BadInputError
from stylize_rt.imageio import IMAGE_SUFFIXES, read_image
from stylize_rt.runtime.captioner import Captioner


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands to ``stylize-rt``."""
    p = subparsers.add_parser(
        "caption",
        help="say what is in an image, the way a person would (ONNX Runtime, no torch)",
        description="Caption one or more images with an exported captioner folder. Default model: the embedded "
        "fact captioner: an ImageNet classifier (EfficientNet-Lite0, INT8), OpenCV's Haar face detector and colour "
        "rules recognise what is in the picture, and a small decoder says it casually, hedged by how sure the "
        "classifier is (\"not sure what that is, but it's mostly blue\"). It knows ImageNet's 1000 classes "
        "(as 271 everyday nouns), faces, colours, brightness and layout; docs/CAPTIONER.md lists its limits.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image file(s) OpenCV can read, or folders of them")
    p.add_argument("--model", metavar="DIR", help="exported captioner folder (default: embedded 'captioner')")
    p.add_argument("--beam", type=int, default=1, metavar="N", help="beam width (default 1 = greedy)")
    p.add_argument("--length-penalty", type=float, default=1.0, metavar="A",
                   help="beam search: rank finished captions by logprob / length**A (default 1: mean "
                   "log-probability per word, so wide beams do not prefer the shortest caption)")
    p.add_argument("--sample", action="store_true",
                   help="sample a caption (nucleus sampling) instead of searching: a different one every run")
    p.add_argument("--temperature", type=float, default=0.8, metavar="T", help="--sample: temperature (default 0.8)")
    p.add_argument("--top-p", type=float, default=0.9, metavar="P", help="--sample: nucleus mass (default 0.9)")
    p.add_argument("--seed", type=int, help="--sample: random seed (default: a fresh one)")
    p.add_argument("--facts", action="store_true", help="also print what was recognised (fact captioners)")
    p.add_argument("--no-faces", action="store_true", help="skip face detection (fact captioners; faster)")
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
    if args.sample and (args.temperature <= 0 or not 0 < args.top_p <= 1):
        raise BadInputError(f"--temperature must be > 0 and --top-p in (0, 1], got {args.temperature}, {args.top_p}")
    if args.sample and args.beam != 1:
        raise BadInputError("--sample and --beam are alternatives: sample, or search with a beam")
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
    captioner = Captioner(args.model, threads=args.threads, faces=not args.no_faces, seed=args.seed)
    temperature = args.temperature if args.sample else 0.0
    try:
        for path, frame in frames.items():
            text, facts = captioner.describe(frame, beam=args.beam, length_penalty=args.length_penalty,
                                             temperature=temperature, top_p=args.top_p)
            print(f"{path}: {text}" if len(paths) > 1 else text, flush=True)
            if args.facts and facts is not None:
                print(f"  facts: {describe(facts, captioner.coder.table)}", flush=True)
    finally:
        captioner.close()
    if problems:
        print(f"stylize-rt: captioned {len(frames)} of {len(paths)} images; {len(problems)} skipped", file=sys.stderr)
        return EXIT_SKIPPED
    return 0
