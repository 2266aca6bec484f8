"""The CPU form's two ends: the input quantized by one table lookup, a head conv wide enough for ONNX
Runtime's fast integer kernel, and 8-bit data movement after it (``export.int8_cpu`` runs these after
it moves the conv inputs). Measured at 1280x720 on the 2-core CPU, ONNX Runtime 1.32, 2 threads.

0. **The input is quantized in one step.** ``QuantizeLinear(Div(Cast(frame), 255))`` becomes
   ``QuantizeLinear(LeakyRelu(DequantizeLinear(frame, 1/255, 0)))``, which ONNX Runtime runs as one
   256-entry table (``QLinearLeakyRelu``; a frame is never negative, so the LeakyRelu passes every
   value): 0.4 ms against 1.5 to 2.4 for the three float passes. It is done only where all 256
   bytes quantize the same both ways (checked here), so it is exact.

1. **Narrow convs get zero filters up to 16 outputs**, dropped again by a ``Slice`` on the 8-bit
   output. ONNX Runtime's x86 symmetric integer conv (MLAS ``MlasConvSym``) takes a conv only with
   at least 16 output channels; the generator's head (16 -> 12: RGB for the 2x2 depth-to-space)
   fell back to im2col + GEMM and took 2.9x the stem's time at the same multiply-adds (5.2 against
   1.8 ms at 1280x720, 2 threads); widened, 1.6 ms. The extra filters are zeros and the real
   outputs keep their values: exact. Only convs with 12 to 15 outputs widen (at most a third more
   filters, the case measured); narrower ones stay as they are. Where the widened head feeds the
   depth-to-space, its zero filters sit at the end of each half of the rows instead, so that
   transpose moves 8-byte blocks (ONNX Runtime's fast path), and the slice comes after it.
2. **The depth-to-space and crop after the head move onto the 8-bit tensor.** The graph ends
   ``Q -> DQ -> Sigmoid -> (transposes, reshapes, slices) -> round(255 * x)``. The copies move
   ahead of ``DQ -> Sigmoid``: those act value by value, so moving them is exact, and the copies
   then move a quarter of the bytes. Where the output is ``round(255 * sigmoid)`` (a single-style
   graph, or a multi-style one at default controls), it becomes ``QuantizeLinear(sigmoid, 1/255,
   0)``, which ONNX Runtime fuses with the ``DequantizeLinear`` into one table lookup
   (``QLinearSigmoid``); it differs from the float path by float rounding only (at most 1 level).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from stylize_rt.export.graph_links import TYPE_BLIND, forget_value_info, links

FAST_CONV_OUTPUTS = 16  # MLAS FilterOutputChannelPackCount: fewer outputs and the symmetric kernel declines
_WIDEN_FROM = 12  # widen only where 16 filters are at most a third more
_COPYING_AFTER = ("Transpose", "Reshape", "Slice", "Unsqueeze", "Squeeze", "Flatten")
INPUT_SCALE = np.float32(1.0 / 255.0)
# The float32 just below 1/255: float32(1/255) lies above 1/255, so x / scale rounded the tie at
# x = 0.5 (a logit of exactly 0, common) down to 127 where round(255 * x) gives 128.
OUTPUT_SCALE = np.nextafter(np.float32(1.0 / 255.0), np.float32(0.0))
OUTPUT_SCALE_NAME = "/uint8_output/inv255"
OUTPUT_ZERO_NAME = "/uint8_output/zero_u8"


def unsigned_zero_point(graph, initializers: dict, name: str) -> str:
    """The name of the uint8 zero point 128 standing in for the signed zero point 0 ``name``
    (``q_u8 = q_s8 + 128`` on the same scale); added to the graph once."""
    unsigned = name + "_u8"
    if unsigned not in initializers:
        shape = numpy_helper.to_array(initializers[name]).shape
        initializers[unsigned] = numpy_helper.from_array(np.full(shape, 128, np.uint8), unsigned)
        graph.initializer.append(initializers[unsigned])
    return unsigned


def signed_zero(initializers: dict, node) -> bool:
    """Whether a Q/DQ node's zero point is the symmetric signed 0 (what ``quantize_qdq`` writes)."""
    zero = initializers.get(node.input[2]) if len(node.input) > 2 else None
    return (zero is not None and zero.data_type == onnx.TensorProto.INT8
            and not numpy_helper.to_array(zero).any())


