"""Speed vs quality of generator widths and depths: the table users choose a size from.

``python -m stylize_rt.recipes.width_depth --steps 800 --threads 1``

For each layout (channels/residual blocks; default (8,16,16)/2, (16,32,32)/3, (24,48,64)/4):

1. train a single-style ``mosaic`` generator through the package ``Trainer`` with the shipped
   model's recipe (``recipes.embedded.RECIPES[DEFAULT_RECIPE]`` as one style, the one place the default recipe lives; only the
   layout, the style, the steps and the output folder are changed here), at ``--threads``;
2. export it (uint8-NHWC FP32 ONNX, the verified export pipeline);
3. measure its quality (``benchmarks.quality``: every target column and the style measures);
4. once all are exported, time them with ``stylize-rt bench`` (ONNX Runtime FP32 and INT8,
   640x360, batch 1, ``--threads``), layouts in turn for ``--bench-rounds`` rounds, medians.

Writes ``benchmarks/results/width_depth.json`` (``--json``) and a Markdown table
(``--markdown``, default ``benchmarks/results/width_depth.md``) for docs/MODELS.md. Timings on a
shared machine are provisional; ``--bench-only`` re-times a finished result's layouts.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from stylize_rt.benchmarks import quality, report
from stylize_rt.benchmarks.environment import REPO_ROOT
from stylize_rt.errors import EXIT_INTERRUPTED, BadInputError, StylizeError, run_reporting_errors
from stylize_rt.export.onnx_export import export_checkpoint
from stylize_rt.fileio import write_atomic
from stylize_rt.nets.generator import Generator, count_parameters, estimate_macs
from stylize_rt.recipes.cpu_matrix import run_bench_command
from stylize_rt.recipes.embedded import DEFAULT_RECIPE, RECIPES
from stylize_rt.training.data import held_out_photos
from stylize_rt.training.trainer import TrainConfig, Trainer

RESULTS = REPO_ROOT / "benchmarks" / "results"
STYLE = "mosaic"
LAYOUTS = ((8, 16, 16, 2), (16, 32, 32, 3), (24, 48, 64, 4))  # c1, c2, c3, residual blocks
SIZE = (360, 640)  # (height, width) of the speed column


def parse_layouts(text: str) -> list[tuple[int, int, int, int]]:
    """``"8,16,16/2;16,32,32/3"`` -> [(8, 16, 16, 2), (16, 32, 32, 3)]."""
    out = []
    for item in (p.strip() for p in text.split(";") if p.strip()):
        widths, sep, depth = item.partition("/")
        try:
            c = tuple(int(v) for v in widths.split(","))
            d = int(depth)
        except ValueError:
            raise BadInputError(f"--layouts: {item!r} is not C1,C2,C3/RES_BLOCKS (e.g. 16,32,32/3)") from None
        if not sep or len(c) != 3 or min(c) < 1 or d < 0:
            raise BadInputError(f"--layouts: {item!r} is not C1,C2,C3/RES_BLOCKS (e.g. 16,32,32/3)")
        out.append((*c, d))
    if not out:
        raise BadInputError("--layouts needs at least one layout")
    return out


def layout_name(layout: tuple[int, int, int, int]) -> str:
    return f"{layout[0]}-{layout[1]}-{layout[2]}_r{layout[3]}"


def base_recipe() -> dict:
    """The default embedded recipe's training settings for one style: the table compares layouts, so
    the style count stays out of it (a single-style network of the default recipe)."""
    train = dict(RECIPES[DEFAULT_RECIPE].train, styles=(STYLE,), multi_style=False)
    train.pop("style_stability", None)
    return train


def train_config(layout: tuple[int, int, int, int], steps: int, out: Path, progress: bool) -> TrainConfig:
    """The shipped recipe with this layout, one style and ``steps`` (nothing else changed)."""
    recipe = dict(base_recipe(), styles=(STYLE,), channels=tuple(layout[:3]), res_blocks=layout[3], steps=steps,
                  out=str(out), progress=progress)
    recipe["preview_every"] = 0
    return TrainConfig(**recipe)


def bench(onnx: Path, threads: int, seconds: float, workdir: Path) -> dict:
    """ORT FP32 and INT8 model-only p50 at 640x360 (one ``stylize-rt bench`` run)."""
    out = workdir / "bench.json"
    argv = ["bench", "--engine", str(onnx), "--backends", "onnxruntime", "--precision", "fp32,int8",
            "--sizes", f"{SIZE[1]}x{SIZE[0]}", "--batch", "1", "--seconds", f"{seconds:g}", "--warmup", "3",
            "--no-peak", "--json", str(out)]
    if threads:
        argv += ["--threads", str(threads)]
    code = run_bench_command(argv)
    if code != 0:
        raise StylizeError(f"stylize-rt bench failed for {onnx} (exit {code})")
    records = report.records_of(report.load_document(out))
    return {r.precision: r.p50_ms for r in records
            if r.mode == "model" and r.backend == "onnxruntime" and (r.height, r.width) == SIZE}


def bench_rounds(onnx_files: dict[str, Path], threads: int, seconds: float, rounds: int) -> dict[str, dict]:
    """Every layout timed once per round, layouts in turn, ``rounds`` times; per layout and precision
    the median of the rounds' p50s, so a change of the machine's load hits every layout alike."""
    times: dict[str, dict[str, list[float]]] = {name: {} for name in onnx_files}
    for _ in range(rounds):
        for name, onnx in onnx_files.items():
            for precision, p50 in bench(onnx, threads, seconds, onnx.parent).items():
                times[name].setdefault(precision, []).append(p50)
    return {name: {p: {"p50_ms": round(float(np.median(v)), 2), "fps": round(1000.0 / float(np.median(v)), 1),
                       "round_p50_ms": [round(x, 2) for x in v]} for p, v in per.items()}
            for name, per in times.items()}


def run_layout(layout, args, runs: Path, photos, measures, references) -> dict:
    name = layout_name(layout)
    out = runs / name
    if out.exists():
        shutil.rmtree(out)  # a fresh run: reproducing means starting from the seed
    cfg = train_config(layout, args.steps, out, not args.no_progress)
    t0 = time.perf_counter()
    result = Trainer(cfg).run()
    wall = time.perf_counter() - t0
    if result.interrupted:
        raise KeyboardInterrupt
    onnx = export_checkpoint(out / "final", out / "generator.onnx", io_layout="uint8_nhwc", precision="fp32",
                             log=lambda _m: None).path
    model = quality.ModelUnderTest(onnx, out / "final")
    model.read_cards(out / "final")
    q = quality.measure_model(model, photos, args.quality_settings, measures, references)
    q.pop("outputs")
    entry = q["styles"][STYLE]
    gen_cfg = cfg.generator_config()
    return {
        "layout": name,
        "channels": list(layout[:3]),
        "res_blocks": layout[3],
        "parameters": count_parameters(Generator(gen_cfg)),
        "gmac_640x360": round(estimate_macs(gen_cfg, SIZE[0], SIZE[1]) / 1e9, 3),
        "train": {"steps": result.step, "wall_seconds": round(wall, 1),
                  "steps_per_second": round(result.steps_per_second, 3), "threads": torch.get_num_threads()},
        "onnx": quality.display_path(onnx),
        "perception": model.perception,
        "quality": entry,
        "speed": {},  # filled by bench_rounds once every layout is exported
    }


def _speed(row: dict, precision: str, ref: dict | None) -> str:
    v = row["speed"].get(precision)
    if not v:
        return "-"
    r = ref["speed"].get(precision) if ref else None
    ratio = f", {v['p50_ms'] / r['p50_ms']:.2f}x" if r else ""
    return f"{v['p50_ms']:.1f} ({v['fps']:.0f} fps{ratio})"


def _reference_row(rows: list[dict]) -> dict | None:
    """The shipped layout's row, which the time ratios are taken against (same run)."""
    shipped = (list(base_recipe()["channels"]), base_recipe()["res_blocks"])
    return next((r for r in rows if (r["channels"], r["res_blocks"]) == shipped), None)


