"""Test helper: which nodes ONNX Runtime really ran (its own profile, after its fusions)."""

from __future__ import annotations

import json
from pathlib import Path


def profiled_nodes(model, feed: dict, tmp_path: Path) -> list[dict]:
    """The node events of one single-threaded run of ``model`` (a ModelProto) on ``feed``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling, options.profile_file_prefix = True, str(tmp_path / "profile")
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    return [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]


def tail_matmul_runs(model, feed: dict, tmp_path: Path) -> int:
    """How often the control tail's full-resolution MatMul (the If's else branch) ran."""
    branch = next(a.g for n in model.graph.node if n.op_type == "If" for a in n.attribute if a.name == "else_branch")
    matmul = next(n.name for n in branch.node if n.op_type == "MatMul")
    return sum(1 for e in profiled_nodes(model, feed, tmp_path) if e["name"] == f"{matmul}_kernel_time")
