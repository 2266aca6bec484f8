"""Writing results: the JSON document, the history file, terminal and Markdown tables, a plot.

The JSON document is the source of truth (environment once, then one record per
configuration); tables and the plot are views of it, so a result file can be re-rendered
later with the same code.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any, Sequence

from stylize_rt.benchmarks.environment import describe_gpu_state
from stylize_rt.benchmarks.harness import BenchRecord
from stylize_rt.errors import BadInputError, MissingDependencyError, OutputError
from stylize_rt.fileio import read_json, write_atomic

SCHEMA = "stylize-rt-bench/1"
REQUIRED_FIELDS = ("backend", "device", "precision", "batch", "height", "width", "iters",
                   "mean_ms", "p50_ms", "p90_ms", "p99_ms", "fps")


def build_document(environment: dict, peak: dict | None, records: Sequence[BenchRecord],
                   skipped: Sequence = (), failed: Sequence = (), captioner: Sequence[dict] = ()) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "environment": environment,
        "sgemm_peak": peak,
        "records": [r.to_dict() for r in records],
        "skipped": [s.to_dict() for s in skipped],
        "failed": [f.to_dict() for f in failed],
        "captioner": list(captioner),
    }


def write_json(document: dict, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    write_atomic(path, json.dumps(document, indent=2) + "\n")
    return path


def load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a result file; every problem is a one-line ``BadInputError``."""
    path = Path(path)
    document = read_json(path, "benchmark result")
    validate_document(document, str(path))
    return document


def validate_document(document: Any, where: str = "result") -> None:
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise BadInputError(f"{where} is not a stylize-rt benchmark result (schema {SCHEMA!r})")
    if not isinstance(document.get("environment"), dict) or not isinstance(document.get("records"), list):
        raise BadInputError(f"{where} lacks 'environment' or 'records'")
    for i, record in enumerate(document["records"]):
        missing = [k for k in REQUIRED_FIELDS if not isinstance(record, dict) or k not in record]
        if missing:
            raise BadInputError(f"{where}: record {i} lacks {', '.join(missing)}")


def records_of(document: dict) -> list[BenchRecord]:
    return [BenchRecord.from_dict(r) for r in document["records"]]


