"""Produce the CPU numbers of docs/BENCHMARKS.md: one ``stylize-rt bench`` run, then the page.

    python -m stylize_rt.recipes.cpu_matrix            # measure + write the page
    python -m stylize_rt.recipes.cpu_matrix --render benchmarks/results/cpu_matrix.json

All configurations run in one process and take turns at each size (see
``harness.time_steps``), so the ratios on the page (fastest path vs PyTorch eager FP32,
end-to-end vs model-only) come from the same run under the same machine load. The page
is generated from the JSON result, so every number on it can be traced to a record and
every row carries the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from stylize_rt.benchmarks import anchor_cost, report, style_inputs, switch_latency, texture_scale
from stylize_rt.benchmarks.cli import register as register_bench
from stylize_rt.benchmarks.environment import REPO_ROOT
from stylize_rt.benchmarks.harness import MIN_TIMED_ITERS, PIPELINE_BATCHES_PER_RUN, BenchRecord
from stylize_rt.benchmarks.load import BUSY_CORES
from stylize_rt.errors import run_reporting_errors
from stylize_rt.fileio import read_json
from stylize_rt.models import DEFAULT_GENERATOR

REPO = REPO_ROOT
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "BENCHMARKS.md"
THREADS_DEFAULT = RESULTS / "cpu_matrix_threads_default.json"  # the same matrix, default threads (if kept)
HEADLINE_SIZES = ((256, 256), (512, 512))
LIVE_SIZE = (360, 640)  # (height, width)
SPEEDUP_TARGET, LIVE_FPS_TARGET, OVERHEAD_TARGET = 2.0, 30.0, 0.10
# The multi-style default's speed targets on this CPU: (height, width, frames/s) on its fastest path
MULTI_STYLE_TARGETS = ((360, 640, 60.0), (720, 1280, 30.0))
JOHNSON_2016_TITAN_X = {256: 0.015, 512: 0.05, 1024: 0.21}  # seconds per image, published
PEER = "johnson2016"
PLAIN = "plain"  # the model's widths as a single-style network: what the style inputs cost
TRANSCODE_SIZES = "640x360,720p"  # where file-to-file runs happen: a phone clip, an HD one
SWITCH = RESULTS / "switch_latency.json"  # benchmarks.switch_latency, run after the matrix
ANCHOR = RESULTS / "anchor_cost.json"  # benchmarks.anchor_cost, run after the matrix
TEXTURE = RESULTS / "texture_scale.json"  # benchmarks.texture_scale, run after the matrix
STYLE_INPUTS = RESULTS / "style_inputs.json"  # benchmarks.style_inputs, run after the matrix
# One thread for the style-input ratio: on a shared 2-core machine two spinning ORT threads made
# the per-frame ratios swing (1.02-1.17 at 40 frames); at one thread the two statistics agree.
STYLE_INPUT_THREADS = 1


def matrix_args(engine: str, seconds: float, threads: int, json_path: Path, plot_path: Path,
                history: Path | None) -> list[str]:
    args = ["bench", "--engine", engine, "--backends", "onnxruntime,torch", "--precision", "fp32,bf16,int8",
            "--sizes", "256,512,640x360,720p", "--batch", "1", "--seconds", f"{seconds:g}", "--warmup", "3",
            "--pipeline", "--transcode", TRANSCODE_SIZES, "--peer", f"{PEER},{PLAIN}", "--captioner", "--caption-overlay",
            "--json", str(json_path), "--plot", str(plot_path)]
    if threads:
        args += ["--threads", str(threads)]
    if history is not None:
        args += ["--history", str(history)]
    return args


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------
# Which rows may be published


def unpublishable(r: BenchRecord) -> str | None:
    """Why a row stays out of the headline tables: other processes were busy during its blocks, or
    its numbers contradict each other (``flag``)."""
    if r.flag:
        return r.flag
    if r.flagged_blocks:
        return f"other processes used more than {BUSY_CORES:g} core during {r.flagged_blocks} of its {r.blocks} blocks"
    return None


def published(records: list[BenchRecord]) -> list[BenchRecord]:
    return [r for r in records if unpublishable(r) is None]


# ---------------------------------------------------------------------------------------
# Headline figures


def _find(records, height, width, mode="model", network="model", **match) -> list[BenchRecord]:
    return [r for r in records if r.height == height and r.width == width and r.batch == 1 and r.mode == mode
            and r.device == "cpu" and r.network == network and all(getattr(r, k) == v for k, v in match.items())]


def _first(records, height, width, **match) -> BenchRecord | None:
    """The one record ``_find`` matches (the tables hold one per configuration), or None."""
    return next(iter(_find(records, height, width, **match)), None)


def _stage_split(r: BenchRecord) -> str:
    """An end-to-end row's capture / model / output ms per frame."""
    return f"{_ms(r.capture_ms)} / {_ms(r.infer_ms)} / {_ms(r.output_ms)}"


