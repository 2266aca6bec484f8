"""Caption quality on held-out synthetic scenes: BLEU-1..4, CIDEr, distinct-n.

    python -m stylize_rt.benchmarks.caption_quality [--model DIR] [--scenes 500] [--beam 3]

Runs the exported captioner with the runtime only (ONNX Runtime, no torch) on scenes from
the held-out ``test`` seed stream, which training never draws from, and prints the scores
with the command that reproduces the model (from its ``model.json`` card or checkpoint).

Scorers are established packages, not hand-written metrics: BLEU from sacrebleu
(corpus BLEU, multiple references, ``tokenize="none"`` on our own word split, reported on
a 0..1 scale), CIDEr-D from pycocoevalcap when it is installed. distinct-n is the ratio
of unique to total n-grams over all generated captions (the usual diversity measure).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from stylize_rt.runtime.tokenizer import split_words


def _tok(text: str) -> str:
    return " ".join(split_words(text))


def bleu_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 (0..1) with sacrebleu; every hypothesis may have several references."""
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError("need one non-empty reference list per hypothesis")
    if any(not refs for refs in references):
        raise ValueError("every hypothesis needs at least one reference")
    width = max(len(r) for r in references)
    # sacrebleu wants equally long reference streams; repeating a reference changes nothing
    # (clipped counts take the max over references, the closest length is the same).
    streams = [[_tok(refs[min(k, len(refs) - 1)]) for refs in references] for k in range(width)]
    hyps = [_tok(h) for h in hypotheses]
    out = {}
    for n in range(1, 5):
        metric = BLEU(tokenize="none", max_ngram_order=n, effective_order=False)
        out[f"bleu{n}"] = metric.corpus_score(hyps, streams).score / 100.0
    return out


def cider_score(hypotheses: list[str], references: list[list[str]]) -> float | None:
    """CIDEr-D (pycocoevalcap's scorer) on our tokenization; None when the package is absent."""
    try:
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        return None
    gts = {i: [_tok(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [_tok(h)] for i, h in enumerate(hypotheses)}
    score, _ = Cider().compute_score(gts, res)
    return float(score)


def distinct_n(captions: list[str], n: int) -> float:
    """Unique n-grams / all n-grams over the captions (0 when there are none)."""
    grams = [tuple(w[i : i + n]) for w in (split_words(c) for c in captions) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def caption_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, float | None]:
    scores: dict[str, float | None] = dict(bleu_scores(hypotheses, references))
    scores["cider"] = cider_score(hypotheses, references)
    scores["distinct1"] = distinct_n(hypotheses, 1)
    scores["distinct2"] = distinct_n(hypotheses, 2)
    scores["captions"] = len(hypotheses)
    return scores


def format_scores(scores: dict) -> str:
    parts = [f"BLEU-{n} {scores[f'bleu{n}']:.3f}" for n in range(1, 5)]
    cider = scores.get("cider")
    parts.append("CIDEr-D n/a (pip install pycocoevalcap)" if cider is None else f"CIDEr-D {cider:.3f}")
    parts.append(f"distinct-2 {scores['distinct2']:.3f}")
    return ", ".join(parts)


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
    from stylize_rt.runtime.captioner import Captioner
    from stylize_rt.training.scenes import make_scenes, render_scenes

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
    from stylize_rt.errors import StylizeError

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
    try:
        results = evaluate_exported(args.model, args.scenes, args.seed, args.beam or [1, 3],
                                    render_size=args.render_size)
    except StylizeError as exc:
        print(f"caption_quality: error: {exc}", file=sys.stderr)
        return exc.exit_code
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
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