def append_history(document: dict, path: str | os.PathLike[str]) -> Path:
    """Append the run as one JSON line: the file grows into a time series, never rewritten."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(document, separators=(",", ":")) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot append to {path}: {exc.strerror or exc}") from None
    return path


# ---------------------------------------------------------------------------------------
# Tables

COLUMNS = (
    # header, getter, format
    ("backend", lambda r: r.backend, "{}"),
    ("device", lambda r: r.device, "{}"),
    ("prec", lambda r: r.precision, "{}"),
    ("mode", lambda r: r.mode, "{}"),
    ("batch", lambda r: r.batch, "{}"),
    ("size", lambda r: f"{r.width}x{r.height}", "{}"),
    ("iters", lambda r: r.iters, "{}"),
    ("mean ms", lambda r: r.mean_ms, "{:.2f}"),
    ("p50 ms", lambda r: r.p50_ms, "{:.2f}"),
    ("p50 95% CI", lambda r: None if r.p50_ci_low_ms is None else f"{r.p50_ci_low_ms:.2f}-{r.p50_ci_high_ms:.2f}", "{}"),
    ("p90 ms", lambda r: r.p90_ms, "{:.2f}"),
    ("p99 ms", lambda r: r.p99_ms, "{:.2f}"),
    ("std ms", lambda r: r.std_ms, "{:.2f}"),
    ("fps", lambda r: r.fps, "{:.1f}"),
    ("MP/s", lambda r: r.mpix_s, "{:.1f}"),
    ("GFLOP/s", lambda r: r.gflops, "{:.1f}"),
    ("% peak", lambda r: None if r.peak_fraction is None else 100 * r.peak_fraction, "{:.1f}"),
    ("overhead", lambda r: None if r.overhead is None else 100 * r.overhead, "{:+.1f}%"),
    ("others' load", lambda r: r.others_load, "{:.2f}"),
    ("flag", lambda r: r.flag and "!", "{}"),
)
TEXT_COLUMNS = {"network", "backend", "device", "prec", "mode", "batch", "size", "flag"}
NETWORK_COLUMN = ("network", lambda r: r.network, "{}")
BREAKDOWN_COLUMNS = (  # pipeline rows: where an end-to-end batch's time went
    ("capture ms", lambda r: r.capture_ms, "{:.2f}"),
    ("model ms", lambda r: r.infer_ms, "{:.2f}"),
    ("output ms", lambda r: r.output_ms, "{:.2f}"),
)
CODEC_COLUMN = ("codec %", lambda r: None if r.codec_share is None else 100 * r.codec_share, "{:.0f}%")
SPLIT_COLUMNS = (
    ("H2D ms", lambda r: r.h2d_ms, "{:.2f}"),
    ("compute ms", lambda r: r.compute_ms, "{:.2f}"),
    ("D2H ms", lambda r: r.d2h_ms, "{:.2f}"),
)


END_TO_END_LABELS = {"pipeline": " end-to-end", "transcode": " decode+encode"}
END_TO_END_LINES = {"pipeline": "--", "transcode": ":"}


def _columns(records: Sequence[BenchRecord]):
    cols = list(COLUMNS)
    fps = next(i for i, c in enumerate(cols) if c[0] == "fps")
    if any(r.compute_ms is not None for r in records):
        cols[fps:fps] = SPLIT_COLUMNS  # after std, before fps
    if not any(r.overhead is not None for r in records):
        cols = [c for c in cols if c[0] != "overhead"]
    else:
        at = next(i for i, c in enumerate(cols) if c[0] == "overhead") + 1
        cols[at:at] = BREAKDOWN_COLUMNS
        if any(r.codec_share is not None for r in records):
            cols.insert(at + len(BREAKDOWN_COLUMNS), CODEC_COLUMN)
    if any(r.network != "model" for r in records):
        cols.insert(0, NETWORK_COLUMN)
    if not any(r.others_load is not None for r in records):
        cols = [c for c in cols if c[0] != "others' load"]
    if not any(r.flag for r in records):
        cols = [c for c in cols if c[0] != "flag"]
    return cols


def _cells(records: Sequence[BenchRecord]) -> tuple[list[str], list[list[str]]]:
    cols = _columns(records)
    rows = []
    for r in records:
        row = []
        for _, get, fmt in cols:
            value = get(r)
            row.append("-" if value is None else fmt.format(value))
        rows.append(row)
    return [c[0] for c in cols], rows


def terminal_table(records: Sequence[BenchRecord]) -> str:
    headers, rows = _cells(records)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    numeric = [h not in TEXT_COLUMNS for h in headers]
    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()
    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in rows]
    return "\n".join(out)


def markdown_table(records: Sequence[BenchRecord], commands: bool = False) -> str:
    headers, rows = _cells(records)
    if commands:
        headers = [*headers, "command"]
        rows = [[*row, f"`{r.command}`"] for row, r in zip(rows, records)]
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if h in TEXT_COLUMNS or h == "command" else "---:" for h in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def markdown_report(document: dict) -> str:
    """A self-contained Markdown page: environment, results, skipped configurations."""
    env = document["environment"]
    records = records_of(document)
    cpu = env.get("cpu", {})
    libs = ", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items() if v)
    gpus = "; ".join(f"{g['name']} (driver {g['driver']})" for g in env.get("gpus", [])) or "none"
    git = env.get("git") or {}
    lines = [
        f"Measured {env.get('timestamp_utc', '?')} on {cpu.get('model', '?')} "
        f"({cpu.get('physical_cores', '?')} cores, flags {' '.join(cpu.get('flags', []))}); GPU: {gpus}.",
        "",
    ]
    if env.get("gpu_state"):
        lines += [f"GPU at start: {describe_gpu_state(env['gpu_state'])}; at the end: "
                  f"{describe_gpu_state(env.get('gpu_state_end') or []) or '?'}.", ""]
    lines += [
        f"Libraries: {libs}. Commit {git.get('commit', 'unknown')[:12]}{' (dirty tree)' if git.get('dirty') else ''}. "
        f"Threads: {env.get('threads', {})}.",
    ]
    peak = document.get("sgemm_peak")
    if peak:
        lines += ["", f"Measured SGEMM peak: {peak['gflops']:.1f} GFLOP/s ({peak['size']}x{peak['size']} float32, {peak['blas']})."]
    lines += ["", markdown_table(records)]
    if document.get("skipped"):
        lines += ["", "Skipped:", ""] + [f"- {s['backend']} {s['precision']}: {s['reason']}" for s in document["skipped"]]
    if document.get("failed"):
        lines += ["", "Failed:", ""] + [
            f"- {f['backend']} {f['precision']} {f['width']}x{f['height']} b{f['batch']} {f['mode']}: {f['reason']}"
            for f in document["failed"]
        ]
    if document.get("captioner"):
        lines += ["", captioner_markdown(document["captioner"])]
    return "\n".join(lines) + "\n"


def captioner_markdown(rows: Sequence[dict]) -> str:
    out = ["| captioner | frame | encoder p50 ms | per-token p50 ms | tokens/caption | caption p50 ms | "
           "captions/s | encoder + tokens x per-token ms |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        parts = r["encoder_ms"] + r["tokens"] * r["token_ms"]
        out.append(f"| {r['backend']} {r['device']} {r['precision']} | {r['frame']} | {r['encoder_ms']:.2f} | "
                   f"{r['token_ms']:.3f} | {r['tokens']:.0f} | {r['caption_ms']:.2f} | {r['captions_s']:.1f} | "
                   f"{parts:.2f} |")
    for r in rows:
        if "faces_ms" in r:
            out.append(f"\nface detection (caption worker thread only): {r['faces_ms']:.1f} ms p50; whole caption with "
                       f"faces {r['caption_with_faces_ms']:.1f} ms p50 ({r.get('threads', 1)} thread)")
        if "overlay" in r:
            o = r["overlay"]
            out.append(f"\ncaption overlay: {o['captions_fps']:.1f} frames/s with captions vs {o['plain_fps']:.1f} "
                       f"without (ratio {o['fps_ratio']:.3f}; {o['frames_per_run']} frames x {o['rounds']} runs each, "
                       f"a caption every {o['interval_s']:g} s)")
    return "\n".join(out)


def write_markdown(document: dict, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    write_atomic(path, markdown_report(document))
    return path


# ---------------------------------------------------------------------------------------
# Plot


def plot_title(document: dict) -> str:
    """Model, CPU, cores, threads and GPU of a run, for the plot's title."""
    env = document["environment"]
    cpu = env.get("cpu", {})
    threads = env.get("threads", {}).get("requested_threads", 0)
    words = shlex.split(str(env.get("command", "")))
    engine = words[words.index("--engine") + 1] if "--engine" in words[:-1] else "mosaic"
    gpus = ", ".join(g["name"] for g in env.get("gpus", []))
    return (f"stylize-rt bench: {Path(engine).name} on {cpu.get('model', '?')} "
            f"({cpu.get('usable_cores', '?')} cores{f', {threads} thread(s) per backend' if threads else ''}"
            f"{'; ' + gpus if gpus else ''})")


