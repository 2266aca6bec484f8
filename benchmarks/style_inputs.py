"""What the style inputs cost: the multi-style graph against a plain single-style network of its widths.

``python -m stylize_rt.benchmarks.style_inputs [--model MODEL] [--precision fp32,int8] [--sizes 640x360,1280x720]``

The multi-style default takes ``style``, ``strength`` and ``preserve_color`` inputs: conditional
instance norm (per-style scale and shift looked up by a small MatMul in every norm) and the
controls in the graph (one 3x3 colour matrix applied to the change at full resolution). The plain
network (``benchmarks.peers``, ``plain``: the model's generator config with ``n_styles = 1``,
random weights; speed does not depend on what the weights learned) has none of that. Both run
through the runtime path (``open_backend`` + ``Stylizer``) on the same held-out photo,
**alternating frame by frame, with the order swapped every frame**, so machine drift and cache
order hit both alike (the CPU matrix times each configuration in its own block, where a shared
machine's drift between blocks is of the size of the effect). INT8: the model folder's own graph
against the plain network quantized by the export stage's static QDQ path (``export.int8``, same
calibration). Reported per precision and size: median ms of both, their ratio, and the median of
the per-frame ratios. Target ≤ 1.05, at the controls a frame has by default (full strength, own
colours). A second row per size has the model draw at strength 0.6 with the colour kept, against
the same plain network: what using the controls costs (on a CPU both the folder's INT8 graph and its
FP32 ``generator_cpu.onnx`` skip the control tail at the defaults, ``export.int8_cpu``). Exit status: 0 measured; 2 bad input; 3 unwritable output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from stylize_rt import contract
from stylize_rt.benchmarks.command import model_parser, run_command
from stylize_rt.benchmarks.environment import collect
from stylize_rt.benchmarks.peers import build_peer, peer_unavailable
from stylize_rt.benchmarks.stats import summarize
from stylize_rt.errors import BadInputError
from stylize_rt.fileio import read_json
from stylize_rt.models import resolve_model
from stylize_rt.runtime.backends.registry import open_backend
from stylize_rt.runtime.style_controls import StyleControls
from stylize_rt.runtime.stylizer import Stylizer
from stylize_rt.sizes import parse_size
from stylize_rt.training.data import held_out_photos

TARGET_RATIO = 1.05
PRECISIONS = ("fp32", "int8")
CONTROLS_IN_USE = StyleControls(strength=0.6, preserve_color=True)
CONTROLS_IN_USE_LABEL = f"strength {CONTROLS_IN_USE.strength:g}, colour kept"


def model_folder(model: str) -> Path:
    """The model's folder, with its checkpoint card (the plain twin copies its generator config)."""
    path = resolve_model(model)
    folder = path if path.is_dir() else path.parent
    if not (folder / contract.CHECKPOINT_CARD).is_file():
        raise BadInputError(f"{model}: the plain twin copies the checkpoint's generator config; "
                            f"no {contract.CHECKPOINT_CARD} in {folder}")
    return folder


def plain_twin(folder: Path, workdir: Path, precisions: list[str]) -> dict[str, Path]:
    """The plain single-style network of the model's widths, per precision (INT8 quantized as the export does)."""
    reason = peer_unavailable()
    if reason:
        raise BadInputError(reason)
    card = read_json(folder / contract.CHECKPOINT_CARD, "checkpoint card")
    _ckpt, fp32 = build_peer("plain", workdir, card["generator"])
    graphs = {"fp32": fp32}
    if "int8" in precisions:
        import onnx  # export extra: checked by peer_unavailable

        from stylize_rt.export.int8 import calibration_set, quantize_int8
        from stylize_rt.export.onnx_export import save_atomic

        int8, _report = quantize_int8(onnx.load(str(fp32)), "uint8_nhwc", *calibration_set(None),
                                      target=contract.INT8_TARGET_ORT)  # the form the folders ship
        graphs["int8"] = workdir / "plain_int8.onnx"
        save_atomic(int8, graphs["int8"])
    return graphs


def _frame(width: int, height: int) -> np.ndarray:
    return cv2.resize(held_out_photos()["china"], (width, height), interpolation=cv2.INTER_AREA)


