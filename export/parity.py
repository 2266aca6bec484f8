"""Running an exported graph beside its PyTorch model: an ONNX Runtime CPU session, the float32
PyTorch reference output, and the PSNR between them (used by verification, FP16 and INT8)."""

from __future__ import annotations

import math
import os

import numpy as np

from stylize_rt import contract
from stylize_rt.errors import BadInputError, first_line
from stylize_rt.export.frames import to_feed


def ort_session(model, optimize: bool = True, threads: int = 1):
    """An ONNX Runtime CPU session for a path or an in-memory ``ModelProto``.

    ``optimize=False`` runs the graph exactly as written (for bit-exact graph comparisons).
    """
    import onnxruntime as ort  # loaded once a graph is run, not when export is imported

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = str(model) if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types
        raise BadInputError(f"ONNX Runtime cannot load the model: {first_line(exc)}") from None


def psnr(reference: np.ndarray, test: np.ndarray, peak: float) -> float:
    """PSNR in dB (inf when identical); computed in float64."""
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def torch_reference(generator, frames: np.ndarray, io_layout: str,
                    controls: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """What the checkpoint computes in PyTorch float32, in the graph's output layout;
    ``controls``: a multi-style graph's style/strength/preserve_color feeds."""
    import torch  # export needs torch; kept local so the graph tools import without it

    from stylize_rt.nets.generator import MultiStyleUInt8NHWC, UInt8NHWC  # torch, as above

    with torch.inference_mode():
        if controls:
            wrapped = MultiStyleUInt8NHWC(generator.eval())
            tensors = [torch.from_numpy(np.ascontiguousarray(controls[k])) for k in contract.CONTROL_INPUTS]
            return wrapped(torch.from_numpy(np.ascontiguousarray(frames)), *tensors).numpy()
        if io_layout == "uint8_nhwc":
            return UInt8NHWC(generator.eval())(torch.from_numpy(np.ascontiguousarray(frames))).numpy()
        return generator.eval()(torch.from_numpy(to_feed(frames, io_layout))).numpy()