def plot_series(records: Sequence[BenchRecord]) -> dict[tuple, list[BenchRecord]]:
    """One line per backend/device/precision/batch/mode/network, its points by pixel count: a peer
    network (``--peer``) is a line of its own, never a spike in the benchmarked model's line."""
    series: dict[tuple, list[BenchRecord]] = {}
    for r in records:
        series.setdefault((r.backend, r.device, r.precision, r.batch, r.mode, r.network), []).append(r)
    return {key: sorted(rows, key=lambda r: r.height * r.width) for key, rows in series.items()}


def write_plot(records: Sequence[BenchRecord], path: str | os.PathLike[str], title: str = "") -> Path:
    """PNG: p50 latency vs megapixels per frame, one line per backend/precision/batch/mode."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("--plot needs matplotlib: pip install 'stylize-rt[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    series = plot_series(records)
    configs = sorted({key[:4] for key in series})
    colors = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(configs)}
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for key, rows in sorted(series.items()):
        backend, device, precision, batch, mode, network = key
        x = [r.height * r.width / 1e6 for r in rows]
        y = [r.p50_ms / r.batch for r in rows]
        label = f"{backend} ({device}) {precision} b{batch}" + END_TO_END_LABELS.get(mode, "")
        if network != "model":  # a peer network: its own faint line, named
            ax.plot(x, y, marker="x", linestyle=":", linewidth=1, alpha=0.6, color=colors[key[:4]],
                    label=f"{label} [{network}]")
            continue
        ax.plot(x, y, marker="o" if mode == "model" else "s", linestyle=END_TO_END_LINES.get(mode, "-"),
                color=colors[key[:4]], label=label)
    sizes = sorted({(r.width, r.height) for r in records}, key=lambda s: s[0] * s[1])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([w * h / 1e6 for w, h in sizes])
    ax.set_xticklabels([f"{w}x{h}" for w, h in sizes], rotation=30)
    ax.minorticks_off()
    lows = [r.p50_ms / r.batch for r in records]
    ticks = [m * 10.0**e for e in range(-3, 6) for m in (1, 2, 5) if min(lows) / 1.5 <= m * 10.0**e <= max(lows) * 1.5]
    if ticks:  # 1-2-5 steps: readable values on a log axis
        ax.set_yticks(ticks)
        ax.set_yticklabels([f"{t:g}" for t in ticks])
    ax.set_xlabel("frame size (log scale by pixel count)")
    ax.set_ylabel("p50 latency per frame, ms (log)")
    ax.set_title(title or "stylize-rt: latency vs resolution")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return path
