"""Mixed-precision FP16 graphs that cannot overflow where FP32 would not.

FP16's largest finite value is 65504. The classic failure of style-transfer generators in
FP16 engines is instance normalization: its variance is a mean of squares, and any
activation above ~256 in magnitude squares past 65504 -> inf -> NaN frames. So:

1. ``activation_stats`` runs the FP32 graph in ONNX Runtime on real frames with every
   intermediate tensor exposed and records per-layer max |activation| (and, for each
   InstanceNormalization, the max per-channel variance and max |input|).
2. The layers kept in FP32 (``Fp16Report.keep_fp32`` + ``io_island_nodes``) are every
   InstanceNormalization, the uint8 pre/post-processing, and any layer whose inputs or
   outputs come within ``HEADROOM`` of 65504. Their names go into
   the ``stylize_rt.fp32_layers`` metadata, which the TensorRT builder reads (TensorRT 10
   weak typing: per-layer FP32 precision constraints).
3. ``convert_to_fp16`` writes the mixed-precision graph (TensorRT 11 is strongly typed and
   has no FP16 flag: the engine's precision *is* the graph's): FP16 weights and activations,
   explicit Cast -> FP32 before each kept layer (with FP32 weights, e.g. instance-norm
   scale/B) and Cast -> FP16 after, IO types unchanged. ONNX Runtime's
   ``convert_float_to_float16`` does the rewriting; its output is then topologically
   sorted (it appends the IO casts at the end), cleared of FP32 -> FP16 -> FP32 round trips
   between adjacent FP32 layers, and checked here, not trusted.
4. ``naive_fp16_check`` simulates the all-FP16 model in PyTorch to show what the islands prevent.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import numpy as np
import onnx

from stylize_rt.export.graph_links import links
from stylize_rt.export.parity import ort_session, psnr, torch_reference

FP16_MAX = 65504.0
# A layer is overflow-prone when frames we did not calibrate on could push it past 65504:
# activations above 65504 / 8 on sample frames are kept in FP32.
HEADROOM = 8.0
ALWAYS_FP32_OPS = ("InstanceNormalization",)
FLOAT, FLOAT16 = 1, 10


@dataclass
class LayerStat:
    node: str
    op: str
    max_abs: float
    max_input_abs: float = 0.0
    max_variance: float = 0.0  # InstanceNormalization only: largest per-(n, c) variance of its input
    keep_fp32: bool = False
    reason: str = ""


@dataclass
class Fp16Report:
    frames: str
    layers: list[LayerStat] = field(default_factory=list)

    @property
    def keep_fp32(self) -> list[str]:
        return [layer.node for layer in self.layers if layer.keep_fp32]

    def lines(self) -> list[str]:
        out = [f"fp16 safety on {self.frames}: FP16 max is {FP16_MAX:g}; layers kept in FP32:"]
        for layer in self.layers:
            if layer.keep_fp32:
                extra = ""
                if layer.op == "InstanceNormalization":
                    extra = f", input max|x| {layer.max_input_abs:.3g}, max variance {layer.max_variance:.3g}"
                out.append(f"  {layer.node} ({layer.op}): max|out| {layer.max_abs:.3g}{extra} -- {layer.reason}")
        peak = max((layer for layer in self.layers), key=lambda layer: layer.max_abs, default=None)
        if peak is not None:
            out.append(f"  largest activation anywhere: {peak.max_abs:.3g} at {peak.node} ({peak.op})")
        return out


def name_nodes(model) -> None:
    """Give every node a unique name (in place): fp32_layers refers to nodes by name."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def io_island_nodes(model) -> list[str]:
    """Nodes of the uint8 pre/post-processing (Cast/Transpose/Div in, Clip/Mul/Round/Cast out).

    Pre: walk forward from the graph inputs until the first Pad/Conv. Post: walk back from
    the outputs until the final activation or a Conv. These stay FP32 so the 0..255 range
    and rounding are exact (FP16 has 11 significant bits: fine for 255, not for the
    divide-by-255 that follows).
    """
    producer, consumers = links(model.graph)
    stop_forward = {"Pad", "Conv"}
    stop_backward = {"Sigmoid", "Tanh", "Conv", "Add", "Relu"}
    picked: list[str] = []
    frontier = [i.name for i in model.graph.input]
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if node.op_type not in stop_forward and node.name not in picked:
                picked.append(node.name)
                frontier.extend(node.output)
    frontier = [o.name for o in model.graph.output]
    while frontier:
        node = producer.get(frontier.pop())
        if node is not None and node.op_type not in stop_backward and node.name not in picked:
            picked.append(node.name)
            frontier.extend(i for i in node.input if i)
    # Only nodes that carry float data matter (Shape/Gather chains are int64 either way).
    return [n for n in picked if _node(model, n).op_type not in ("Shape", "Gather", "Unsqueeze", "Concat")]


