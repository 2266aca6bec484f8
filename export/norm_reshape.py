"""Constant reshapes around conditional instance norms in an exported graph.

``CondInstanceNorm`` views an (N, C, H, W) batch as (1, N * C, H, W). The legacy exporter
computes that target shape from ``Shape`` / ``Gather`` / ``Mul`` / ``Concat`` nodes on every
layer (about a dozen small ops each, several percent of a small frame's time in ONNX
Runtime). ONNX ``Reshape`` says it with one constant: ``[1, -1, 0, 0]`` (0 copies the
input's dimension, -1 takes the rest); the way back, ``reshape_as`` the norm's input, is
``[-1, C, 0, 0]``. Both computed shapes are replaced and their nodes, now unused, are dropped.
The way back matters for INT8 too: a ``Shape`` reading a quantized conv's output keeps ONNX
Runtime from fusing that conv's Q/DQ pair into a ``QLinearConv`` (11 of the 12 convs of
``styles6`` ran as float convs, and the INT8 graph ran slower than FP32).
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from stylize_rt.export.graph_links import drop_dead_nodes, drop_unused_initializers, int_attribute, links

FLATTEN_SHAPE = "cond_norm_flatten_shape"
UNFLATTEN_SHAPE = "cond_norm_unflatten_shape_c{}"  # .format(C)


def constant_norm_reshapes(model) -> int:
    """Around every InstanceNormalization whose input Reshape folds the batch into the channels:
    that Reshape gets the constant shape ``[1, -1, 0, 0]``, and the Reshape back to the input's
    shape (its only consumer, shaped by ``Shape(input)``) gets ``[-1, C, 0, 0]``, C from the
    shape-inferred graph (in place); the nodes left unused are dropped. Returns the reshapes changed."""
    graph = model.graph
    producers, consumers = links(graph)
    channels = _static_channels(graph)
    constants = {init.name for init in graph.initializer}

    def constant(name: str, values: list[int]) -> str:
        if name not in constants:
            graph.initializer.append(numpy_helper.from_array(np.array(values, np.int64), name))
            constants.add(name)
        return name

    changed = 0
    for node in graph.node:
        if node.op_type != "InstanceNormalization":
            continue
        reshape = producers.get(node.input[0])
        if reshape is None or reshape.op_type != "Reshape" or reshape.input[1] in constants:
            continue
        if int_attribute(reshape, "allowzero", 0) != 0 or not _folds_batch(producers, reshape):
            continue
        reshape.input[1] = constant(FLATTEN_SHAPE, [1, -1, 0, 0])
        changed += 1
        back = consumers.get(node.output[0], [])
        c = channels.get(reshape.input[0])
        shape_of = producers.get(back[0].input[1]) if len(back) == 1 and back[0].op_type == "Reshape" else None
        if (c is not None and shape_of is not None and shape_of.op_type == "Shape"
                and shape_of.input[0] == reshape.input[0] and int_attribute(back[0], "allowzero", 0) == 0):
            back[0].input[1] = constant(UNFLATTEN_SHAPE.format(c), [-1, c, 0, 0])
            changed += 1
    if changed:
        drop_dead_nodes(graph)
        drop_unused_initializers(graph)
    return changed


def _static_channels(graph) -> dict[str, int]:
    """Tensor name -> its static dimension 1, for the 4-D tensors shape inference typed."""
    out = {}
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            out[value.name] = int(dims[1].dim_value)
    return out


def _folds_batch(producers: dict, reshape) -> bool:
    """The shape is ``Concat(1, N * C, H, W)`` of a 4-D tensor: the pattern ``CondInstanceNorm`` traces to."""
    concat = producers.get(reshape.input[1])
    if concat is None or concat.op_type != "Concat" or len(concat.input) != 4:
        return False
    first = producers.get(concat.input[0])
    value = None
    if first is not None and first.op_type == "Constant":
        value = numpy_helper.to_array(first.attribute[0].t)
    elif first is not None and first.op_type == "Unsqueeze":
        inner = producers.get(first.input[0])
        if inner is not None and inner.op_type == "Constant":
            value = numpy_helper.to_array(inner.attribute[0].t)
    return value is not None and int(np.asarray(value).reshape(-1)[0]) == 1


__all__ = ["constant_norm_reshapes", "FLATTEN_SHAPE", "UNFLATTEN_SHAPE"]

