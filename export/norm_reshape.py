"""Constant reshapes around conditional instance norms in an exported graph.

``CondInstanceNorm`` views an (N, C, H, W) batch as (1, N * C, H, W). The legacy exporter
computes that target shape from ``Shape`` / ``Gather`` / ``Mul`` / ``Concat`` nodes on every
layer (about a dozen small ops each, several percent of a small frame's time in ONNX
Runtime). ONNX ``Reshape`` says it with one constant: ``[1, -1, 0, 0]`` (0 copies the
input's dimension, -1 takes the rest), so the computed shape is replaced and its nodes,
now unused, are dropped.
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

FLATTEN_SHAPE = "cond_norm_flatten_shape"


def _attribute(node, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def constant_norm_reshapes(model) -> int:
    """Give every 4-D Reshape that feeds an InstanceNormalization and folds the batch into the
    channels the constant shape ``[1, -1, 0, 0]`` (in place); drop the nodes left unused.
    Returns the reshapes changed."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    constants = {init.name for init in graph.initializer}
    changed = 0
    for node in graph.node:
        if node.op_type != "InstanceNormalization":
            continue
        reshape = producers.get(node.input[0])
        if reshape is None or reshape.op_type != "Reshape" or reshape.input[1] in constants:
            continue
        if _attribute(reshape, "allowzero", 0) != 0 or not _folds_batch(producers, reshape):
            continue
        if FLATTEN_SHAPE not in constants:
            graph.initializer.append(numpy_helper.from_array(np.array([1, -1, 0, 0], np.int64), FLATTEN_SHAPE))
            constants.add(FLATTEN_SHAPE)
        reshape.input[1] = FLATTEN_SHAPE
        changed += 1
    if changed:
        _drop_unused(graph)
    return changed


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


def _drop_unused(graph) -> None:
    """Remove nodes none of whose outputs is used (repeatedly), then unused initializers."""
    outputs = {o.name for o in graph.output}
    while True:
        used = outputs | {name for node in graph.node for name in node.input}
        dead = [node for node in graph.node if not any(out in used for out in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


__all__ = ["constant_norm_reshapes", "FLATTEN_SHAPE"]

