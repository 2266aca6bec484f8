"""Make an ONNX Runtime CPU QDQ graph (u8 activations x per-channel s8 weights) compute the same
numbers on every x86 CPU.

Without VNNI (AVX2 only: AMD Zen 2/3, Intel before Ice Lake) ONNX Runtime's integer GEMM multiplies
u8 by s8 with ``VPMADDUBSW``, which adds each pair of products in 16 bits and saturates above
32767; 8-bit weights reach 255 x 127 x 2. Its depthwise kernel sums in 32 bits, so depthwise convs
are exact everywhere. The dense convs either move onto the 7-bit grid of ``WEIGHT_QMAX``
(255 x 64 x 2 fits) with their int32 biases rescaled, or, for the layers that grid costs too much,
run as float convs of the same 8-bit weights: ``Cast(q) x scale``, which ONNX Runtime folds into a
float initializer when the session loads, so the file keeps its int8 codes.

Used by the captioner's classifier (``export.caption_encoder``), whose quantization
(``quantize_qdq(tensorrt=False)``) needs 8-bit weights to keep its nouns; the generators quantize
straight onto the 7-bit grid instead (``export.int8``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from stylize_rt.export.graph_links import drop_dead_nodes, drop_unused_initializers, int_attribute, links
from stylize_rt.export.int8 import WEIGHT_QMAX


def exact_on_every_x86(model: onnx.ModelProto, keep_float: Callable[[onnx.NodeProto], bool]) -> dict[str, int]:
    """Rewrite ``model`` in place (see the module docstring); ``keep_float(conv)`` picks the dense
    convs that run in float. Returns how many convs each way went."""
    graph = model.graph
    producers, _consumers = links(graph)
    inits = {i.name: i for i in graph.initializer}
    counts = {"depthwise_8bit": 0, "dense_7bit": 0, "dense_float": 0}
    head_nodes = []
    for conv in [n for n in graph.node if n.op_type == "Conv"]:
        dq = producers.get(conv.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            raise ValueError(f"conv {conv.name} has no quantized weight to move")
        if int_attribute(conv, "group", 1) > 1:
            counts["depthwise_8bit"] += 1
            continue
        codes = numpy_helper.to_array(inits[dq.input[0]])
        if codes.dtype != np.int8 or (len(dq.input) > 2 and numpy_helper.to_array(inits[dq.input[2]]).any()):
            raise ValueError(f"conv {conv.name}: weights must be symmetric int8 (zero point 0)")
        q = codes.astype(np.int32)
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
        per_channel = (-1,) + (1,) * (q.ndim - 1)
        if keep_float(conv):
            name = f"{dq.input[0]}_float"
            graph.initializer.append(numpy_helper.from_array(scale.reshape(per_channel).astype(np.float32), f"{name}_scale"))
            head_nodes += [helper.make_node("Cast", [dq.input[0]], [f"{name}_codes"], to=onnx.TensorProto.FLOAT,
                                            name=f"{name}_cast"),
                           helper.make_node("Mul", [f"{name}_codes", f"{name}_scale"], [name], name=f"{name}_mul")]
            conv.input[1] = name
            counts["dense_float"] += 1
            continue
        top = np.abs(q).reshape(q.shape[0], -1).max(axis=1)
        widen = np.where(top > WEIGHT_QMAX, top / WEIGHT_QMAX, 1.0)  # per channel; those within keep their step
        q7 = np.clip(np.round(q / widen.reshape(per_channel)), -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8)
        inits[dq.input[0]].CopyFrom(numpy_helper.from_array(q7, dq.input[0]))
        inits[dq.input[1]].CopyFrom(numpy_helper.from_array((scale * widen).astype(np.float32), dq.input[1]))
        if len(conv.input) > 2 and conv.input[2]:
            bias_dq = producers[conv.input[2]]  # int32 codes at input scale x weight scale
            bias = numpy_helper.to_array(inits[bias_dq.input[0]]).astype(np.float64)
            bias_scale = numpy_helper.to_array(inits[bias_dq.input[1]]).astype(np.float64)
            inits[bias_dq.input[0]].CopyFrom(numpy_helper.from_array(np.round(bias / widen).astype(np.int32),
                                                                      bias_dq.input[0]))
            inits[bias_dq.input[1]].CopyFrom(numpy_helper.from_array((bias_scale * widen).astype(np.float32),
                                                                      bias_dq.input[1]))
        counts["dense_7bit"] += 1
    nodes = head_nodes + list(graph.node)  # the casts read initializers only: first is topological
    del graph.node[:]
    graph.node.extend(nodes)
    drop_dead_nodes(graph)
    drop_unused_initializers(graph)
    return counts


__all__ = ["exact_on_every_x86"]
