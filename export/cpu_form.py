"""The FP32 generator in ONNX Runtime's CPU form, shipped beside the graph engines are built from.

``generator.onnx`` is TensorRT's input and stays exactly as exported. On a CPU-only ONNX Runtime a
model folder's ``generator_cpu.onnx`` runs in its place (``runtime.backends.registry.folder_graph``):
the same graph with the control tail under an ``If`` that only ``strength < 1`` or kept colours
take, and the 22 small ``style @ table`` MatMuls fused into one (``export.int8_cpu``, which also
serves INT8 graphs). Those are what the style inputs cost on top of a plain single-style network:
0.95x the exported graph's time at 640x360 and 1280x720 (one thread, alternating runs).

At the defaults the tail computes ``input + (stylized - input) * 1``; the ``If`` returns
``stylized`` itself, so a byte can differ by one level where float rounding straddled a half.
``write_cpu_form`` measures that on held-out frames under every style and under varied controls
before it writes, and refuses more. The file carries its source's SHA-256
(``contract.CPU_FORM_OF``): a re-exported ``generator.onnx`` is never shadowed by a stale CPU form.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx

from stylize_rt import contract
from stylize_rt.engines.sidecar import file_sha256
from stylize_rt.errors import BadInputError
from stylize_rt.export.frames import graph_feeds, n_styles_of, sample_frames
from stylize_rt.export.int8_cpu import onnxruntime_cpu_form
from stylize_rt.export.metadata import get_metadata, set_metadata
from stylize_rt.export.onnx_export import save_atomic
from stylize_rt.export.parity import ort_session

CHECK_SIZE = (72, 128)  # (height, width) of the held-out frames the two graphs are compared on
CHECK_FRAMES = 4
MAX_LEVELS = 1  # float rounding of the skipped identity blend: at most one level, at few pixels
MAX_CHANGED_FRACTION = 1e-3  # measured: 7e-6 of the bytes at 640x360 and 1280x720


def _feeds(model: onnx.ModelProto, frames: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Each style at the defaults (the ``If``'s short branch), then varied controls (its long one)."""
    n_styles = n_styles_of(model)
    feeds = [graph_feeds(frames, "uint8_nhwc", n_styles, style) for style in range(n_styles)]
    feeds.append(graph_feeds(frames, "uint8_nhwc", n_styles, None))
    return feeds


def compare(source: onnx.ModelProto, cpu_form: onnx.ModelProto) -> dict:
    """How far the CPU form's bytes are from its source's, on held-out frames under every path."""
    frames, _origin = sample_frames(CHECK_FRAMES, *CHECK_SIZE, seed=3, held_out=True)
    reference, candidate = ort_session(source), ort_session(cpu_form)
    worst, changed, total = 0, 0, 0
    for feed in _feeds(source, frames):
        a = reference.run(None, feed)[0].astype(np.int16)
        b = candidate.run(None, feed)[0].astype(np.int16)
        diff = np.abs(a - b)
        worst, changed, total = max(worst, int(diff.max())), changed + int((diff > 0).sum()), total + diff.size
    return {"max_levels": worst, "changed_fraction": changed / total}


def write_cpu_form(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> dict:
    """Write ``source``'s CPU form to ``output`` (atomically) once it matches ``source`` within
    ``MAX_LEVELS``; returns the comparison. Only uint8 NHWC multi-style graphs have a tail to skip."""
    source = Path(source)
    model = onnx.load(str(source))
    if contract.INPUT_STRENGTH not in {i.name for i in model.graph.input}:
        raise BadInputError(f"{source.name} has no control inputs: its CPU form would be the same graph")
    if get_metadata(model).get(contract.INT8_TARGET):
        raise BadInputError(f"{source.name} is an INT8 graph: its CPU form comes from the INT8 export "
                            f"(--int8-target {contract.INT8_TARGET_ORT})")
    cpu_form, _moved = onnxruntime_cpu_form(model)
    check = compare(model, cpu_form)
    if check["max_levels"] > MAX_LEVELS or check["changed_fraction"] > MAX_CHANGED_FRACTION:
        raise BadInputError(f"the CPU form of {source.name} differs from it by up to {check['max_levels']} levels "
                            f"at {check['changed_fraction']:.2e} of the bytes (allowed {MAX_LEVELS}, "
                            f"{MAX_CHANGED_FRACTION:g}); not written")
    set_metadata(cpu_form, {contract.CPU_FORM_OF: file_sha256(source)})
    save_atomic(cpu_form, output)
    return check


__all__ = ["compare", "write_cpu_form", "MAX_LEVELS"]
