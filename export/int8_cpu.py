"""The ONNX Runtime CPU form of a QDQ graph: 8-bit data movement ahead of every quantized conv.

The QDQ graph TensorRT reads quantizes each conv's input right at the conv: ``... -> Resize
(nearest) -> Pad (reflect) -> QuantizeLinear -> DequantizeLinear -> Conv``. ONNX Runtime fuses
``DQ -> Conv -> Q`` into one integer ``QLinearConv`` but leaves the pads and upsamples before it on
float tensors: at 1280x720 the 13 reflect pads and 2 upsamples of the embedded generator took a
fifth of its time. Quantizing first and moving bytes instead of floats is exact, because a reflect
or edge pad and a nearest-neighbour resize only copy values, and rounding commutes with copying:
``Q(Pad(x)) == Pad(Q(x))``.

The moved quantizations are unsigned (zero point 128 in place of signed 0): ONNX Runtime's x86
integer convolution reads unsigned activations, and converts adjacent signed Q/DQ pairs itself,
but not a pair with a pad between them. ``q_u8 = q_s8 + 128`` on the same scale, so the values are
identical. TensorRT reads only symmetric signed INT8, so this form is for ONNX Runtime only; the
graph says so in its ``stylize_rt.int8_target`` metadata and an engine build refuses it.

Multi-style graphs also skip their control tail where no frame uses it. ``strength`` and
``preserve_color`` act through a full-resolution ``input + (stylized - input) @ mix``
(``nets.generator.MultiStyleUInt8NHWC``): at 1280x720 a tenth of the INT8 graph's time. At full
strength without colour preservation (every frame of the batch) that is ``255 * stylized``, up to
float rounding, so an ``If`` computes only that; any other control value runs the tail unchanged.
A ReLU read only by a quantization becomes a clamp at its zero point on the 8-bit tensor (equal,
because Q is monotonic and maps 0 to the zero point). Their 22 small ``style @ table`` MatMuls (each norm's scale and shift) become one MatMul and a
Split: on a CPU each op costs its dispatch, about as much as the product itself.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from stylize_rt import contract
from stylize_rt.export.graph_links import (
    TYPE_BLIND,
    drop_dead_nodes,
    drop_unused_initializers,
    forget_value_info,
    links,
    reads,
)
from stylize_rt.export.int8_cpu_ends import (
    OUTPUT_SCALE_NAME,
    OUTPUT_ZERO_NAME,
    ensure_output_quantization,
    move_output_copies,
    quantize_input_directly,
    quantize_plain_output,
    signed_zero,
    unsigned_zero_point,
    widen_into_depth_to_space,
    widen_narrow_convs,
)
from stylize_rt.export.metadata import set_metadata

# ops that only copy values (what moving a quantization ahead of them must not change)
_COPYING = ("Pad", "Resize", "Transpose", "Reshape", "Unsqueeze", "Squeeze", "Flatten")


def _copies_values(node) -> bool:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Pad":
        # a constant pad writes a value that Q would map to a different byte; reflect/edge only copy
        return attrs.get("mode", b"constant") in (b"reflect", b"edge")
    if node.op_type == "Resize":
        return attrs.get("mode", b"nearest") == b"nearest" and not attrs.get("antialias", 0)
    return True


def _chain_before(q, producers: dict, consumers: dict, outputs: set[str]) -> list:
    """The copying nodes feeding ``q`` (nearest first), each the only reader of its output besides
    ``Shape`` nodes."""
    chain, tensor = [], q.input[0]
    while tensor in producers and tensor not in outputs:
        if sum(1 for r in consumers.get(tensor, []) if r.op_type not in TYPE_BLIND) != 1:
            break
        node = producers[tensor]
        if node.op_type not in _COPYING or not _copies_values(node):
            break
        chain.append(node)
        tensor = node.input[0]
    return chain


def _topological(graph) -> None:
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in reads(n))]
        for node in pending:
            if node not in rest:
                ordered.append(node)
                ready.update(node.output)
        if len(rest) == len(pending):
            raise ValueError("the graph has a cycle")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def _path(producers: dict, tensor: str, ops: tuple[str, ...]) -> list | None:
    """The nodes that write ``tensor`` through their first inputs, when their types are ``ops``
    (nearest first); None where the graph differs."""
    nodes = []
    for op in ops:
        node = producers.get(tensor)
        if node is None or node.op_type != op:
            return None
        nodes.append(node)
        tensor = node.input[0]
    return nodes


def _tail(graph, producers: dict, consumers: dict):
    """``(ending, add, y)`` of the control tail ``Add(x, Reshape(MatMul(Reshape(Sub(y, x01)), mix)))``
    and the output's ``Clip -> Round -> Cast`` after it (``ending``), or None where the graph has none."""
    out = _path(producers, graph.output[0].name, ("Cast", "Round", "Clip", "Add"))
    if out is None or any(len(consumers.get(n.output[0], [])) != 1 for n in out[1:]):
        return None
    add = out[-1]
    for moved in add.input:
        change = _path(producers, moved, ("Reshape", "MatMul", "Reshape", "Sub"))
        if change is not None and len(consumers.get(change[-1].output[0], [])) == 1:
            return out[:-1], add, change[-1].input[0]
    return None