def _label(r: BenchRecord) -> str:
    return f"{r.backend} {r.precision.upper()}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def floor_ms(r: BenchRecord, peak_gflops: float | None) -> float | None:
    """The convolutions' time at this machine's measured SGEMM rate: 2 x MACs / peak."""
    if not peak_gflops or not r.gmacs_per_frame:
        return None
    return 2.0 * r.gmacs_per_frame * r.batch / peak_gflops * 1000.0


def headline_rows(records: list[BenchRecord], peak_gflops: float | None = None) -> list[str]:
    """The 256²/512² table: every CPU path with mean and p50 (and the p50's confidence interval), its
    GFLOP/s and fraction of peak, and its speed against PyTorch eager FP32 and the Johnson et al. net."""
    lines = ["| size | path | p50 ms (95% CI) | mean ms | frames/s (mean) | GFLOP/s | % of SGEMM peak | "
             "x PyTorch eager FP32 | x Johnson 2016 (ORT FP32) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = []
    for height, width in HEADLINE_SIZES:
        rows = sorted(_find(records, height, width), key=lambda r: r.p50_ms)
        eager = _first(records, height, width, backend="torch", precision="fp32")
        peer = _first(records, height, width, network=PEER, backend="onnxruntime", precision="fp32")
        for r in rows:
            speed = f"{eager.p50_ms / r.p50_ms:.2f}x" if eager else "-"
            vs_peer = f"{peer.p50_ms / r.p50_ms:.1f}x" if peer else "-"
            gf = f"{r.gflops:.1f}" if r.gflops is not None else "-"
            frac = f"{100 * r.peak_fraction:.1f}%" if r.peak_fraction is not None else "-"
            lines.append(f"| {width}x{height} | {_label(r)} | {r.p50_ms:.2f} ({_ms(r.p50_ci_low_ms)}-"
                         f"{_ms(r.p50_ci_high_ms)}) | {r.mean_ms:.2f} | {r.fps:.1f} | {gf} | {frac} | {speed} | {vs_peer} |")
        if rows and eager:
            best = rows[0]
            ratio = eager.p50_ms / best.p50_ms
            verdicts.append(f"- **{width}x{height}**: fastest CPU path is **{_label(best)}** at {best.p50_ms:.2f} ms "
                            f"(p50; mean {best.mean_ms:.2f}), **{ratio:.2f}x** PyTorch eager FP32 as PyTorch runs by "
                            f"default ({eager.p50_ms:.2f} ms); target ≥ {SPEEDUP_TARGET:g}x: "
                            f"**{'met' if ratio >= SPEEDUP_TARGET else 'not met'}**.")
        elif rows:
            verdicts.append(f"- **{width}x{height}**: no publishable PyTorch eager FP32 row in this run, so no "
                            "speedup can be stated.")
        else:
            verdicts.append(f"- **{width}x{height}**: no publishable row in this run.")
    return verdicts + [""] + lines + ["", *peer_rows(records, peak_gflops)]


def peer_rows(records: list[BenchRecord], peak_gflops: float | None) -> list[str]:
    """Both networks at every size: p50 per path, and the floor 2 x MACs / measured peak."""
    sizes = sorted({(r.height, r.width) for r in records if r.mode == "model"}, key=lambda hw: hw[0] * hw[1])
    lines = ["| size | network | GMAC/frame | floor ms (2 x MACs / peak) | ORT FP32 p50 ms (% of peak) | "
             "PyTorch eager FP32 p50 ms (% of peak) |", "|---|---|---:|---:|---:|---:|"]
    for height, width in sizes:
        for network in ("model", PEER):
            ort = _first(records, height, width, network=network, backend="onnxruntime", precision="fp32")
            eager = _first(records, height, width, network=network, backend="torch", precision="fp32")
            any_row = ort or eager
            if any_row is None:
                continue
            name = "default generator" if network == "model" else "Johnson et al. 2016"

            def cell(r):
                if r is None:
                    return "-"
                return f"{r.p50_ms:.2f}" + (f" ({100 * r.peak_fraction:.0f}%)" if r.peak_fraction else "")

            lines.append(f"| {width}x{height} | {name} | {any_row.gmacs_per_frame or float('nan'):.2f} | "
                         f"{_ms(floor_ms(any_row, peak_gflops))} | {cell(ort)} | {cell(eager)} |")
    return lines if len(lines) > 2 else ["No peer network rows in this run."]


def style_input_rows(records: list[BenchRecord]) -> list[str]:
    """The multi-style model against the same widths as a plain single-style network (``--peer plain``):
    what conditional instance norm and the control inputs cost, as same-run ratios."""
    sizes = sorted({(r.height, r.width) for r in records if r.mode == "model"}, key=lambda hw: hw[0] * hw[1])
    lines = ["| size | multi-style ORT FP32 p50 ms | plain single-style ORT FP32 p50 ms (same widths) | ratio |",
             "|---|---:|---:|---:|"]
    for height, width in sizes:
        model = _first(records, height, width, backend="onnxruntime", precision="fp32")
        plain = _first(records, height, width, network=PLAIN, backend="onnxruntime", precision="fp32")
        if model is None or plain is None:
            continue
        lines.append(f"| {width}x{height} | {model.p50_ms:.2f} | {plain.p50_ms:.2f} | {model.p50_ms / plain.p50_ms:.3f} |")
    return lines if len(lines) > 2 else ["No plain single-style peer rows in this run."]


def interleaved_style_input_rows(result: dict | None) -> list[str]:
    """The style-input cost from a ``benchmarks.style_inputs`` result: frame by frame in turns."""
    if not result:
        return []
    s = result["settings"]
    sizes = list(dict.fromkeys(size for per_size in result["results"].values() for size in per_size))  # as run
    return [
        f"`python -m stylize_rt.benchmarks.style_inputs --model {s['model']} --precision {','.join(s['precisions'])} "
        f"--sizes {','.join(sizes)} --frames {s['frames']} --threads {s['threads']}`: the model and its plain twin "
        "(INT8: quantized by the export's static QDQ path, in the ONNX Runtime CPU form the folders ship) through "
        "the runtime path, alternating frame by frame "
        f"(load average at the start {result['environment'].get('load_average_start')}). The target is judged at "
        f"the controls a frame has by default; the second row per size draws at {style_inputs.CONTROLS_IN_USE_LABEL} "
        "(the CPU INT8 graph runs its control tail only then).",
        "",
        style_inputs.table(result["results"], result.get("controls_in_use")),
        "",
        "The CPU matrix's own rows of the two networks (each timed in its own block, so the machine's drift "
        "between blocks enters this ratio):",
        "",
    ]


def live_rows(records: list[BenchRecord]) -> list[str]:
    height, width = LIVE_SIZE
    rows = sorted(_find(records, height, width), key=lambda r: r.p50_ms)
    if not rows:
        return [f"Not measured, or not publishable, in this run ({width}x{height})."]
    best = rows[0]
    e2e_best = _first(records, height, width, mode="pipeline", backend=best.backend, precision=best.precision)
    out = [f"Fastest CPU path at {width}x{height}, batch 1: **{_label(best)}**, mean {best.mean_ms:.2f} ms = "
           f"**{best.fps:.1f} frames/s** model-only (p50 {best.p50_ms:.2f} ms = {1000 / best.p50_ms:.1f} frames/s; "
           f"p99 {best.p99_ms:.2f} ms)"
           + (f"; end to end through the runtime **{e2e_best.fps:.1f} frames/s**" if e2e_best else "")
           + f". Target ≥ {LIVE_FPS_TARGET:g} frames/s: "
           f"**{'met' if (e2e_best.fps if e2e_best else best.fps) >= LIVE_FPS_TARGET else 'not met'}** on this run "
           "(judged end to end where measured). What `stylize-rt run` uses by default: the embedded model's "
           "INT8 graph where the folder ships one that met its quality floor, else FP32 (it says which).", "",
           "| path | mean ms | p50 ms | p99 ms | frames/s (mean) | end-to-end frames/s | loss to the runtime |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        e2e = _first(records, height, width, mode="pipeline", backend=r.backend, precision=r.precision)
        loss = f"{100 * e2e.overhead:+.1f}%" if e2e and e2e.overhead is not None else "-"
        out.append(f"| {_label(r)} | {r.mean_ms:.2f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.fps:.1f} | "
                   f"{f'{e2e.fps:.1f}' if e2e else '-'} | {loss} |")
    return out


def _verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def target_rows(records: list[BenchRecord]) -> list[str]:
    """The multi-style default against its frame-rate targets, model-only and end to end (each judged)."""
    out = ["| size | target | fastest path | model-only frames/s (mean; p50) | end-to-end frames/s (mean) | "
           "model-only | end to end |", "|---|---:|---|---:|---:|---|---|"]
    for height, width, target in MULTI_STYLE_TARGETS:
        rows = sorted(_find(records, height, width), key=lambda r: r.p50_ms)
        if not rows:
            out.append(f"| {width}x{height} | {target:g} | not measured in this run | - | - | - | - |")
            continue
        best = rows[0]
        e2e = _first(records, height, width, mode="pipeline", backend=best.backend, precision=best.precision)
        out.append(f"| {width}x{height} | ≥ {target:g} | {_label(best)} | {best.fps:.1f}; {1000 / best.p50_ms:.1f} | "
                   f"{f'{e2e.fps:.1f}' if e2e else '-'} | {_verdict(best.fps >= target)} | "
                   f"{_verdict(e2e.fps >= target) if e2e else 'not measured'} |")
    return out


def cpu_class(flags: list[str]) -> str:
    """What decides ONNX Runtime's x86 integer kernels (and so INT8 speed): VNNI sums u8 x s8 products
    in 32 bits in one instruction; without it AVX2 takes three (``export.int8``, ``WEIGHT_QMAX``)."""
    if "amx_int8" in flags:
        return "AMX-INT8"
    if "avx512_vnni" in flags:
        return "AVX-512 with VNNI"
    if "avx_vnni" in flags:
        return "AVX2 with AVX-VNNI"
    if "avx512f" in flags:
        return "AVX-512 without VNNI"
    return "AVX2 without VNNI" if "avx2" in flags else "no AVX2"


def _engine_of(command: str) -> str | None:
    words = command.split()
    return words[words.index("--engine") + 1] if "--engine" in words[:-1] else None


def cpu_class_rows(history: Path, engine: str) -> list[str]:
    """The frame-rate targets on each CPU class and model in ``history`` (the latest full run of
    ``engine`` on each: two vendors' chips of one class still differ in speed)."""
    latest: dict[tuple[str, str], dict] = {}
    if history.is_file():
        for line in history.read_text().splitlines():
            try:
                run = json.loads(line)
                env = run["environment"]
                if _engine_of(str(env.get("command", ""))) == engine and run.get("records"):
                    cpu = env.get("cpu", {})
                    latest[(cpu_class(cpu.get("flags", [])), str(cpu.get("model", "?")))] = run
            except (ValueError, KeyError, TypeError):
                continue  # a line another tool wrote, or a truncated one: not a run to compare
    if not latest:
        return ["No runs of this model in the history file."]
    heads = " | ".join(f"{w}x{h} ≥ {t:g}: model-only / end to end" for h, w, t in MULTI_STYLE_TARGETS)
    out = [f"| CPU class | run (commit, UTC) | fastest path | {heads} |", "|---|---|---|" + "---|" * len(MULTI_STYLE_TARGETS)]
    for (label, model), run in sorted(latest.items()):
        records = published(report.records_of(run))
        env = run["environment"]
        cells, paths = [], set()
        for height, width, target in MULTI_STYLE_TARGETS:
            rows = sorted(_find(records, height, width), key=lambda r: r.p50_ms)
            if not rows:
                cells.append("not measured")
                continue
            best = rows[0]
            paths.add(_label(best))
            e2e = _first(records, height, width, mode="pipeline", backend=best.backend, precision=best.precision)
            cells.append(f"{best.fps:.1f} ({'met' if best.fps >= target else '**not met**'}) / "
                         + (f"{e2e.fps:.1f} ({'met' if e2e.fps >= target else '**not met**'})" if e2e else "-"))
        out.append(f"| {label} ({model}) | {str(env.get('git', {}).get('commit', '?'))[:7]}, "
                   f"{str(env.get('timestamp_utc', '?'))[:16]} | {', '.join(sorted(paths)) or '-'} | {' | '.join(cells)} |")
    return out


def overhead_rows(records: list[BenchRecord]) -> list[str]:
    pipes = [r for r in records if r.mode == "pipeline" and r.overhead is not None and r.network == "model"]
    if not pipes:
        return ["No publishable end-to-end runs in this result."]
    out = ["| path | size | model-only frames/s | end-to-end frames/s | overhead as users feel it | "
           "in each end-to-end batch: capture / model / output ms |", "|---|---|---:|---:|---:|---|"]
    judged = []
    for r in sorted(pipes, key=lambda r: (r.height * r.width, r.backend, r.precision)):
        twin = _first(records, r.height, r.width, backend=r.backend, precision=r.precision)
        if twin is None:  # its model-only row was left out: the overhead against it is not published
            out.append(f"| {_label(r)} | {r.width}x{r.height} | left out | {r.fps:.1f} | - | {_stage_split(r)} |")
            continue
        judged.append(r)
        flag = "" if r.overhead <= OVERHEAD_TARGET else " (above 10%)"
        out.append(f"| {_label(r)} | {r.width}x{r.height} | {twin.fps:.1f} | "
                   f"{r.fps:.1f} | {100 * r.overhead:+.1f}%{flag} | {_stage_split(r)} |")
    within = sum(1 for r in judged if r.overhead <= OVERHEAD_TARGET)
    unjudged = len(pipes) - len(judged)
    return [f"{within} of {len(judged)} end-to-end configurations are within the {100 * OVERHEAD_TARGET:.0f}% "
            "overhead target" + (f" ({unjudged} more have their model-only row left out)" if unjudged else "")
            + ".", ""] + out


def transcode_rows(records: list[BenchRecord]) -> list[str]:
    rows = [r for r in records if r.mode == "transcode" and r.network == "model"]
    if not rows:
        return ["No publishable file-to-file runs in this result."]
    out = ["| path | size | model-only frames/s | raw pipe frames/s | H.264 file to file frames/s | "
           "decode / model / encode ms per frame | codec's share |", "|---|---|---:|---:|---:|---|---:|"]
    for r in sorted(rows, key=lambda r: (r.height * r.width, r.backend, r.precision)):
        twin = _first(records, r.height, r.width, backend=r.backend, precision=r.precision)
        pipe = _first(records, r.height, r.width, mode="pipeline", backend=r.backend, precision=r.precision)
        share = "-" if r.codec_share is None else f"{100 * r.codec_share:.0f}%"
        out.append(f"| {_label(r)} | {r.width}x{r.height} | {f'{twin.fps:.1f}' if twin else 'left out'} | "
                   f"{f'{pipe.fps:.1f}' if pipe else 'left out'} | {r.fps:.1f} | "
                   f"{_stage_split(r)} | {share} |")
    return out


def dropped_rows(records: list[BenchRecord]) -> list[str]:
    dropped = [(r, unpublishable(r)) for r in records if unpublishable(r)]
    if not dropped:
        return [f"None: no row had a block during which other processes used more than {BUSY_CORES:g} core, "
                "and no end-to-end row beat its model-only twin."]
    lines = [f"{len(dropped)} of {len(records)} rows are left out of the tables above (they stay in the full "
             "matrix and the JSON):", ""]
    lines += [f"- {r.network} {_label(r)} {r.mode} {r.width}x{r.height}: {why}" for r, why in dropped]
    return lines


# ---------------------------------------------------------------------------------------
# The page


def switch_rows(result: dict | None) -> list[str]:
    """The live-switch section from a ``benchmarks.switch_latency`` result (nothing without one)."""
    if not result:
        return []
    s = result["settings"]
    changes = result["changes"]
    return [
        "## Live style switching: frames that change the controls",
        "",
        f"`python -m stylize_rt.benchmarks.switch_latency --model {s['model']} --backend {s['backend']} "
        f"--precision {s['precision']} --size {s['size']} --frames {s['frames']} --every {s['every']} "
        f"--threads {s['threads']}`: the controls change every {s['every']} frames (each style, a 50/50 mix, "
        "strength 0.5, colour preservation), in turns with a steady run over the same frames "
        f"(load average at the start {result['environment'].get('load_average_start')}).",
        "",
        switch_latency.table(result),
        "",
        f"{sum(c['visible'] for c in changes)} of {len(changes)} changes show in the frame that asks for them; "
        f"frames carrying a change take {result['changed_over_steady_median']:.3f}x the steady median.",
        "",
    ]


def anchor_rows(result: dict | None) -> list[str]:
    """The grid-anchor section from a ``benchmarks.anchor_cost`` result (nothing without one)."""
    if not result:
        return []
    s = result["settings"]
    return [
        "## Grid anchor: what following the camera costs a video frame",
        "",
        f"`python -m stylize_rt.benchmarks.anchor_cost --model {s['model']} --backend {s['backend']} "
        f"--precision {s['precision']} --sizes {','.join(result['sizes'])} --frames {s['frames']} "
        f"--threads {s['threads']}`: a jittering camera's clip, frame by frame, plain and anchored in turns "
        f"(load average at the start {result['environment'].get('load_average_start')}). Anchored = the motion "
        "estimate plus the model on the frame padded to the grid; in `stylize-rt run` the estimate runs in the "
        "capture thread, beside the model.",
        "",
        anchor_cost.table(result["sizes"]),
        "",
    ]


def texture_rows(result: dict | None) -> list[str]:
    """The texture-scale section from a ``benchmarks.texture_scale`` result (nothing without one)."""
    if not result:
        return []
    s = result["settings"]
    sizes = sorted({size for per_size in result["results"].values() for size in per_size})
    return [
        "## Texture scale: the model on a shrunk frame, its change put back on the full frame",
        "",
        f"`python -m stylize_rt.benchmarks.texture_scale --model {s['model']} --backend {s['backend']} "
        f"--precision {','.join(s['precisions'])} --sizes {','.join(sizes)} "
        f"--scales {','.join(f'{x:g}' for x in s['scales'])} --frames {s['frames']} --threads {s['threads']}`: "
        "a jittering camera's clip, frame by frame with the grid anchor on (as `stylize-rt run` runs a video), "
        "each texture scale in turns; `--texture-scale 2` draws the style's texture twice as large "
        f"(load average at the start {result['environment'].get('load_average_start')}).",
        "",
        texture_scale.table(result["results"]),
        "",
    ]


def _load_note(env: dict, cpu: dict) -> list[str]:
    """Say how busy the machine was; on a shared one, say what that does to the numbers."""
    start, end = env.get("load_average_start"), env.get("load_average_end")
    cores = cpu.get("usable_cores") or cpu.get("logical_cores") or 1
    threads = env.get("threads", {}).get("requested_threads", 0)
    lines = [f"- Load average (1 min) when the run started / ended (the end includes the benchmark's own threads): "
             f"{start[0] if start else '?'} / {end[0] if end else '?'} on {cores} cores; intra-op threads per "
             f"backend: {threads or 'backend default'}"]
    # The start figure says what else was running; the end figure includes the benchmark's own threads.
    busiest = start[0] if start else 0.0
    if busiest > 0.5 * cores:
        lines += ["", f"> **Shared machine.** Other work kept about {busiest:.0f} runnable processes on these "
                  f"{cores} cores while this ran, so absolute latencies are inflated and noisy (see p90/p99, and "
                  "the noise field in the JSON). The ratios between configurations come from the same run, "
                  "taking turns under the same load, and are the meaningful part."
                  + (" Each backend ran with one intra-op thread (`--threads 1`): on oversubscribed cores a "
                     "multi-threaded kernel waits at every barrier for whichever of its threads was descheduled, "
                     "which makes 2-thread numbers slower and far noisier than the work they measure."
                     if threads == 1 else "")
                  + (f" The same matrix with the backends' default threads, run right after this one while the "
                     f"load rose, is kept in `{_rel(THREADS_DEFAULT)}` for comparison."
                     if threads == 1 and THREADS_DEFAULT.is_file() else "")
                  + " To re-measure on a quiet machine, run the command below (without `--threads 1` to use "
                  "all cores); it rewrites this page."]
    return lines


def render(document: dict, command: str, json_path: Path, plot_path: Path | None,
           switch: dict | None = None, anchor: dict | None = None, texture: dict | None = None,
           style_inputs_result: dict | None = None, history: Path = RESULTS / "history.jsonl",
           engine: str = DEFAULT_GENERATOR) -> str:
    env = document["environment"]
    records = report.records_of(document)
    good = published(records)
    cpu = env.get("cpu", {})
    peak = document.get("sgemm_peak") or {}
    git = env.get("git") or {}
    libs = ", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items() if v)
    gpus = "; ".join(f"{g['name']} (driver {g['driver']})" for g in env.get("gpus", []))
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m stylize_rt.recipes.cpu_matrix` from "
        f"`{_rel(json_path)}`; do not edit by hand (re-render with `--render {_rel(json_path)}`).",
        "",
        "## How these numbers are taken",
        "",
        "- **Model-only**: the backend's `infer` on a batch already in the model's input convention; warm-up "
        f"runs first, then at least {MIN_TIMED_ITERS} iterations *and* the time budget; per-iteration times "
        "from `time.perf_counter` on CPU (CUDA events, split into H2D / compute / D2H, where a GPU backend "
        "records them). Tables give the mean and the median with its distribution-free 95% confidence "
        "interval (order statistics).",
        "- **Baselines as users run them**: PyTorch eager runs with PyTorch's own defaults (OpenMP's wait "
        "policy untouched; the JSON records `omp_wait_policy` per row), and the Johnson et al. 2016 network "
        "(`--peer johnson2016`: 9x9 stem, 32/64/128 channels, 5 residual blocks, random weights) takes its "
        "turns in ONNX Runtime and PyTorch eager FP32, so every table can say \"x Johnson\".",
        "- **End-to-end** (`--pipeline`): the runtime's raw-video reader (bgr24 frames from an in-memory "
        "stream) → `Stylizer` (layout conversion) → the runtime's raw-video writer, through the stream runner's "
        f"capture/model/output threads, one {PIPELINE_BATCHES_PER_RUN}-batch clip per iteration (so thread "
        "start and pipeline fill/drain count, spread over that many batches rather than a long video's "
        "thousands); codecs and disk are left out because they belong to the source/sink a user picks. "
        "*Overhead* is what users feel: end-to-end frames/s against model-only frames/s of the same "
        "configuration, both measured in the same turns (mean times per batch), so the model slowing down "
        "while capture and output threads share the cores counts. Where the time went inside an "
        "end-to-end batch (capture / model / output) is a separate breakdown.",
        f"- **File to file** (`--transcode {TRANSCODE_SIZES}`): the same runner decoding an H.264 clip "
        "(in memory, PyAV, software) and encoding H.264 (libx264 `yuv420p`, the runtime's default settings) "
        "into memory: what `stylize-rt run --input a.mp4 --output b.mp4` does, minus the disk. The codec's "
        "share is decode + encode time over all three stages' busy time (the stages overlap in threads).",
        f"- **Quiet or not**: during every block of iterations the harness reads the whole machine's busy time "
        "(`/proc/stat`) minus its own process's CPU time; a block in which other processes used more than "
        f"{BUSY_CORES:g} core is flagged, and a row with a flagged block (or an end-to-end row faster than its "
        "model-only twin beyond both confidence intervals) is kept out of the tables below, listed under "
        "\"Left out\".",
        "- **Same-run ratios**: all configurations stay loaded and take turns (blocks of ~0.2 s) at each "
        "size, so ratios between them are measured under the same machine load.",
        "- **Guard**: inputs are photo-like synthetic frames (sky, ground, hard-edged shapes, grain), never "
        "zeros; every configuration's output is checked once before timing (no NaN/Inf, not a constant "
        "image, right shape) and fails the run otherwise.",
        "- **GFLOP/s** = 2 × convolution MACs (counted from the ONNX graph at that size; normalization, "
        "padding and resizing not counted) / mean latency; for INT8 it is the same FP32-equivalent work. "
        "**% of SGEMM peak** divides by this machine's measured float32 matmul rate (numpy/OpenBLAS, "
        "with as many threads as the backends), not a datasheet peak.",
        "- **Noise** (in the JSON): relative spread of block medians; `stylize-rt bench --compare BASELINE.json` "
        "flags a configuration whose p50 grew by more than max(3 × combined noise, 5%) and exits 1.",
        "",
        "## Machine",
        "",
        f"- CPU: {cpu.get('model', '?')}, {cpu.get('physical_cores', '?')} cores "
        f"({cpu.get('usable_cores', '?')} usable), flags: {' '.join(cpu.get('flags', []))}",
        f"- GPU: {gpus or 'none. No GPU on this machine: no GPU matrix, no TensorRT/CUDA rows.'}",
        f"- Measured SGEMM peak: {peak.get('gflops', float('nan')):.1f} GFLOP/s "
        f"({peak.get('size', '?')}² float32, {peak.get('blas', '?')}, {peak.get('threads', 'all')} BLAS "
        "thread(s), the same as the backends)" if peak else "- SGEMM peak: not measured",
        f"- Libraries: {libs}",
        f"- Commit: {git.get('commit', 'unknown')}{' + uncommitted changes' if git.get('dirty') else ''}; "
        f"measured {env.get('timestamp_utc', '?')}; thread variables set: {env.get('threads', {}).get('env') or 'none'}",
        *_load_note(env, cpu),
        "",
        "```",
        command,
        "```",
        "",
        "## CPU: fastest path vs PyTorch eager FP32 (default generator, batch 1)",
        "",
        *headline_rows(good, peak.get("gflops")),
        "",
        "## Live-CPU figure: 640x360, batch 1",
        "",
        *live_rows(good),
        "",
        "## The multi-style default's frame-rate targets",
        "",
        "Full resolution, batch 1, the grid anchor on in the end-to-end rows (what `stylize-rt run` does with "
        "a video); end to end is the runtime's raw-video reader -> model -> writer (threads), codecs left out "
        "(the file-to-file rows below add them).",
        "",
        *target_rows(good),
        "",
        "The same targets on every CPU class and chip this project's runs have met (the latest full run on each, from "
        f"`{_rel(history)}`): the class decides which integer kernels ONNX Runtime runs (VNNI or not), and chips of "
        "one class still differ in speed.",
        "",
        *cpu_class_rows(history, engine),
        "",
        "## What the style inputs cost: multi-style vs plain single-style, same widths",
        "",
        "The default model takes `style`, `strength` and `preserve_color` inputs (conditional instance norm "
        "and the controls in the graph); `--peer plain` is the same widths and depth as a plain single-style "
        "network (random weights). Target: ratio ≤ 1.05.",
        "",
        *interleaved_style_input_rows(style_inputs_result),
        *style_input_rows(good),
        "",
        *switch_rows(switch),
        *anchor_rows(anchor),
        *texture_rows(texture),
        "## Runtime overhead: end-to-end vs model-only",
        "",
        *overhead_rows(good),
        "",
        "## File to file: decode → stylize → encode (H.264, software)",
        "",
        *transcode_rows(good),
        "",
        "## Left out: busy blocks and contradictions",
        "",
        *dropped_rows(records),
        "",
        "## Full CPU matrix",
        "",
        "Each row's command reproduces it alone (a single configuration is not timed in turns with others, "
        "so expect small differences).",
        "",
        report.markdown_table(records, commands=True),
        "",
    ]
    if plot_path is not None:
        rel = _rel(plot_path)
        lines += [f"![latency vs resolution]({rel if rel.startswith('/') else '../' + rel})", ""]
    if document.get("skipped"):
        lines += ["## Not measured here, and why", ""]
        lines += [f"- {s['backend']} {s['precision']}: {s['reason']}" for s in document["skipped"]]
        lines.append("")
    if document.get("failed"):
        lines += ["## Failed configurations", ""]
        lines += [f"- {f['backend']} {f['precision']} {f['width']}x{f['height']}: {f['reason']}" for f in document["failed"]]
        lines.append("")
    if document.get("captioner"):
        lines += ["## Captioner", "", report.captioner_markdown(document["captioner"]), ""]
    lines += [
        "## Running your own",
        "",
        "- Any model, sizes and batches: `stylize-rt bench --engine my.onnx --sizes 256,720p --batch 1,4 "
        "--json out.json --markdown out.md --plot out.png` (`--engine` also takes a checkpoint directory, "
        "a TensorRT engine or an embedded model name; a directory holding a checkpoint and its ONNX exports, "
        "like `src/stylize_rt/models/mosaic/`, runs both PyTorch and ONNX Runtime).",
        "- INT8 rows: unless an INT8 ONNX sits beside the model, the bench quantizes the FP32 ONNX itself "
        "with the export stage's static QDQ path (calibrated on bundled photos) into a temporary file.",
        "- Regression gate: `stylize-rt bench ... --json new.json --compare benchmarks/results/cpu_matrix.json` "
        "prints a comparison table and exits 1 when a configuration's p50 grew beyond max(3 × noise, 5%); "
        "`--noise-k` and `--noise-floor` tune it. Compare runs from the same machine only.",
        "- History: `--history benchmarks/results/history.jsonl` appends the whole result as one JSON line.",
        "- Captioner: `--captioner [DIR]` adds encoder latency, per-token decoder latency, encoder + greedy caption "
        "latency at 640x360 (the packaged photos) and, for the fact captioner, face detection (which runs only in "
        "the caption worker); `--caption-overlay` adds the stream runner's frame rate with and without the caption "
        "overlay (docs/CAPTIONER.md).",
        "- A served model: `stylize-rt bench --engine triton://HOST:8001/NAME` times it through Triton "
        "(latency including the transport; see docs/SCALING.md).",
        "- `torch-compile` (`torch.compile`, dynamic shapes) is available with `--backends torch-compile`; it "
        "is left out of this matrix because compiling takes minutes per run on this CPU.",
        "",
    ]
    lines += [
        "## GPU",
        "",
        ("No CUDA GPU was available on the machine that produced this page, so there is no GPU matrix "
         "(TensorRT, ONNX Runtime CUDA/TensorRT EPs, PyTorch CUDA) and no comparison with the speeds "
         "Johnson et al. 2016 published for their architecture on a Titan X "
         f"({', '.join(f'{s}²: {t:g} s' for s, t in JOHNSON_2016_TITAN_X.items())}). On a GPU machine: "
         "`stylize-rt bench --backends tensorrt,onnxruntime-cuda,torch-cuda --precision fp32,fp16,int8 "
         "--sizes 256,512,720p,1080p --json benchmarks/results/gpu_matrix.json`.") if not gpus else
        f"GPU present ({gpus}); see the GPU result files in benchmarks/results/.",
        "",
    ]
    return "\n".join(lines)


def run_bench_command(argv: list[str]) -> int:
    """``stylize-rt bench ARGV`` through the bench stage's own parser and error reporting."""
    parser = argparse.ArgumentParser(prog="stylize-rt")
    register_bench(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return run_reporting_errors(lambda: args.handler(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default=DEFAULT_GENERATOR, help=f"model to benchmark (default: the embedded {DEFAULT_GENERATOR})")
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per configuration and size")
    parser.add_argument("--json", type=Path, default=RESULTS / "cpu_matrix.json")
    parser.add_argument("--plot", type=Path, default=RESULTS / "cpu_matrix.png")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads per backend (0: backend default)")
    parser.add_argument("--history", type=Path, default=RESULTS / "history.jsonl")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--render", type=Path, metavar="RESULT.json",
                        help="only re-render the page (and --plot) from a result, without measuring")
    args = parser.parse_args(argv)

    if args.render is not None:
        json_path = args.render
        document = report.load_document(json_path)
        if document["records"]:  # the plot is a view of the same result: redraw it too
            report.write_plot(report.records_of(document), args.plot, title=report.plot_title(document))
    else:
        json_path = args.json
        rc = run_bench_command(matrix_args(args.engine, args.seconds, args.threads, args.json, args.plot, args.history))
        if rc != 0 or not json_path.is_file():
            print(f"cpu_matrix: the benchmark run failed (exit {rc})", file=sys.stderr)
            return rc or 1
        document = report.load_document(json_path)
        multi_style = switch_latency.style_count(args.engine) > 1
        if multi_style:  # a single-style engine has nothing to switch
            rc = switch_latency.main(["--model", args.engine, "--threads", str(args.threads), "--json-out", str(SWITCH)])
            if rc != 0:
                return rc
        if anchor_cost.declares_grid(args.engine):
            rc = anchor_cost.main(["--model", args.engine, "--threads", str(args.threads), "--json-out", str(ANCHOR)])
            if rc != 0:
                return rc
        if multi_style:  # the style inputs' cost needs a multi-style model
            rc = style_inputs.main(["--model", args.engine, "--threads", str(STYLE_INPUT_THREADS),
                                    "--json-out", str(STYLE_INPUTS)])
            if rc != 0:
                return rc
        if texture_scale.takes_any_size(args.engine):
            rc = texture_scale.main(["--model", args.engine, "--threads", str(args.threads),
                                     "--json-out", str(TEXTURE)])
            if rc != 0:
                return rc
    env = document["environment"]
    threads = env.get("threads", {}).get("requested_threads", 0)
    script = "python -m stylize_rt.recipes.cpu_matrix" + (
        f" --engine {shlex.quote(args.engine)}" if args.engine != DEFAULT_GENERATOR else "") + (
        f" --threads {threads}" if threads else "")
    bench = str(env.get("command", "")).replace(str(REPO) + "/", "")
    command = f"{script}\n# which ran exactly this, then rendered this page from the JSON:\n{bench}"
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    switch = read_json(SWITCH, "switch-latency result") if SWITCH.is_file() else None
    anchor = read_json(ANCHOR, "anchor-cost result") if ANCHOR.is_file() else None
    texture = read_json(TEXTURE, "texture-scale result") if TEXTURE.is_file() else None
    styled = read_json(STYLE_INPUTS, "style-inputs result") if STYLE_INPUTS.is_file() else None
    args.doc.write_text(render(document, command, json_path, args.plot if args.plot.is_file() else None, switch,
                               anchor, texture, styled, args.history, args.engine))
    print(f"wrote {args.doc} from {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
