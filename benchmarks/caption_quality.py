"""Caption quality on held-out synthetic scenes: BLEU-1..4, CIDEr, distinct-n.

    python -m stylize_rt.benchmarks.caption_quality [--model DIR] [--scenes 500] [--beam 3]

Runs the exported captioner with the runtime only (ONNX Runtime, no torch) on scenes from
the held-out ``test`` seed stream, which training never draws from, and prints the scores
with the command that reproduces the model (from its ``model.json`` card or checkpoint).
The scorers are in ``training.caption_metrics``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from stylize_rt.errors import run_reporting_errors
from stylize_rt.fileio import write_atomic
from stylize_rt.runtime.captioner import Captioner
from stylize_rt.training.caption_metrics import caption_scores, format_scores
from stylize_rt.training.scenes import make_scenes, render_scenes


def _source_of(model_dir: Path) -> str:
    """The reproducing command: from the embedded card, else from the export's config."""
    card = model_dir / "model.json"
    if card.is_file():
        return json.loads(card.read_text()).get("source", "unknown")
    config = model_dir / "captioner.json"
    if config.is_file():
        train = json.loads(config.read_text()).get("checkpoint", {}).get("train")
        if train:
            return f"trained with {json.dumps(train, sort_keys=True)}"
    return "unknown"


def evaluate_exported(
    model_dir: str | Path | None, scenes: int, seed: int, beams: list[int], threads: int = 1,
    render_size: int | None = None,
) -> dict:
    """Score an exported captioner on held-out synthetic scenes with the ONNX runtime.

    ``render_size`` draws the scenes at another resolution; the runtime then area-resizes
    them to the model's input, as it does with camera frames (a robustness check).
    """
    captioner = Captioner(model_dir, threads=threads)
    held_out = make_scenes(scenes, seed, "test")
    render_size = render_size or captioner.spec.image_size
    images = render_scenes(held_out, render_size)
    references = [s.captions() for s in held_out]
    results: dict = {"model": str(captioner.directory), "scenes": scenes, "seed": seed, "split": "test",
                     "render_size": render_size,
                     "source": _source_of(captioner.directory), "by_beam": {}}
    for beam in beams:
        start = time.perf_counter()
        hyps = captioner.caption_batch(list(images), beam=beam)
        wall = time.perf_counter() - start
        scores = caption_scores(hyps, references)
        scores["ms_per_image"] = 1000 * wall / len(images)
        scores["examples"] = [{"caption": h, "reference": r[0]} for h, r in zip(hyps[:5], references[:5])]
        results["by_beam"][str(beam)] = scores
    captioner.close()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stylize_rt.benchmarks.caption_quality",
                                description="Caption quality of an exported captioner on held-out synthetic scenes.")
    p.add_argument("--model", metavar="DIR", help="exported captioner folder (default: the embedded one)")
    p.add_argument("--scenes", type=int, default=500, help="held-out scenes (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out stream (default 0)")
    p.add_argument("--beam", type=int, action="append", help="beam width(s) to score (default: 1 and 3)")
    p.add_argument("--render-size", type=int, metavar="PX",
                   help="draw the scenes at PX x PX (default: the model's input size); the runtime resizes them")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    return run_reporting_errors(lambda: _report(args), prog="caption_quality")


def _report(args: argparse.Namespace) -> int:
    results = evaluate_exported(args.model, args.scenes, args.seed, args.beam or [1, 3], render_size=args.render_size)
    print(f"captioner: {results['model']}")
    print(f"reproduce: {results['source']}")
    print(f"held-out synthetic scenes: {args.scenes} (split 'test', seed {args.seed}; never drawn in training), "
          f"drawn at {results['render_size']} px")
    print("BLEU: sacrebleu corpus BLEU, 5 spoken-style references per scene, scale 0..1")
    for beam, s in results["by_beam"].items():
        print(f"  beam {beam}: {format_scores(s)}, {s['ms_per_image']:.1f} ms/image")
    for ex in results["by_beam"][next(iter(results["by_beam"]))]["examples"][:3]:
        print(f"  e.g. {ex['caption']!r}  (a reference: {ex['reference']!r})")
    if args.json:
        write_atomic(args.json, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