def _sinkable_source(producers: dict, consumers: dict, stylized: str, tail: dict) -> list:
    """``[DequantizeLinear, Sigmoid]`` computing ``stylized`` from an 8-bit tensor where only the tail
    reads them (both branches then compute it themselves), else ``[]``."""
    sigmoid = producers.get(stylized)
    dq = producers.get(sigmoid.input[0]) if sigmoid is not None and sigmoid.op_type == "Sigmoid" else None
    if (dq is None or dq.op_type != "DequantizeLinear" or consumers.get(dq.output[0], []) != [sigmoid]
            or any(id(r) not in tail for r in consumers.get(stylized, []))):
        return []
    return [dq, sigmoid]


def _skip_identity_controls(model) -> None:
    """Put the control tail under an ``If`` whose other branch is ``QuantizeLinear(stylized, 1/255, 0)``
    (module doc; ``export.int8_cpu_ends``)."""
    graph = model.graph
    inputs = {i.name for i in graph.input}
    if not {contract.INPUT_STRENGTH, contract.INPUT_PRESERVE_COLOR} <= inputs:
        return
    producers, consumers = links(graph)
    found = _tail(graph, producers, consumers)
    if found is None:
        return
    ending, add, stylized = found
    stop = {stylized} | inputs | {i.name for i in graph.initializer}
    # the tail: the Add's ancestors that nothing else reads (the stylized frame stays outside; the
    # float input frame moves in where the network reads its bytes directly)
    tail, todo = {id(add): add}, [add]
    while todo:
        for name in todo.pop().input:
            node = producers.get(name)
            if name and name not in stop and node is not None and id(node) not in tail:
                tail[id(node)] = node
                todo.append(node)
    changed = True
    while changed:
        changed = False
        for key, node in list(tail.items()):
            if node is add:
                continue
            if any(id(r) not in tail for o in node.output for r in consumers.get(o, [])):
                del tail[key]
                changed = True
    source = _sinkable_source(producers, consumers, stylized, tail)
    moved_nodes = source + [n for n in graph.node if id(n) in tail] + ending[::-1]
    result = graph.output[0].name
    ending[0].output[0] = result + "_with_controls"
    p = "/skip_identity_controls/"
    ensure_output_quantization(graph)
    plain = [helper.make_node("QuantizeLinear", [stylized, OUTPUT_SCALE_NAME, OUTPUT_ZERO_NAME],
                              [result + "_full_strength"], name=p + "QuantizeLinear")]
    if source:  # the same DQ -> Sigmoid in this branch, so ONNX Runtime makes it one lookup with the Q
        plain[:0] = [onnx.NodeProto.FromString(n.SerializeToString()) for n in source]
        plain[0].name, plain[1].name = p + "DequantizeLinear", p + "Sigmoid"
        plain[0].output[0] = plain[1].input[0] = p + "dequantized"
        plain[1].output[0] = plain[2].input[0] = p + "stylized"
    full = helper.make_graph(plain, "full_strength", [], [helper.make_tensor_value_info(
        result + "_full_strength", onnx.TensorProto.UINT8, None)])
    controls = helper.make_graph(moved_nodes, "with_controls", [],
                                 [helper.make_tensor_value_info(ending[0].output[0], onnx.TensorProto.UINT8, None)])
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.float32), p + n)
                             for n, v in (("one", 1.0), ("zero", 0.0)))
    decide = [
        helper.make_node("Equal", [contract.INPUT_STRENGTH, p + "one"], [p + "full"], name=p + "Equal_strength"),
        helper.make_node("Equal", [contract.INPUT_PRESERVE_COLOR, p + "zero"], [p + "own_color"], name=p + "Equal_color"),
        helper.make_node("And", [p + "full", p + "own_color"], [p + "plain"], name=p + "And"),
        helper.make_node("Not", [p + "plain"], [p + "needs"], name=p + "Not"),
        helper.make_node("Cast", [p + "needs"], [p + "needs_f"], name=p + "Cast", to=onnx.TensorProto.FLOAT),
        helper.make_node("ReduceMax", [p + "needs_f"], [p + "any"], name=p + "ReduceMax", keepdims=0),
        helper.make_node("Equal", [p + "any", p + "zero"], [p + "skip"], name=p + "Equal_skip"),
        helper.make_node("If", [p + "skip"], [result], name=p + "If", then_branch=full, else_branch=controls),
    ]
    for node in moved_nodes:
        graph.node.remove(node)
    graph.node.extend(decide)
    inner = {o for n in moved_nodes for o in n.output} | {result}
    forget_value_info(graph, inner)


