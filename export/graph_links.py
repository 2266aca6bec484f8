"""Who writes and who reads each tensor of an ONNX graph: the map every graph rewrite here starts from."""

from __future__ import annotations


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


__all__ = ["links"]