def _pad_first_axis(initializers: dict, name: str, size: int, fill) -> None:
    values = numpy_helper.to_array(initializers[name])
    if values.ndim == 0 or values.shape[0] >= size:
        return  # a per-tensor scale or zero point serves the new filters as it is
    extra = np.full((size - values.shape[0],) + values.shape[1:], fill, values.dtype)
    initializers[name].CopyFrom(numpy_helper.from_array(np.concatenate([values, extra]), name))


def _quantize(values: np.ndarray, scale: float, zero: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(values / np.float32(scale)) + zero, info.min, info.max)


def quantize_input_directly(graph) -> int:
    """Quantize each uint8 graph input in one table lookup (module doc, 0); how many quantizations."""
    producers, consumers = links(graph)
    initializers = {i.name: i for i in graph.initializer}
    frames = {i.name for i in graph.input if i.type.tensor_type.elem_type == onnx.TensorProto.UINT8}
    every_byte = np.arange(256, dtype=np.float32)
    rewritten = 0
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        div = producers.get(q.input[0])
        cast = producers.get(div.input[0]) if div is not None and div.op_type == "Div" else None
        if (cast is None or cast.op_type != "Cast" or cast.input[0] not in frames or _cast_to(cast) != onnx.TensorProto.FLOAT
                or div.input[1] not in initializers or numpy_helper.to_array(initializers[div.input[1]]).item() != 255.0
                or len(q.input) < 3 or q.input[1] not in initializers or q.input[2] not in initializers):
            continue
        scale = numpy_helper.to_array(initializers[q.input[1]])
        zero = numpy_helper.to_array(initializers[q.input[2]])
        if scale.size != 1 or zero.size != 1:
            continue
        divided = _quantize(every_byte / np.float32(255.0), scale.item(), int(zero.item()), zero.dtype)
        multiplied = _quantize(every_byte * INPUT_SCALE, scale.item(), int(zero.item()), zero.dtype)
        if not np.array_equal(divided, multiplied):
            continue
        prefix = q.name + "/from_bytes/"
        if prefix + "scale" not in initializers:
            graph.initializer.extend([numpy_helper.from_array(INPUT_SCALE, prefix + "scale"),
                                      numpy_helper.from_array(np.array(0, np.uint8), prefix + "zero")])
        at = list(graph.node).index(q)
        graph.node.insert(at, helper.make_node("LeakyRelu", [prefix + "x01"], [prefix + "passed"],
                                               name=prefix + "LeakyRelu"))
        graph.node.insert(at, helper.make_node("DequantizeLinear", [cast.input[0], prefix + "scale", prefix + "zero"],
                                               [prefix + "x01"], name=prefix + "DequantizeLinear"))
        q.input[0] = prefix + "passed"
        for tensor in (cast.output[0], div.output[0]):  # the float frame has the frame's shape
            for shape in _readers(consumers, tensor)[1]:
                shape.input[0] = cast.input[0]
        rewritten += 1
    return rewritten


