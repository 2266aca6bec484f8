"""Achieved GFLOP/s against what this machine can do: the work a model needs, the peak it has.

Peak: a vendor's theoretical peak assumes clocks and issue rates a shared VM rarely
gets; a float32 matrix multiply through numpy's BLAS on all usable cores is what a
well-tuned kernel actually reaches here, so a model's GFLOP/s is reported as a fraction
of that measured SGEMM rate.

Work: convolution multiply-accumulates read from the ONNX graph itself at the benchmark
size (no torch needed), so any exported model, not only our generator, gets a FLOP count.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from stylize_rt import contract
from stylize_rt.export.frames import control_feeds

DEFAULT_SIZES = (1024, 2048)


@dataclass(frozen=True)
class SgemmPeak:
    gflops: float  # best observed, 2*n^3 flops per multiply
    size: int  # n of the n x n matrices that reached it
    repeats: int
    blas: str
    threads: int | str  # BLAS threads it ran with ("all": the library's default, every core)

    def to_dict(self) -> dict:
        return asdict(self)


def _blas_name() -> str:
    try:
        config = np.show_config(mode="dicts")
        return str(config["Build Dependencies"]["blas"]["name"])
    except Exception:  # noqa: BLE001 - the config layout differs between numpy versions
        return "unknown"


def measure_sgemm_peak(sizes: tuple[int, ...] = DEFAULT_SIZES, seconds_per_size: float = 0.6,
                       threads: int = 0) -> SgemmPeak:
    """Best float32 n x n matmul rate over ``sizes`` (each timed for about ``seconds_per_size``).

    ``threads`` > 0 limits the BLAS to that many threads (through threadpoolctl, where
    installed), so a run whose backends use N threads is compared with an N-thread peak.
    """
    limit = None
    if threads > 0:
        try:
            from threadpoolctl import threadpool_limits

            limit = threadpool_limits(limits=threads, user_api="blas")
        except ImportError:
            threads = 0
    try:
        peak = _measure(sizes, seconds_per_size)
    finally:
        if limit is not None:
            limit.restore_original_limits()
    return SgemmPeak(gflops=peak[0], size=peak[1], repeats=peak[2], blas=_blas_name(), threads=threads or "all")


def _measure(sizes: tuple[int, ...], seconds_per_size: float) -> tuple[float, int, int]:
    rng = np.random.default_rng(0)
    best = (0.0, sizes[0], 0)
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty((n, n), np.float32)
        np.matmul(a, b, out=out)  # warm-up: thread pool start, page faults
        repeats, start = 0, time.perf_counter()
        fastest = float("inf")
        while repeats < 2 or time.perf_counter() - start < seconds_per_size:
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            fastest = min(fastest, time.perf_counter() - t0)
            repeats += 1
        if not np.isfinite(out).all():
            raise RuntimeError("SGEMM produced non-finite values; the peak measurement is invalid")
        gflops = 2.0 * n**3 / fastest / 1e9
        if gflops > best[0]:
            best = (gflops, n, repeats)
    return best


def onnx_conv_macs(model_path: str | os.PathLike[str], height: int, width: int) -> int:
    """Multiply-accumulates of all Conv/ConvTranspose nodes for one H x W frame.

    ONNX shape inference cannot resolve the sizes behind reflect padding and the decoder's
    crop (they are computed in the graph), so the conv outputs are made graph outputs and
    one frame is run through ONNX Runtime to read their real shapes. Weight shapes come
    from the initializers, through a DequantizeLinear/Cast where the model is quantized.
    """
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    graph = model.graph
    initializers = {t.name: tuple(t.dims) for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    convs = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
    if not convs:
        return 0
    feeds_needed = {i.name for i in graph.input} - set(initializers)
    controls = feeds_needed & set(contract.CONTROL_INPUTS)  # a multi-style graph: one-hot style 0, full strength
    if len(feeds_needed - controls) != 1:
        raise ValueError(f"expected one image input, found {sorted(feeds_needed)}")

    def weight_shape(name: str) -> tuple[int, ...] | None:
        for _ in range(4):  # follow DequantizeLinear / Cast / Identity back to an initializer
            if name in initializers:
                return initializers[name]
            node = producers.get(name)
            if node is None or node.op_type not in ("DequantizeLinear", "Cast", "Identity"):
                return None
            name = node.input[0]
        return None

    existing = {o.name for o in graph.output}
    for node in convs:
        if node.output[0] not in existing:
            graph.output.append(onnx.helper.make_empty_tensor_value_info(node.output[0]))
            existing.add(node.output[0])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    inp = next(i for i in session.get_inputs() if i.name not in controls)
    if inp.type == "tensor(uint8)":
        x = np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    else:
        dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        x = np.random.default_rng(0).random((1, 3, height, width)).astype(dtype)
    names = [n.output[0] for n in convs]
    n_styles = next((int(i.shape[1]) for i in session.get_inputs() if i.name == contract.INPUT_STYLE), 1)
    extra = {k: v for k, v in control_feeds(1, n_styles, style=0).items() if k in controls}
    shapes = dict(zip(names, (o.shape for o in session.run(names, {inp.name: x, **extra}))))
    macs = 0
    for node in convs:
        w = weight_shape(node.input[1])
        if w is None:
            raise ValueError(f"cannot find the weight shape of {node.name or node.output[0]}")
        out = shapes[node.output[0]]
        if node.op_type == "Conv":  # per output element: C_in/groups * kH * kW
            macs += int(np.prod(out)) * int(np.prod(w[1:]))
        else:  # ConvTranspose: per input element: C_out/groups * kH * kW
            in_elems = int(np.prod(out)) * w[0] // (w[1] * _group(node)) // int(np.prod(_strides(node)))
            macs += in_elems * int(np.prod(w[1:]))
    return macs


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1) or 1


def _strides(node) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == "strides"), [1, 1])


if __name__ == "__main__":
    print(measure_sgemm_peak())