def _node(model, name: str):
    return next(n for n in model.graph.node if n.name == name)


def _float_tensors(model) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in inferred.graph.initializer:
        types[init.name] = init.data_type
    return types


def activation_stats(model, feeds: list[dict[str, np.ndarray]], frames: str = "sample frames") -> Fp16Report:
    """Per-layer activation ranges of the FP32 ``model`` on ``feeds`` (ONNX Runtime CPU)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    name_nodes(probe)
    types = _float_tensors(probe)
    existing = {o.name for o in probe.graph.output}
    watched = []
    for node in probe.graph.node:
        for name in node.output:
            if types.get(name) == FLOAT:
                watched.append(name)
                if name not in existing:
                    probe.graph.output.append(onnx.helper.make_tensor_value_info(name, FLOAT, None))
                    existing.add(name)
    norm_inputs = {n.input[0] for n in probe.graph.node if n.op_type in ALWAYS_FP32_OPS}
    for name in norm_inputs - existing:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, FLOAT, None))
        existing.add(name)
    session = ort_session(probe, optimize=False)
    out_names = [o.name for o in session.get_outputs()]
    max_abs: dict[str, float] = {}
    max_var: dict[str, float] = {}
    for feed in feeds:
        for name, value in zip(out_names, session.run(None, feed)):
            if value.dtype != np.float32:
                continue
            v = value.astype(np.float64)
            max_abs[name] = max(max_abs.get(name, 0.0), float(np.max(np.abs(v))) if v.size else 0.0)
            if name in norm_inputs and v.ndim >= 3:
                var = v.reshape(v.shape[0], v.shape[1], -1).var(axis=2)
                max_var[name] = max(max_var.get(name, 0.0), float(var.max()))
    report = Fp16Report(frames=frames)
    limit = FP16_MAX / HEADROOM
    for node in probe.graph.node:
        outs = [max_abs.get(o, 0.0) for o in node.output if o in max_abs]
        if not outs and node.op_type not in ALWAYS_FP32_OPS:
            continue
        stat = LayerStat(node.name, node.op_type, max(outs, default=0.0))
        if node.op_type in ALWAYS_FP32_OPS:
            stat.max_input_abs = max_abs.get(node.input[0], 0.0)
            stat.max_variance = max_var.get(node.input[0], 0.0)
            stat.keep_fp32 = True
            risky = stat.max_input_abs > FP16_MAX**0.5 or stat.max_variance > limit
            stat.reason = (
                "squares of its input overflow FP16 on these frames" if risky else "variance is a mean of squares (kept FP32 always)"
            )
        else:
            # Inputs count too: a Sigmoid fed by a huge FP32 conv would get inf through its FP16 cast.
            stat.max_input_abs = max((max_abs.get(i, 0.0) for i in node.input if i), default=0.0)
            peak = max(stat.max_abs, stat.max_input_abs)
            if peak > limit or not np.isfinite(peak):
                stat.keep_fp32 = True
                stat.reason = f"activations within {HEADROOM:g}x of the FP16 max"
        report.layers.append(stat)
    return report


def topological_sort(graph) -> None:
    """Reorder ``graph.node`` (in place) so every input is produced before it is used."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in available})[:3]
            raise ValueError(f"graph has a cycle or dangling inputs: {missing}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def convert_to_fp16(model, keep_fp32: list[str]):
    """The mixed-precision FP16 graph of FP32 ``model``; nodes named in ``keep_fp32`` stay FP32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    source = onnx.ModelProto()
    source.CopyFrom(model)
    name_nodes(source)
    half = convert_float_to_float16(
        source,
        keep_io_types=True,
        op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(ALWAYS_FP32_OPS),
        node_block_list=list(keep_fp32),
    )
    topological_sort(half.graph)
    remove_cast_roundtrips(half)
    onnx.checker.check_model(half, full_check=True)
    problems = check_fp16_graph(model, half, keep_fp32)
    if problems:
        raise ValueError("FP16 conversion produced an unsafe graph: " + "; ".join(problems[:3]))
    return half


def _cast_to(node) -> int:
    return next((a.i for a in node.attribute if a.name == "to"), 0)


def remove_cast_roundtrips(model) -> int:
    """Drop FP32 -> FP16 -> FP32 Cast pairs (in place); returns how many were removed.

    ``convert_float_to_float16`` casts every blocked node's output to FP16 and casts it back
    for the next blocked node, so two adjacent FP32 layers (an overflow-prone Conv feeding
    its InstanceNormalization) still exchange the tensor in FP16 -- exactly the overflow the
    island was for. Consumers of the round trip read the FP32 tensor directly instead; a
    round trip into a graph output (an FP32 tail such as a final crop, under ``keep_io_types``)
    becomes an Identity of the FP32 tensor.
    """
    graph = model.graph
    types = _float_tensors(model)
    producer = {o: n for n in graph.node for o in n.output}
    graph_outputs = {o.name for o in graph.output}
    dropped = []
    for node in graph.node:
        if node.op_type != "Cast" or _cast_to(node) != FLOAT:
            continue
        first = producer.get(node.input[0])
        if first is None or first.op_type != "Cast" or _cast_to(first) != FLOAT16:
            continue
        source = first.input[0]
        if types.get(source) != FLOAT:
            continue
        if node.output[0] in graph_outputs:
            # The graph output keeps its name: the second Cast becomes an Identity of the FP32 tensor.
            node.op_type, node.input[0] = "Identity", source
            del node.attribute[:]
            continue
        for other in graph.node:
            for i, name in enumerate(other.input):
                if name == node.output[0]:
                    other.input[i] = source
        dropped.append(node)
    for node in dropped:
        graph.node.remove(node)
    # A first Cast nobody reads any more goes too.
    used = {i for n in graph.node for i in n.input} | graph_outputs
    for node in [n for n in graph.node if n.op_type == "Cast" and n.output[0] not in used]:
        graph.node.remove(node)
    return len(dropped)


def check_fp16_graph(original, half, keep_fp32: list[str]) -> list[str]:
    """What is wrong with ``half`` (empty list = fine): IO types, FP32 islands, FP16 weights."""
    types = _float_tensors(half)
    problems = []
    for a, b in zip(list(original.graph.input) + list(original.graph.output), list(half.graph.input) + list(half.graph.output)):
        if a.type.tensor_type.elem_type != b.type.tensor_type.elem_type:
            problems.append(f"IO tensor {a.name} changed type")
    keep = set(keep_fp32)
    for node in half.graph.node:
        if node.op_type in ALWAYS_FP32_OPS or node.name in keep:
            bad = [i for i in node.input if i and types.get(i) == FLOAT16]
            bad += [o for o in node.output if types.get(o) == FLOAT16]
            if bad:
                problems.append(f"{node.name} ({node.op_type}) has FP16 tensors {bad[:2]}")
    producer = {o: n for n in half.graph.node for o in n.output}
    for node in half.graph.node:
        first = producer.get(node.input[0]) if node.op_type == "Cast" and node.input else None
        if (first is not None and first.op_type == "Cast" and _cast_to(node) == FLOAT and _cast_to(first) == FLOAT16
                and types.get(first.input[0]) == FLOAT):
            problems.append(f"{first.name} -> {node.name} round-trips an FP32 tensor through FP16")
    if not any(init.data_type == FLOAT16 for init in half.graph.initializer):
        problems.append("no FP16 weights at all")
    return problems


def fp16_summary(half) -> dict:
    """Counts that describe a mixed-precision graph (for reports and docs)."""
    types = _float_tensors(half)
    casts = [n for n in half.graph.node if n.op_type == "Cast"]
    fp16_nodes = sum(1 for n in half.graph.node if any(types.get(o) == FLOAT16 for o in n.output) and n.op_type != "Cast")
    fp32_nodes = sum(1 for n in half.graph.node if any(types.get(o) == FLOAT for o in n.output) and n.op_type != "Cast")
    fp16_weights = sum(1 for i in half.graph.initializer if i.data_type == FLOAT16)
    fp32_weights = sum(1 for i in half.graph.initializer if i.data_type == FLOAT)
    return {"casts": len(casts), "fp16_nodes": fp16_nodes, "fp32_nodes": fp32_nodes,
            "fp16_weights": fp16_weights, "fp32_weights": fp32_weights}


def naive_fp16_check(generator, frames: np.ndarray, io_layout: str) -> str:
    """Run the PyTorch model as an all-FP16 engine would without FP32 islands; say what broke.

    ONNX Runtime's CPU provider is no FP16 simulator (it silently runs FP16 nodes that lack
    CPU kernels in FP32), so this is a per-layer simulation in PyTorch instead: weights
    rounded to FP16, every Conv / residual output stored in FP16 (FP32 accumulation, as on
    tensor cores), and instance norm computed naively in FP16 (mean of squares in FP16,
    which is where real FP16 engines overflow). It explains why the FP32 islands exist.
    """
    import torch  # a PyTorch simulation, only when asked for (torch-free graph tools otherwise)
    from torch import nn

    model = copy.deepcopy(generator).eval()
    first_bad: list[str] = []
    peaks: dict[str, float] = {}

    def store_fp16(name):
        def hook(_module, _inputs, output):
            half = output.half().float()
            peaks[name] = max(peaks.get(name, 0.0), float(output.detach().abs().max()))
            if not first_bad and not torch.isfinite(half).all():
                first_bad.append(name)
            return half
        return hook

    def naive_norm(name, norm: nn.InstanceNorm2d):
        def forward(x):
            xh = x.half()
            mean = xh.mean(dim=(2, 3), keepdim=True)
            var = (xh * xh).mean(dim=(2, 3), keepdim=True) - mean * mean
            y = (xh - mean) / torch.sqrt(var.clamp_min(0) + norm.eps)
            if norm.affine:
                y = y * norm.weight.half().view(1, -1, 1, 1) + norm.bias.half().view(1, -1, 1, 1)
            if not first_bad and not torch.isfinite(y).all():
                first_bad.append(name)
            return y.float()
        return forward

    with torch.no_grad():
        for param in model.parameters():
            param.copy_(param.half().float())
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d) or type(module).__name__ == "ResidualBlock":
                module.register_forward_hook(store_fp16(name))
            elif isinstance(module, nn.InstanceNorm2d):
                module.forward = naive_norm(name, module)
    want = torch_reference(generator, frames, io_layout).astype(np.float64)
    got = torch_reference(model, frames, io_layout).astype(np.float64)
    nonfinite = int(got.size - np.count_nonzero(np.isfinite(got)))
    if first_bad:
        return f"{nonfinite}/{got.size} output values inf/NaN; first overflow at {first_bad[0]}"
    peak = 255.0 if io_layout == "uint8_nhwc" else 1.0
    return f"finite on these frames, PSNR {psnr(want, got, peak):.1f} dB vs FP32 (the FP32 islands are a safety margin here)"


def fp32_layers_json(names: list[str]) -> str:
    return json.dumps(sorted(set(names)))