def widen_narrow_convs(graph) -> list:
    """Give every quantized conv with 12 to 15 outputs zero filters up to 16 and slice them off its
    8-bit output (module doc, 1); the slices added, one per widened conv."""
    producers, consumers = links(graph)
    initializers = {i.name: i for i in graph.initializer}
    widened = []
    for conv in [n for n in graph.node if n.op_type == "Conv"]:
        weight_dq = producers.get(conv.input[1])
        readers = consumers.get(conv.output[0], [])
        if (weight_dq is None or weight_dq.op_type != "DequantizeLinear" or weight_dq.input[0] not in initializers
                or len(readers) != 1 or readers[0].op_type != "QuantizeLinear" or not signed_zero(initializers, readers[0])
                or any(a.name == "group" and a.i != 1 for a in conv.attribute)):
            continue
        q = readers[0]
        outputs = int(initializers[weight_dq.input[0]].dims[0])
        dqs = consumers.get(q.output[0], [])
        if (not _WIDEN_FROM <= outputs < FAST_CONV_OUTPUTS or not dqs
                or any(r.op_type != "DequantizeLinear" or r.input[2] != q.input[2] for r in dqs)):
            continue
        _pad_first_axis(initializers, weight_dq.input[0], FAST_CONV_OUTPUTS, 0)
        scale = numpy_helper.to_array(initializers[weight_dq.input[1]])
        _pad_first_axis(initializers, weight_dq.input[1], FAST_CONV_OUTPUTS, scale.max())
        if len(weight_dq.input) > 2 and weight_dq.input[2]:
            _pad_first_axis(initializers, weight_dq.input[2], FAST_CONV_OUTPUTS, 0)
        if len(conv.input) > 2 and conv.input[2]:
            _pad_first_axis(initializers, conv.input[2], FAST_CONV_OUTPUTS, 0)
        # the slice sits between Q and DQ, so the pair turns unsigned (ONNX Runtime's integer conv writes uint8)
        unsigned = unsigned_zero_point(graph, initializers, q.input[2])
        for node in [q, *dqs]:
            node.input[2] = unsigned
        sliced, wide = q.output[0], q.output[0] + "_wide"
        q.output[0] = wide
        prefix = conv.name + "/widened/"
        graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), prefix + k)
                                 for k, v in (("starts", [0]), ("ends", [outputs]), ("axes", [1])))
        widened.append(helper.make_node("Slice", [wide, prefix + "starts", prefix + "ends", prefix + "axes"], [sliced],
                                        name=prefix + "Slice"))
        graph.node.insert(list(graph.node).index(q) + 1, widened[-1])
        forget_value_info(graph, (conv.output[0], sliced))
    return widened


def _constant(initializers: dict, name: str):
    return numpy_helper.to_array(initializers[name]).tolist() if name in initializers else None


def _reorder_filters(initializers: dict, conv, weight_dq, order: list[int]) -> None:
    """Filter ``i`` of the widened conv moves to ``order[i]`` (its zero filters fill the rest)."""
    names = [weight_dq.input[0], weight_dq.input[1]] + [n for n in (weight_dq.input[2:3] + conv.input[2:3]) if n]
    for name in names:
        values = numpy_helper.to_array(initializers[name])
        if values.ndim == 0 or values.shape[0] != FAST_CONV_OUTPUTS:
            continue
        moved = values.copy()
        spare = [i for i in range(FAST_CONV_OUTPUTS) if i not in order]
        moved[order] = values[: len(order)]
        moved[spare] = values[len(order):]
        initializers[name].CopyFrom(numpy_helper.from_array(moved, name))