def measure(model: Stylizer, plain: Stylizer, frame: np.ndarray, frames: int,
            controls: StyleControls | None = None) -> dict:
    """Both stylizers on ``frame``, ``frames`` times each, alternating (see the module docstring);
    ``controls``: the model's (the plain network always draws at its defaults)."""
    model_ms, plain_ms = [], []
    for i in range(frames):
        order = ((model, model_ms, controls), (plain, plain_ms, None))
        for stylizer, samples, frame_controls in (order if i % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            stylizer(frame, frame_controls)
            samples.append((time.perf_counter() - start) * 1e3)
    ratios = np.asarray(model_ms) / np.asarray(plain_ms)
    a, b = summarize(model_ms).p50_ms, summarize(plain_ms).p50_ms
    return {"frames": frames, "model_median_ms": round(a, 3), "plain_median_ms": round(b, 3),
            "ratio_of_medians": round(a / b, 4), "median_of_ratios": round(float(np.median(ratios)), 4)}


def table(results: dict, in_use: dict | None = None) -> str:
    lines = ["| precision | model's controls | size | multi-style median ms | plain single-style median ms "
             "| ratio of medians | median of per-frame ratios | target ≤ 1.05 |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for precision, per_size in results.items():
        for size, r in per_size.items():
            rows = [("defaults", r, "met" if r["ratio_of_medians"] <= TARGET_RATIO else "**not met**")]
            used = (in_use or {}).get(precision, {}).get(size)
            if used is not None:
                rows.append((CONTROLS_IN_USE_LABEL, used, "(controls in use)"))
            for label, row, met in rows:
                lines.append(f"| {precision} | {label} | {size} | {row['model_median_ms']:.2f} | "
                             f"{row['plain_median_ms']:.2f} | {row['ratio_of_medians']:.3f} | "
                             f"{row['median_of_ratios']:.3f} | {met} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = model_parser("stylize_rt.benchmarks.style_inputs", __doc__, "multi-style model folder")
    p.set_defaults(precision="fp32,int8")
    p.add_argument("--sizes", default="640x360,512x512,1280x720", help="comma-separated WxH (default 640x360,512x512,1280x720)")
    p.add_argument("--frames", type=int, default=120, help="frames per size and network (default 120)")
    return p


def run(args: argparse.Namespace, command: str = "python -m stylize_rt.benchmarks.style_inputs") -> dict:
    precisions = [p for p in args.precision.split(",") if p]
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        raise BadInputError(f"--precision takes {' and '.join(PRECISIONS)} (got {args.precision!r})")
    if args.frames < 2:
        raise BadInputError("--frames must be >= 2")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    if not sizes:
        raise BadInputError("--sizes names no size")
    folder = model_folder(args.model)
    results: dict[str, dict] = {}
    in_use: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="stylize_rt_style_inputs_") as tmp:
        twins = plain_twin(folder, Path(tmp), precisions)
        for precision in precisions:
            model = Stylizer(open_backend(folder, args.backend, precision=precision, threads=args.threads))
            plain = Stylizer(open_backend(twins[precision], args.backend, precision=precision, threads=args.threads))
            try:
                if not model.multi_style:
                    raise BadInputError(f"{args.model} takes no style input: nothing to compare")
                results[precision], in_use[precision] = {}, {}
                for width, height in sizes:
                    model.warm_up(width, height)
                    plain.warm_up(width, height)
                    frame, size = _frame(width, height), f"{width}x{height}"
                    results[precision][size] = measure(model, plain, frame, args.frames)
                    in_use[precision][size] = measure(model, plain, frame, args.frames, CONTROLS_IN_USE)
            finally:
                model.close()
                plain.close()
    return {"results": results, "controls_in_use": in_use,
            "settings": {"model": str(args.model), "backend": args.backend, "precisions": precisions,
                         "frames": args.frames, "threads": args.threads,
                         "controls_in_use": {"strength": CONTROLS_IN_USE.strength,
                                             "preserve_color": CONTROLS_IN_USE.preserve_color}},
            "environment": collect(args.threads, command)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = " ".join(["python -m stylize_rt.benchmarks.style_inputs", *argv])
    return run_command(lambda: run(args, command), lambda result: table(result["results"], result["controls_in_use"]), args.json_out)


if __name__ == "__main__":
    sys.exit(main())
