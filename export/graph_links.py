"""Who writes and who reads each tensor of an ONNX graph: the map every graph rewrite here starts
from, and the bookkeeping each rewrite ends with (dead nodes and initializers, stale shape records)."""

from __future__ import annotations

import onnx

TYPE_BLIND = ("Shape",)  # readers that see a tensor's shape only, whatever its type


def links(graph) -> tuple[dict[str, object], dict[str, list]]:
    """``(producers, consumers)``: tensor name -> the node writing it, and -> the nodes reading it
    (a node reading a tensor twice is listed twice). Subgraphs are not entered."""
    producers: dict[str, object] = {}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producers[name] = node
    return producers, consumers


def reads(node) -> list[str]:
    """A node's inputs, with the outer-scope names its subgraphs read (an ``If``'s branches)."""
    names = list(node.input)
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            inner = {o for n in attr.g.node for o in n.output} | {i.name for i in attr.g.initializer}
            names += [i for n in attr.g.node for i in reads(n) if i not in inner]
    return names


def drop_dead_nodes(graph) -> None:
    """Remove nodes whose outputs nothing reads (subgraph reads count)."""
    wanted = {o.name for o in graph.output}
    while True:
        read = {i for n in graph.node for i in reads(n)} | wanted
        dead = [n for n in graph.node if not any(o in read for o in n.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def drop_unused_initializers(graph) -> None:
    """Remove initializers nothing reads (subgraph reads count): what a rewrite left behind."""
    read = {i for n in graph.node for i in reads(n)}
    kept = [i for i in graph.initializer if i.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def int_attribute(node, name: str, default: int) -> int:
    """A node's integer attribute (a Conv's ``group``, a Reshape's ``allowzero``), or ``default``."""
    return next((a.i for a in node.attribute if a.name == name), default)


def forget_value_info(graph, names) -> None:
    """Drop the recorded shapes and types of ``names``: a rewrite changed or removed those tensors."""
    names = set(names)
    kept = [v for v in graph.value_info if v.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(kept)


__all__ = ["TYPE_BLIND", "drop_dead_nodes", "drop_unused_initializers", "forget_value_info", "int_attribute", "links",
           "reads"]