def markdown(rows: list[dict], nets: tuple[str, ...], perception: str | None) -> str:
    ref = _reference_row(rows)
    vs = f", time vs {'/'.join(map(str, ref['channels']))} / {ref['res_blocks']}" if ref else ""
    head = ["layout (channels / res blocks)", "params", "GMAC 640x360", "train steps/s",
            f"ORT FP32 640x360 p50 ms (fps{vs})", f"ORT INT8 640x360 p50 ms (fps{vs})", "edge corr min",
            "flicker noise / shift"]
    head += [f"patch s2o {n} (norm){'*' if n == perception else ''}" for n in nets]
    head += [f"Gram {n}{'*' if n == perception else ''}" for n in nets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r["quality"]["summary"]
        cells = [f"{'/'.join(map(str, r['channels']))} / {r['res_blocks']}", f"{r['parameters']:,}",
                 f"{r['gmac_640x360']:.2f}", f"{r['train']['steps_per_second']:.2f}", _speed(r, "fp32", ref),
                 _speed(r, "int8", ref), f"{s['edge_correlation_min']:.3f}",
                 f"{s['flicker_noise_max']:.2f} / {s['flicker_shift_max']:.2f}"]
        for n in nets:
            norm = s.get(f"patch_s2o_norm_{n}")
            cells.append(f"{s[f'patch_s2o_{n}_mean']:.3f}" + (f" ({norm:+.2f})" if norm is not None else ""))
        cells += [f"{s[f'gram_dist_{n}_mean']:.3f}" for n in nets]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stylize_rt.recipes.width_depth", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=800, help="training steps per layout (default 800)")
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads (default 1)")
    p.add_argument("--layouts", default=";".join(f"{a},{b},{c}/{d}" for a, b, c, d in LAYOUTS),
                   help="semicolon list of C1,C2,C3/RES_BLOCKS (default: %(default)s)")
    p.add_argument("--runs", default="runs/width_depth", help="training runs go here (default runs/width_depth)")
    p.add_argument("--json", default=str(RESULTS / "width_depth.json"), help="result file")
    p.add_argument("--markdown", default=str(RESULTS / "width_depth.md"), help="the table for docs/MODELS.md")
    p.add_argument("--bench-seconds", type=float, default=3.0, help="time budget per precision (default 3)")
    p.add_argument("--bench-rounds", type=int, default=3, help="timing rounds over all layouts (default 3)")
    p.add_argument("--bench-only", action="store_true",
                   help="no training: re-time the layouts of the result at --json (quality stays as measured)")
    p.add_argument("--frames", type=int, default=16, help="frames per photo for the flicker numbers")
    p.add_argument("--nets", default="random,effnet", help="networks for the style measures (or none)")
    p.add_argument("--max-patches", type=int, default=6000, help="patches per side in the patch measure")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = " ".join(["python -m stylize_rt.recipes.width_depth", *map(shlex.quote, argv)]).strip()
    return run_reporting_errors(lambda: _run(args, command))


def _run(args: argparse.Namespace, command: str) -> int:
    if args.steps < 1 or args.frames < 2 or args.bench_rounds < 1:
        raise BadInputError("--steps and --bench-rounds must be >= 1 and --frames >= 2")
    if args.bench_only:
        return _bench_only(args)
    layouts = parse_layouts(args.layouts)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.quality_settings = quality.Settings(frames=args.frames, threads=args.threads,
                                             nets=quality.parse_nets(args.nets), max_patches=args.max_patches)
    photos = held_out_photos()
    measures = quality.style_measures(args.quality_settings)
    references = quality.References(measures, photos) if measures is not None else None
    rows: list[dict] = []
    t0 = time.perf_counter()
    try:
        for layout in layouts:
            rows.append(run_layout(layout, args, Path(args.runs), photos, measures, references))
            print(f"{rows[-1]['layout']}: edge {rows[-1]['quality']['summary']['edge_correlation_min']:.3f}",
                  flush=True)
            _write(args, command, rows, len(layouts), time.perf_counter() - t0)  # a finished layout is kept
        _time(args, rows)
    except KeyboardInterrupt:
        print(f"interrupted; {len(rows)} finished layout(s) are in {args.json}", file=sys.stderr)
        return EXIT_INTERRUPTED
    _write(args, command, rows, len(layouts), time.perf_counter() - t0)
    print(markdown(rows, args.quality_settings.nets, rows[0]["perception"]))
    print(f"wrote {args.json} and {args.markdown}")
    return 0


def _time(args: argparse.Namespace, rows: list[dict]) -> None:
    speed = bench_rounds({r["layout"]: REPO_ROOT / r["onnx"] if not Path(r["onnx"]).is_absolute() else Path(r["onnx"])
                          for r in rows}, args.threads, args.bench_seconds, args.bench_rounds)
    for r in rows:
        r["speed"] = speed[r["layout"]]


def _bench_only(args: argparse.Namespace) -> int:
    """Re-time the layouts of a finished result (e.g. on a quiet machine); quality stays as measured."""
    path = Path(args.json)
    try:
        doc = json.loads(path.read_text())
        rows = doc["rows"]
    except (OSError, ValueError, KeyError) as exc:
        raise BadInputError(f"--bench-only needs a result from an earlier run at {path}: {exc}") from None
    missing = [r["onnx"] for r in rows if not (REPO_ROOT / r["onnx"]).is_file() and not Path(r["onnx"]).is_file()]
    if missing:
        raise BadInputError(f"--bench-only: exported layouts not found: {', '.join(missing)}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    _time(args, rows)
    nets = tuple(doc.get("nets") or (n for n in ("random", "effnet")
                                      if f"patch_s2o_{n}_mean" in rows[0]["quality"]["summary"]))
    doc["nets"] = list(nets)
    doc["table_markdown"] = markdown(rows, nets, doc.get("perception"))
    doc["speed_command"] = " ".join(["python -m stylize_rt.recipes.width_depth", *map(shlex.quote, sys.argv[1:])])
    write_atomic(path, json.dumps(doc, indent=2) + "\n")
    write_atomic(Path(args.markdown), doc["table_markdown"] + "\n")
    print(doc["table_markdown"])
    return 0


def _write(args: argparse.Namespace, command: str, rows: list[dict], planned: int, wall: float) -> None:
    perception = rows[0]["perception"]
    table = markdown(rows, args.quality_settings.nets, perception)
    doc = {
        "what": "single-style mosaic generators of several widths/depths, the shipped recipe otherwise; "
                "quality on the held-out photos (benchmarks.quality), speed by stylize-rt bench",
        "command": command,
        "recipe": f"stylize_rt.recipes.embedded.RECIPES[{DEFAULT_RECIPE!r}] as one style, with channels/res_blocks/steps changed",
        "perception": perception,
        "complete": len(rows) == planned,
        "nets": list(args.quality_settings.nets),
        "speed_note": f"median over {args.bench_rounds} rounds of each layout's p50, layouts in turn; timed on the "
                      "machine that trained them: provisional where it was shared (re-time with --bench-only)",
        "wall_seconds": round(wall, 1),
        "rows": rows,
        "table_markdown": table,
    }
    write_atomic(Path(args.json), json.dumps(doc, indent=2) + "\n")
    write_atomic(Path(args.markdown), table + "\n")


if __name__ == "__main__":
    sys.exit(main())