def widen_into_depth_to_space(graph, widened: list) -> bool:
    """Where a widened head feeds the 8-bit depth-to-space ``Transpose(0,2,3,1) -> Reshape(..., 2, k)
    -> Transpose(0,1,3,2,4)``, its zero filters go to the end of each row half (``k`` real + the
    rest) and the slice moves after that transpose: the transpose then moves 8-byte blocks, ONNX
    Runtime's fast path, instead of 6-byte ones (1.9 -> 0.5 ms at 1280x720, the slice 0.8 -> 1.2 ms).
    Exact: the same values in the same places. ``widened``: ``widen_narrow_convs``' slices. Whether it did."""
    producers, consumers = links(graph)
    initializers = {i.name: i for i in graph.initializer}
    for sliced in widened:
        readers, shapes = _readers(consumers, sliced.output[0])
        first = readers[0] if len(readers) == 1 else None
        reshape = _readers(consumers, first.output[0])[0] if first is not None else []
        reshape = reshape[0] if len(reshape) == 1 and reshape[0].op_type == "Reshape" else None
        concat = producers.get(reshape.input[1]) if reshape is not None else None
        swap = _readers(consumers, reshape.output[0])[0] if reshape is not None else []
        swap = swap[0] if len(swap) == 1 and swap[0].op_type == "Transpose" else None
        q = producers.get(sliced.input[0])
        conv = producers.get(q.input[0]) if q is not None else None
        weight_dq = producers.get(conv.input[1]) if conv is not None else None
        outputs = (_constant(initializers, sliced.input[2]) or [0])[0]
        if (first is None or first.op_type != "Transpose" or _perm(first) != [0, 2, 3, 1] or concat is None
                or concat.op_type != "Concat" or swap is None or _perm(swap) != [0, 1, 3, 2, 4] or weight_dq is None
                or len(concat.input) != 5 or _constant(initializers, concat.input[3]) != [2]
                or _constant(initializers, concat.input[4]) != [outputs // 2] or outputs % 2
                or any(g.op_type != "Gather" or _constant(initializers, g.input[1]) in ([1], 1)
                       for shape in shapes for g in consumers.get(shape.output[0], []))):
            continue
        half, block = outputs // 2, FAST_CONV_OUTPUTS // 2
        _reorder_filters(initializers, conv, weight_dq, [row * block + i for row in range(2) for i in range(half)])
        for shape in shapes:  # they read the batch and the height and width only, the same on the wide tensor
            shape.input[0] = sliced.input[0]
        first.input[0] = sliced.input[0]
        prefix = sliced.name.rsplit("/", 1)[0] + "/"
        graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), prefix + k)
                                 for k, v in (("block", [block]), ("row_starts", [0]), ("row_ends", [half]),
                                              ("row_axes", [4])))
        concat.input[4] = prefix + "block"
        graph.node.remove(sliced)
        moved = swap.output[0]
        swap.output[0] = moved + "_blocks"
        graph.node.insert(list(graph.node).index(swap) + 1, helper.make_node(
            "Slice", [swap.output[0], prefix + "row_starts", prefix + "row_ends", prefix + "row_axes"], [moved],
            name=prefix + "Slice_rows"))
        forget_value_info(graph, (sliced.output[0], first.output[0], reshape.output[0], moved))
        return True
    return False


def _perm(node) -> list[int] | None:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), None)


def _readers(consumers: dict, tensor: str) -> tuple[list, list]:
    """``(readers that see values, Shape readers)`` of ``tensor``."""
    readers = consumers.get(tensor, [])
    return ([r for r in readers if r.op_type not in TYPE_BLIND], [r for r in readers if r.op_type in TYPE_BLIND])


