"""Graph simplification with onnxslim, kept only when it helps and changes no number.

The legacy exporter writes reflect-pad amounts and crop sizes as chains of Constant /
ConstantOfShape / Concat / Reshape / Slice nodes; onnxslim folds them into initializers
(about 4x fewer nodes for our generator), which makes the graph easier for the TensorRT
parser and for people reading it. A simplifier can still be wrong, so the slim graph is
run against the original in ONNX Runtime (graph optimizations off, so both graphs run
exactly as written) and kept only if every output is bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from stylize_rt.export.parity import ort_session


@dataclass
class SimplifyReport:
    nodes_before: int
    nodes_after: int
    kept: bool
    reason: str

    def line(self) -> str:
        if self.kept:
            return f"simplify: onnxslim {self.nodes_before} -> {self.nodes_after} nodes, outputs bit-identical"
        return f"simplify: kept the original graph ({self.nodes_before} nodes): {self.reason}"


def simplify(model, feeds: list[dict[str, np.ndarray]]):
    """Return ``(model_to_use, SimplifyReport)``; ``model`` itself is not modified."""
    before = len(model.graph.node)
    try:
        import onnxslim  # optional: without it the graph is kept as exported
    except ImportError:
        return model, SimplifyReport(before, before, False, "onnxslim is not installed")
    original = onnx.ModelProto()
    original.CopyFrom(model)
    try:
        slim = onnxslim.slim(original)
    except Exception as exc:  # noqa: BLE001 - a simplifier failure must never fail the export
        return model, SimplifyReport(before, before, False, f"onnxslim failed: {exc}")
    if slim is None:
        return model, SimplifyReport(before, before, False, "onnxslim returned nothing")
    after = len(slim.graph.node)
    if after >= before:
        return model, SimplifyReport(before, after, False, "no fewer nodes")
    # onnxslim keeps metadata_props today; restore them in case a version does not.
    del slim.metadata_props[:]
    slim.metadata_props.extend(model.metadata_props)
    try:
        onnx.checker.check_model(slim, full_check=True)
    except Exception as exc:  # noqa: BLE001 - a simplifier failure must never fail the export
        return model, SimplifyReport(before, after, False, f"simplified graph fails the checker: {exc}")
    reference = ort_session(model, optimize=False)
    candidate = ort_session(slim, optimize=False)
    for feed in feeds:
        for want, got in zip(reference.run(None, feed), candidate.run(None, feed)):
            if want.shape != got.shape or want.dtype != got.dtype or not np.array_equal(want, got):
                diff = np.abs(want.astype(np.float64) - got.astype(np.float64)).max() if want.shape == got.shape else None
                return model, SimplifyReport(before, after, False, f"outputs differ (max abs {diff})")
    return slim, SimplifyReport(before, after, True, "")