def _relus_after_quantization(graph) -> int:
    """Each ``QuantizeLinear(Relu(y))`` whose Relu nothing else reads becomes ``Clip(QuantizeLinear(y),
    min=zero point)``: Q is monotonic and maps 0 to its zero point, so the two are equal, and the
    clamp runs on the 8-bit tensor instead of a float pass (0.45-0.8 ms each at 1280x720); how many."""
    producers, consumers = links(graph)
    initializers = {i.name: i for i in graph.initializer}
    gone: set[str] = set()
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        relu = producers.get(q.input[0])
        zero = initializers.get(q.input[2]) if len(q.input) > 2 else None
        if (relu is None or relu.op_type != "Relu" or consumers.get(relu.output[0], []) != [q]
                or zero is None or numpy_helper.to_array(zero).size != 1):
            continue
        clamped = q.output[0]
        q.input[0], q.output[0] = relu.input[0], clamped + "_before_relu"
        graph.node.insert(list(graph.node).index(q) + 1, helper.make_node(
            "Clip", [q.output[0], q.input[2]], [clamped], name=relu.name + "/as_Clip"))
        graph.node.remove(relu)
        gone.add(relu.output[0])
    forget_value_info(graph, gone)
    return len(gone)


def _fuse_style_matmuls(graph) -> None:
    """Every ``MatMul(a, table_i)`` that shares ``a`` with others and reads a 2-D float initializer
    becomes one MatMul against the tables side by side, split back into the same outputs."""
    initializers = {i.name: i for i in graph.initializer}
    groups: dict[str, list] = {}
    for node in graph.node:
        table = initializers.get(node.input[1]) if node.op_type == "MatMul" else None
        if table is not None and len(table.dims) == 2 and table.data_type == onnx.TensorProto.FLOAT:
            groups.setdefault(node.input[0], []).append(node)
    for k, (a, nodes) in enumerate(groups.items()):
        tables = [numpy_helper.to_array(initializers[n.input[1]]) for n in nodes]
        if len(nodes) < 2 or len({t.shape[0] for t in tables}) != 1:
            continue
        name = f"/fused_style_tables_{k}"
        graph.initializer.extend([
            numpy_helper.from_array(np.concatenate(tables, axis=1), name + "/table"),
            numpy_helper.from_array(np.array([t.shape[1] for t in tables], np.int64), name + "/sizes"),
        ])
        at = list(graph.node).index(nodes[0])
        for node in nodes:
            graph.node.remove(node)
        graph.node.insert(at, helper.make_node("Split", [name + "/out", name + "/sizes"],
                                               [n.output[0] for n in nodes], name=name + "/Split", axis=-1))
        graph.node.insert(at, helper.make_node("MatMul", [a, name + "/table"], [name + "/out"], name=name + "/MatMul"))


def onnxruntime_cpu_form(model) -> tuple[onnx.ModelProto, int]:
    """``(model in the CPU form, how many quantizations moved)``; ``model`` is not changed.

    Only symmetric signed quantizations (zero point 0) move: that is what ``quantize_qdq`` writes
    for TensorRT, and what the unsigned zero point 128 reproduces exactly."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    producers, consumers = links(graph)
    outputs = {o.name for o in graph.output}
    initializers = {i.name: i for i in graph.initializer}
    stale: set[str] = set()
    moved = 0
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        chain = _chain_before(q, producers, consumers, outputs)
        readers = consumers.get(q.output[0], [])
        if (not chain or not readers or any(r.op_type != "DequantizeLinear" for r in readers)
                or not signed_zero(initializers, q) or any(r.input[2] != q.input[2] for r in readers)):
            continue
        first, last = chain[-1], chain[0]
        stale.update(o for n in chain for o in n.output)
        stale.update([q.output[0], first.input[0]])
        early = q.output[0] + "_before_" + first.op_type.lower()
        q.input[0], q.output[0], first.input[0] = first.input[0], early, early
        last.output[0] = readers[0].input[0]
        unsigned = unsigned_zero_point(graph, initializers, q.input[2])
        for node in [q, *readers]:
            node.input[2] = unsigned
        moved += 1
    forget_value_info(graph, stale)
    _relus_after_quantization(graph)
    quantize_input_directly(graph)
    widened = widen_narrow_convs(graph)
    stylized = move_output_copies(graph)
    if stylized is not None:
        widen_into_depth_to_space(graph, widened)
        quantize_plain_output(graph, stylized)
    _skip_identity_controls(model)
    _fuse_style_matmuls(graph)
    drop_dead_nodes(graph)
    _topological(graph)
    drop_unused_initializers(graph)
    if moved:  # unsigned Q/DQ: the one change TensorRT cannot read (the If and the Split it can)
        set_metadata(model, {contract.INT8_TARGET: contract.INT8_TARGET_ORT})
    onnx.checker.check_model(model, full_check=True)
    return model, moved


__all__ = ["onnxruntime_cpu_form"]