def move_output_copies(graph) -> str | None:
    """Move the copies after the graph's one ``DQ -> Sigmoid`` (the generator's output) ahead of it,
    onto its 8-bit input (module doc, 2); the name of the stylized frame they now end in (the
    Sigmoid's output, values in 0..1), or None where the graph has no such end. A signed pair with
    copies between its halves turns unsigned only where its Q feeds DequantizeLinear alone."""
    producers, consumers = links(graph)
    initializers = {i.name: i for i in graph.initializer}
    sigmoids = [n for n in graph.node if n.op_type == "Sigmoid"]
    if len(sigmoids) != 1:
        return None
    sigmoid, copies = sigmoids[0], []
    dq = producers.get(sigmoid.input[0])
    if dq is None or dq.op_type != "DequantizeLinear" or len(consumers.get(dq.output[0], [])) != 1:
        return None
    tensor = sigmoid.output[0]
    while True:
        readers, _shapes = _readers(consumers, tensor)
        if len(readers) != 1 or readers[0].op_type not in _COPYING_AFTER or readers[0].input[0] != tensor:
            break
        copies.append(readers[0])
        tensor = readers[0].output[0]
    if not copies:
        return sigmoid.output[0]
    q = producers.get(dq.input[0])
    while q is not None and q.op_type in _COPYING_AFTER:
        q = producers.get(q.input[0])
    if q is None or q.op_type != "QuantizeLinear":
        return None
    if signed_zero(initializers, q):  # copies between the pair: unsigned, as everywhere else in this form
        if any(r.op_type != "DequantizeLinear" for r in consumers.get(q.output[0], [])):
            return None
        unsigned = unsigned_zero_point(graph, initializers, q.input[2])
        q.input[2] = dq.input[2] = unsigned
    eight_bit = dq.input[0]
    for _values, shapes in [_readers(consumers, t) for t in (sigmoid.output[0], dq.output[0])]:
        for shape in shapes:  # same shape before the copies
            shape.input[0] = eight_bit
    stylized = copies[-1].output[0]
    copies[0].input[0] = eight_bit
    copies[-1].output[0] = stylized + "_u8"
    dq.input[0], sigmoid.output[0] = stylized + "_u8", stylized
    forget_value_info(graph, {o for n in [dq, sigmoid, *copies] for o in n.output} | {eight_bit})
    return stylized


def ensure_output_quantization(graph) -> None:
    """The scale 1/255 and zero point 0 of ``QuantizeLinear(stylized)``, added once."""
    names = {i.name for i in graph.initializer}
    if OUTPUT_SCALE_NAME not in names:
        graph.initializer.extend([numpy_helper.from_array(OUTPUT_SCALE, OUTPUT_SCALE_NAME),
                                  numpy_helper.from_array(np.array(0, np.uint8), OUTPUT_ZERO_NAME)])


def _cast_to(cast) -> int | None:
    return next((a.i for a in cast.attribute if a.name == "to"), None)


def quantize_plain_output(graph, stylized: str) -> bool:
    """``Cast(Round(Mul(Clip(stylized, 0, 1), 255)))`` at the output becomes ``QuantizeLinear(stylized,
    1/255, 0)`` (a single-style graph); whether it did."""
    producers, consumers = links(graph)
    initializers = {i.name: i for i in graph.initializer}
    chain, tensor = [], graph.output[0].name
    for op in ("Cast", "Round", "Mul", "Clip"):
        node = producers.get(tensor)
        if node is None or node.op_type != op:
            return False
        chain.append(node)
        tensor = node.input[0]
    cast, _round, mul, clip = chain
    constant = next((i for i in mul.input if i in initializers), None)
    bounds = [numpy_helper.to_array(initializers[i]).item() if i in initializers else None for i in clip.input[1:]]
    if (tensor != stylized or constant is None or numpy_helper.to_array(initializers[constant]).item() != 255.0
            or bounds != [0.0, 1.0] or _cast_to(cast) != onnx.TensorProto.UINT8
            or any(len(consumers.get(n.output[0], [])) != 1 for n in chain[1:])):
        return False
    ensure_output_quantization(graph)
    at = list(graph.node).index(cast)
    for node in chain:
        graph.node.remove(node)
    graph.node.insert(min(at, len(graph.node)), helper.make_node(
        "QuantizeLinear", [stylized, OUTPUT_SCALE_NAME, OUTPUT_ZERO_NAME], [graph.output[0].name],
        name="/uint8_output/QuantizeLinear"))
    return True


__all__ = ["FAST_CONV_OUTPUTS", "OUTPUT_SCALE", "OUTPUT_SCALE_NAME", "OUTPUT_ZERO_NAME", "ensure_output_quantization",
           "move_output_copies", "quantize_input_directly", "quantize_plain_output", "signed_zero", "unsigned_zero_point",
           "widen_into_depth_to_space", "widen_narrow_convs"]
