"""Test helper: run an ONNX graph under qemu-user's emulated Haswell, an x86 CPU with AVX2 and
neither AVX-512 nor VNNI, where ONNX Runtime's u8 x s8 kernels sum pairs in 16 bits."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

QEMU = shutil.which("qemu-x86_64")
needs_qemu = pytest.mark.skipif(platform.machine() != "x86_64" or QEMU is None,
                                reason="needs qemu-x86_64 (qemu-user, installed by make setup-dev) on an x86-64 machine")

# numpy and ONNX Runtime only: torch would take minutes under the emulator.
_RUN_GRAPH = """
import sys, numpy as np, onnxruntime as ort
from numpy._core._multiarray_umath import __cpu_features__ as cpu
options = ort.SessionOptions(); options.intra_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
with np.load(sys.argv[2]) as feeds:
    out = session.run(None, dict(feeds))[0]
np.savez(sys.argv[3], out=out, avx2=cpu["AVX2"], avx512f=cpu["AVX512F"])
"""


def _run(prefix: list[str], graph: Path, feeds: Path, out: Path) -> tuple[np.ndarray, bool, bool]:
    proc = subprocess.run([*prefix, sys.executable, "-c", _RUN_GRAPH, str(graph), str(feeds), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(out) as result:
        return result["out"], bool(result["avx2"]), bool(result["avx512f"])


def here_and_on_haswell(graph: Path, feeds: dict[str, np.ndarray], tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The graph's first output on ``feeds``, on this machine and on the emulated Haswell."""
    path = tmp_path / "feeds.npz"
    np.savez(path, **feeds)
    here, _, _ = _run([], graph, path, tmp_path / "here.npz")
    emulated, avx2, avx512f = _run([QEMU, "-cpu", "Haswell"], graph, path, tmp_path / "haswell.npz")
    assert avx2 and not avx512f  # the emulated CPU is the one the callers are about
    return here, emulated
