"""What ``pip install '.[EXTRA]'`` resolves to, read from pyproject.toml: one ONNX Runtime build, one CUDA major.

``onnxruntime`` and ``onnxruntime-gpu`` unpack into the same ``onnxruntime/`` directory, so an
install that pulls both keeps whichever came last and the CUDA/TensorRT providers can vanish
without a word. And cuda-python of a newer CUDA major than the TensorRT wheel's needs a newer
driver than TensorRT does (``cudaErrorInsufficientDriver``).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml with tomllib")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
ORT_BUILDS = {"onnxruntime", "onnxruntime-gpu"}
GPU_EXTRAS = ("gpu", "gpu-cu13")


@pytest.fixture(scope="module")
def project():
    return tomllib.loads(PYPROJECT.read_text())["project"]


def resolve(project, extras) -> list[Requirement]:
    """Base dependencies plus ``extras``, with ``stylize-rt[...]`` self-references expanded."""
    out, todo, seen = [Requirement(r) for r in project["dependencies"]], list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in project["optional-dependencies"][extra]:
            req = Requirement(text)
            if req.name == project["name"]:
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def ort_builds(reqs) -> set[str]:
    return {r.name for r in reqs if r.name in ORT_BUILDS}


def test_every_install_gets_at_most_one_onnxruntime_build(project):
    extras = list(project["optional-dependencies"])
    for count in (1, 2):
        for combo in combinations(extras, count):
            if sum(e in ("cpu", *GPU_EXTRAS) for e in combo) > 1:
                continue  # two runtime builds asked for at once: the user's own contradiction
            builds = ort_builds(resolve(project, combo))
            assert len(builds) <= 1, f"pip install '.[{','.join(combo)}]' installs {sorted(builds)}"
    for extra in ("cpu", *GPU_EXTRAS):
        assert len(ort_builds(resolve(project, [extra]))) == 1, extra
        assert len(ort_builds(resolve(project, [extra, "dev"]))) == 1, f"{extra},dev"
    assert ort_builds(resolve(project, ["gpu"])) == {"onnxruntime-gpu"}


def test_cuda_python_is_pinned_to_the_cuda_major_of_the_tensorrt_wheel(project):
    for extra in GPU_EXTRAS:
        reqs = {r.name: r for r in resolve(project, [extra])}
        trt = [name for name in reqs if name.startswith("tensorrt-cu")]
        assert len(trt) == 1, f"{extra}: name the TensorRT wheel by its CUDA major (tensorrt-cuNN), got {trt}"
        major = int(trt[0].removeprefix("tensorrt-cu"))
        spec = reqs["cuda-python"].specifier
        assert spec.contains(f"{major}.9.0") and not spec.contains(f"{major + 1}.0.0"), (extra, str(spec))
        assert not spec.contains(f"{major - 1}.9.0"), (extra, str(spec))
    # onnxruntime-gpu's TensorRT EP links libnvinfer.so.10: its extra must keep TensorRT at 10
    assert not {r.name: r for r in resolve(project, ["gpu"])}["tensorrt-cu12"].specifier.contains("11.0.0")
