"""``make gpu-check``: every GPU claim of the project, checked in one call on a bare GPU machine.

GPU machines come rarely and for minutes, with CUDA, Python, torch (CUDA build), cuda-bindings,
cupy, onnx, onnxruntime (CPU build), OpenCV and pytest, and neither TensorRT, onnxruntime-gpu
nor a package registry. This script installs nothing: it runs this checkout in place (a link
tree in a temporary folder, put first on ``sys.path`` and on ``PYTHONPATH`` for the commands it
starts), optionally with a folder of unpacked wheels and real photos made beforehand by
``--prepare-site`` (``make gpu-check-site``; the pure-Python pieces our package imports at
module level that such a machine lacks: tqdm, safetensors). Each check prints one line; a
piece whose dependency is absent there is skipped with the reason, never failed.

Checks: the environment (GPU, driver, NVML clocks and power, what is importable); ``pytest``
on every ``gpu``-marked test that can run here (``tensorrt`` too where TensorRT is installed),
one line per test file; the torch CUDA backend against the CPU FP32 reference on real photos
(FP32, FP16 and BF16 with FP32 norm islands); ``stylize-rt bench`` on the GPU paths (256x256,
720p, 1080p; batch 1 and 8; H2D/compute/D2H split; the Johnson et al. 2016 network beside the
default). Results go to ``gpu_check.json`` and ``gpu_check.md`` in ``--out-dir``.

Exit codes: 0 every check passed or was skipped with its reason, 1 a check failed, 2 no usable
GPU here (one line, nothing written) or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import util as importlib_util
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("training", "export", "engines", "runtime", "benchmarks")
DEFAULT_SITE = ROOT / "build" / "gpu-site"
DEFAULT_OUT = ROOT / "out" / "gpu-check"
SCHEMA = "stylize-rt-gpu-check/1"
EXIT_OK, EXIT_FAILED, EXIT_NO_GPU = 0, 1, 2
# What a bare GPU machine may lack, as import names (what the report lists as present/missing).
MODULES = ("numpy", "cv2", "onnx", "onnxruntime", "torch", "cupy", "cuda.bindings", "tensorrt", "tqdm",
           "safetensors", "PIL", "av", "pytest", "onnxslim", "skimage")
SITE_PACKAGES = ("tqdm", "safetensors")  # pure-Python or abi3 wheels --prepare-site unpacks
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # scikit-image's public-domain / CC0 sample photos
PAPER_TITAN_X_MS = {256: 15.0, 512: 50.0, 1024: 210.0}  # Johnson et al. 2016, Table 1 (Torch, Titan X)
GOAL_FPS = 150.0  # default generator, 1080p, FP16, batch 1, no TensorRT (issue 18)
# Agreement bars, as in docs/GPU.md: share of pixels within N levels of the CPU FP32 reference.
BARS = {"fp32": (1, 0.999), "fp16": (2, 0.99), "bf16": (2, 0.99)}


@dataclass
class CheckResult:
    """One line of the report: pass / fail / skip (a missing dependency or GPU feature) / info."""

    name: str
    status: str
    summary: str
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.status.upper():<4} {self.name:<24} {self.summary}"


# ---------------------------------------------------------------------------------------------
# Running the checkout in place


def link_tree(root: Path, dest: Path) -> Path:
    """``dest/stylize_rt``: links to ``src/stylize_rt``'s entries and to the stage folders, the layout
    the installed package has. Nothing is copied, so the run uses exactly this checkout's files."""
    package = dest / "stylize_rt"
    package.mkdir(parents=True)
    for entry in sorted((root / "src" / "stylize_rt").iterdir()):
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for stage in STAGES:
        (package / stage).symlink_to(root / stage)
    return dest


def use_checkout(root: Path, site: Path | None, workdir: Path) -> dict[str, str]:
    """Put the link tree (and ``site``) first on this process's path and in the environment for
    subprocesses; return that environment."""
    tree = link_tree(root, workdir / "tree")
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(here)]  # no benchmarks/*.py as top level
    paths = [str(tree)] + ([str(site)] if site else [])
    sys.path[:0] = paths
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def available(module: str) -> bool:
    try:
        return importlib_util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def modules_present() -> dict[str, bool]:
    return {name: available(name) for name in MODULES}


# ---------------------------------------------------------------------------------------------
# Is there a GPU?


def no_gpu_reason() -> str | None:
    """One line saying why nothing here can use a GPU, or None when something (cuda-python or torch) can."""
    from stylize_rt.gpu.devices import nvidia_gpu_present, smi_gpus  # the checkout, made importable above

    if not nvidia_gpu_present() and not smi_gpus():
        return "no NVIDIA GPU on this machine (no /dev/nvidia*, no nvidia-smi)"
    problem = None
    if available("numpy"):
        from stylize_rt.gpu.cuda import cuda_status  # needs numpy; the checkout's CUDA layer

        problem = cuda_status().problem()
    if problem is None:
        return None
    if available("torch"):
        import torch  # the other way onto the GPU

        if torch.cuda.is_available():
            return None
    return problem


# ---------------------------------------------------------------------------------------------
# Checks


def check_environment(ctx: "Context") -> CheckResult:
    from stylize_rt.benchmarks.environment import describe_gpu_state, library_versions  # the checkout's
    from stylize_rt.gpu.devices import gpu_state, smi_gpus

    details: dict[str, Any] = {"modules": ctx.modules, "libraries": library_versions(), "gpus": smi_gpus(),
                               "gpu_state": gpu_state(), "site": str(ctx.site) if ctx.site else None}
    name = ", ".join(g["name"] for g in details["gpus"]) or "?"
    if ctx.modules["numpy"]:
        from stylize_rt.gpu import cuda  # needs numpy

        status = cuda.cuda_status()
        details["cuda"] = asdict(status)
        if status.problem() is None:
            details["device"] = dict(zip(("name", "compute_capability"), cuda.gpu_info(0)))
            name = f"{details['device']['name']} (compute {details['device']['compute_capability']})"
        cuda_text = (f"driver CUDA {cuda.cuda_version_text(status.driver_cuda)}, cuda-python CUDA "
                     f"{cuda.cuda_version_text(status.runtime_cuda)}")
    else:
        cuda_text = "numpy missing"
    missing = [m for m, ok in ctx.modules.items() if not ok]
    ctx.machine = details
    summary = f"{name}; {cuda_text}; missing here: {', '.join(missing) or 'nothing'}"
    if details["gpu_state"]:
        summary += f"; {describe_gpu_state(details['gpu_state'][:1])}"
    return CheckResult("environment", "pass", summary, details=details)


def gpu_test_files(root: Path) -> list[Path]:
    """The test files that hold ``gpu``/``tensorrt``-marked tests (collecting the others would need
    every training dependency this machine may lack)."""
    return [p for p in sorted((root / "tests").glob("test_*.py"))
            if "pytest.mark.gpu" in (text := p.read_text()) or "pytest.mark.tensorrt" in text]


def pytest_command(files: list[Path], junit: Path, with_tensorrt: bool, slow: bool = False) -> list[str]:
    marker = "(gpu or tensorrt)" if with_tensorrt else "(gpu and not tensorrt)"
    marker += " and slow" if slow else " and not slow"
    # -o addopts=: the project's addopts name pytest-timeout, which such a machine may lack
    return [sys.executable, "-m", "pytest", "-m", marker, "-o", "addopts=", "-o", "junit_family=xunit1",
            "-p", "no:cacheprovider", "--continue-on-collection-errors", "-q", "-rs", f"--junitxml={junit}",
            *map(str, files)]


def parse_junit(path: Path, present: dict[str, bool]) -> dict[str, dict[str, Any]]:
    """Results per test file: passed/failed/skipped counts, the first failure, and errors that are only a
    module missing on this machine (reported as skips, not failures)."""
    groups: dict[str, dict[str, Any]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        # xunit1 names the file; a collection error names only the module (tests.test_x) in "name"
        module = case.get("classname") or case.get("name") or "unknown"
        file = (case.get("file") or module.replace(".", "/") + ".py").split("/")[-1]
        group = groups.setdefault(file, {"passed": 0, "failed": 0, "skipped": 0, "missing": set(), "first": None,
                                         "skip_reasons": []})
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if problem is not None:
            text = f"{problem.get('message') or ''}\n{problem.text or ''}"
            module = _missing_module(text)
            if module and not present.get(module, available(module)):
                group["missing"].add(module)
                group["skipped"] += 1
            else:
                group["failed"] += 1
                group["first"] = group["first"] or f"{case.get('name')}: {(problem.get('message') or '').strip()[:300]}"
        elif skipped is not None:
            group["skipped"] += 1
            group["skip_reasons"].append((skipped.get("message") or "").strip())
        else:
            group["passed"] += 1
    for group in groups.values():
        group["missing"] = sorted(group["missing"])
    return groups


def _missing_module(text: str) -> str | None:
    marker = "No module named '"
    if marker not in text:
        return None
    return text.split(marker, 1)[1].split("'", 1)[0].split(".")[0]


def group_result(file: str, group: dict[str, Any]) -> CheckResult:
    counts = f"{group['passed']} passed, {group['failed']} failed, {group['skipped']} skipped"
    name = "pytest:" + file.removeprefix("test_").removesuffix(".py")
    if group["failed"]:
        return CheckResult(name, "fail", f"{counts}; first: {group['first']}", details=group)
    if group["passed"] == 0:
        why = (f"needs {', '.join(group['missing'])} (not installed here)" if group["missing"]
               else (group["skip_reasons"] or ["?"])[0])
        return CheckResult(name, "skip", f"{counts}; {why}", details=group)
    extra = f"; skipped for missing {', '.join(group['missing'])}" if group["missing"] else ""
    return CheckResult(name, "pass", counts + extra, details=group)


def check_pytest(ctx: "Context", slow: bool = False) -> list[CheckResult]:
    """The GPU-marked tests, fast ones first (one line per file); ``slow`` ones (torch.compile) at the
    end, when the time budget still allows."""
    if not ctx.modules["pytest"]:
        return [CheckResult("pytest", "skip", "pytest is not installed here")]
    files = gpu_test_files(ctx.root)
    junit = ctx.workdir / ("junit_slow.xml" if slow else "junit.xml")
    command = pytest_command(files, junit, ctx.modules["tensorrt"], slow)
    timeout = ctx.remaining(reserve=0 if slow else 120)
    if slow and timeout < 60:
        return [CheckResult("pytest-slow", "skip", f"time budget spent ({ctx.budget:.0f} s): run --only pytest-slow")]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ctx.root, env=ctx.env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:  # the slow tests are extras: running out of budget there is not a failure
        return [CheckResult("pytest-slow" if slow else "pytest", "skip" if slow else "fail",
                            f"pytest did not finish within {timeout:.0f} s (time budget)")]
    (ctx.workdir / "pytest.log").write_text(done.stdout + done.stderr)
    seconds = time.perf_counter() - start
    if not junit.is_file():
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        return [CheckResult("pytest", "fail", f"pytest exited {done.returncode} without a report: {tail[0]}")]
    results = [group_result(file, group) for file, group in sorted(parse_junit(junit, ctx.modules).items())]
    if slow:
        for r in results:
            r.name = r.name.replace("pytest:", "pytest-slow:")
    for r in results:
        r.seconds = seconds / max(len(results), 1)
    if done.returncode not in (0, 1, 5) and not any(r.status == "fail" for r in results):
        results.append(CheckResult("pytest", "fail", f"pytest exited {done.returncode}: "
                                   f"{(done.stdout + done.stderr).strip().splitlines()[-1]}"))
    return results


def load_photos(site: Path | None) -> tuple[list, str]:
    """Real photos (RGB uint8): the site folder's, else scikit-image's; ([], why) without either."""
    import cv2  # OpenCV is on the machines this runs on; photos are only read when cv2 is

    if site and (site / "photos").is_dir():
        files = sorted((site / "photos").glob("*.png"))
        return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files], f"{len(files)} photos from {site}"
    if available("skimage"):
        from skimage import data  # the [demo] extra's sample photos

        return [getattr(data, name)() for name in PHOTOS], "scikit-image sample photos"
    return [], "no real photos here (run make gpu-check-site and carry build/gpu-site)"


def agreement(got, want) -> dict[str, float]:
    import numpy as np  # with torch, numpy is present

    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    return {"within_1": float(np.mean(diff <= 1)), "within_2": float(np.mean(diff <= 2)), "max_diff": int(diff.max())}


def check_parity(ctx: "Context") -> CheckResult:
    needs = [m for m in ("torch", "safetensors", "cv2") if not ctx.modules[m]]
    if needs:
        return CheckResult("torch-cuda-parity", "skip", f"needs {', '.join(needs)} (not installed here)")
    import numpy as np
    import torch  # checked above

    if not torch.cuda.is_available():
        return CheckResult("torch-cuda-parity", "skip", "this torch build sees no CUDA GPU")
    from stylize_rt.models import MODELS_DIR
    from stylize_rt.nets.checkpoint import load_generator
    from stylize_rt.nets.generator import UInt8NHWC
    from stylize_rt.runtime.backends.torch_backend import TorchBackend

    photos, where = load_photos(ctx.site)
    if not photos:
        return CheckResult("torch-cuda-parity", "skip", where)
    checkpoint = MODELS_DIR / "mosaic"
    generator, _ = load_generator(checkpoint)
    reference = UInt8NHWC(generator.eval())
    rows, failed = [], []
    wants = []
    with torch.inference_mode():
        for photo in photos:
            wants.append(reference(torch.from_numpy(np.ascontiguousarray(photo[None]))).numpy())
    for precision, (levels, share) in BARS.items():
        backend = TorchBackend(checkpoint, device="cuda", precision=precision, warmup=0)
        for index, (photo, want) in enumerate(zip(photos, wants)):
            got = None
            for _ in range(3):  # plain, captured, replayed: the replay's pixels are the ones compared
                got = backend.infer({"input": np.ascontiguousarray(photo[None])})["output"]
            row = {"precision": precision, "photo": index, "size": f"{photo.shape[1]}x{photo.shape[0]}",
                   **agreement(got, want), "graphs": dict(backend.graph_stats)}
            rows.append(row)
            if row[f"within_{levels}"] < share:
                failed.append(f"{precision} photo {index}: {row[f'within_{levels}']:.4%} within {levels} "
                              f"(bar {share:.1%}, max diff {row['max_diff']})")
        backend.close()
    ctx.parity = {"source": where, "rows": rows}
    worst = {p: min(r[f"within_{BARS[p][0]}"] for r in rows if r["precision"] == p) for p in BARS}
    summary = ", ".join(f"{p} worst {worst[p]:.3%} within {BARS[p][0]}" for p in BARS) + f" ({where})"
    return CheckResult("torch-cuda-parity", "fail" if failed else "pass",
                       "; ".join(failed) if failed else summary, details=ctx.parity)


def bench_command(engine: str, backends: str, precisions: str, sizes: str, batches: str, json_path: Path,
                  seconds: float) -> list[str]:
    return [sys.executable, "-m", "stylize_rt", "bench", "--engine", engine, "--backends", backends,
            "--precision", precisions, "--sizes", sizes, "--batch", batches, "--seconds", f"{seconds:g}",
            "--warmup", "3", "--no-peak", "--json", str(json_path)]


def run_bench(ctx: "Context", name: str, command: list[str], json_path: Path, reserve: float,
              optional: bool = False) -> CheckResult:
    needs = [m for m in ("torch", "tqdm", "safetensors") if not ctx.modules[m]]
    if needs:
        return CheckResult(name, "skip", f"needs {', '.join(needs)} (not installed here)")
    timeout = ctx.remaining(reserve=reserve)
    if timeout < 30:
        return CheckResult(name, "skip", f"time budget spent ({ctx.budget:.0f} s)")
    try:
        done = subprocess.run(command, cwd=ctx.root, env=ctx.env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return CheckResult(name, "skip" if optional else "fail", f"did not finish within {timeout:.0f} s (time budget)")
    (ctx.workdir / f"{name}.log").write_text(done.stdout + done.stderr)
    if not json_path.is_file():
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        # exit 2: nothing could run here (no CUDA torch, a missing package): a skip with bench's own reason
        return CheckResult(name, "skip" if done.returncode == 2 else "fail", f"exit {done.returncode}: {last[0]}")
    document = json.loads(json_path.read_text())
    records = [r for r in document["records"] if r["mode"] == "model"]
    if records:
        ctx.bench[name] = document
    if not records and done.returncode == 2:  # nothing could run here: bench says why, per configuration
        reasons = sorted({s["reason"] for s in document["skipped"]}) or ["nothing ran"]
        return CheckResult(name, "skip", f"nothing could run here: {'; '.join(reasons)}",
                           details={"command": command, "exit": done.returncode})
    status = "pass" if done.returncode == 0 and records else "fail"
    best = sorted(records, key=lambda r: (-(r["height"] * r["width"]), r["batch"], r["p50_ms"]))[:2]
    shown = "; ".join(f"{r['backend']} {r['precision']} {r['width']}x{r['height']} b{r['batch']}: "
                      f"p50 {r['p50_ms']:.2f} ms ({r['fps']:.0f} frames/s)" for r in best)
    failed = f"; {len(document['failed'])} failed: {document['failed'][0]['reason']}" if document["failed"] else ""
    return CheckResult(name, status, f"{len(records)} configurations; {shown}{failed}",
                       details={"command": command, "exit": done.returncode})


def check_bench_default(ctx: "Context") -> CheckResult:
    backends = "torch-cuda,torch-cuda-eager" + (",tensorrt" if ctx.modules["tensorrt"] else "")
    path = ctx.workdir / "bench_default.json"
    command = bench_command("mosaic", backends, "fp32,fp16,bf16", "256,720p,1080p", "1,8", path, ctx.bench_seconds)
    return run_bench(ctx, "bench-default", command, path, reserve=40)


def check_bench_johnson(ctx: "Context") -> CheckResult:
    if not (ctx.modules["torch"] and ctx.modules["safetensors"]):
        return CheckResult("bench-johnson2016", "skip", "needs torch and safetensors (not installed here)")
    import torch  # checked above

    from stylize_rt.benchmarks.peers import PEERS  # the bench's own Johnson et al. 2016 layout
    from stylize_rt.nets.checkpoint import save_generator  # torch + safetensors, checked above
    from stylize_rt.nets.generator import Generator, GeneratorConfig

    torch.manual_seed(0)  # random weights, as the bench's peer: speed does not depend on them
    checkpoint = save_generator(ctx.workdir / "johnson2016", Generator(GeneratorConfig.from_dict(PEERS["johnson2016"])),
                                extra={"peer": "johnson2016"})
    path = ctx.workdir / "bench_johnson2016.json"
    command = bench_command(str(checkpoint), "torch-cuda", "fp32,fp16", "256,512,1024,720p,1080p", "1", path,
                            ctx.bench_seconds)
    result = run_bench(ctx, "bench-johnson2016", command, path, reserve=10)
    document = ctx.bench.get("bench-johnson2016")
    if document:
        ours = {r["width"]: r["p50_ms"] for r in document["records"]
                if r["precision"] == "fp32" and r["width"] == r["height"] and r["mode"] == "model"}
        compared = [f"{n}x{n}: {ours[n]:.1f} ms vs {ms:.0f}" for n, ms in PAPER_TITAN_X_MS.items() if n in ours]
        if compared:
            result.summary += f"; FP32 vs the paper's Titan X: {', '.join(compared)}"
    return result


def check_bench_compile(ctx: "Context") -> CheckResult:
    path = ctx.workdir / "bench_compile.json"
    command = bench_command("mosaic", "torch-cuda-compile", "fp16", "1080p", "1", path, ctx.bench_seconds)
    return run_bench(ctx, "bench-compile", command, path, reserve=0, optional=True)


def check_goal(ctx: "Context") -> CheckResult:
    """The fast path's goal, end to end on the host clock: numpy frame in, numpy frame out, 1080p FP16 batch 1.

    The bench's figures are CUDA-event times (the GPU's work); this one also counts the copies into
    and out of the pinned buffers, which is what a caller of ``infer`` waits for.
    """
    needs = [m for m in ("torch", "safetensors") if not ctx.modules[m]]
    if needs:
        return CheckResult("goal-1080p-fp16", "skip", f"needs {', '.join(needs)} (not installed here)")
    import numpy as np
    import torch  # checked above

    if not torch.cuda.is_available():
        return CheckResult("goal-1080p-fp16", "skip", "this torch build sees no CUDA GPU")
    from stylize_rt.benchmarks.harness import make_frames  # the bench's photo-like frames
    from stylize_rt.models import MODELS_DIR
    from stylize_rt.runtime.backends.torch_backend import TorchBackend

    backend = TorchBackend(MODELS_DIR / "mosaic", device="cuda", precision="fp16", warmup=0, timing=True)
    feeds = {"input": make_frames(1, 1080, 1920)}
    for _ in range(10):  # plain, captured, then replays
        backend.infer(feeds)
    samples, splits = [], []
    for _ in range(200):
        t0 = time.perf_counter()
        backend.infer(feeds)
        samples.append((time.perf_counter() - t0) * 1000.0)
        splits.append(backend.last_timings)
    stats = dict(backend.graph_stats)
    backend.close()
    host_ms = float(np.median(samples))
    split = {k: float(np.median([s[k] for s in splits])) for k in ("h2d_ms", "compute_ms", "d2h_ms")}
    fps = 1000.0 / host_ms
    details = {"host_p50_ms": host_ms, "host_p90_ms": float(np.percentile(samples, 90)), "fps": fps, **split,
               "graphs": stats, "goal_fps": GOAL_FPS}
    ctx.goal = details
    met = "met" if fps >= GOAL_FPS else "missed"
    return CheckResult("goal-1080p-fp16", "info",
                       f"{fps:.0f} frames/s end to end (host p50 {host_ms:.2f} ms; GPU: H2D {split['h2d_ms']:.2f}, "
                       f"compute {split['compute_ms']:.2f}, D2H {split['d2h_ms']:.2f} ms) vs the {GOAL_FPS:.0f} goal "
                       f"({met})", details=details)


def check_tensorrt(ctx: "Context") -> CheckResult:
    if ctx.modules["tensorrt"]:
        return CheckResult("tensorrt", "info", "TensorRT is installed: its tests ran in pytest, its engine in bench")
    return CheckResult("tensorrt", "skip", "TensorRT is not installed here: tensorrt-marked tests and the "
                       "tensorrt bench need a TensorRT machine (the backend's host logic ran on the stand-in engine)")


CHECKS: dict[str, Callable[["Context"], CheckResult | list[CheckResult]]] = {
    "environment": check_environment,
    "pytest": check_pytest,
    "parity": check_parity,
    "goal": check_goal,
    "bench": check_bench_default,
    "johnson": check_bench_johnson,
    "compile": check_bench_compile,
    "pytest-slow": lambda ctx: check_pytest(ctx, slow=True),
    "tensorrt": check_tensorrt,
}


@dataclass
class Context:
    root: Path
    workdir: Path
    env: dict[str, str]
    site: Path | None
    budget: float
    bench_seconds: float
    modules: dict[str, bool]
    started: float = field(default_factory=time.perf_counter)
    machine: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)
    goal: dict[str, Any] = field(default_factory=dict)

    def remaining(self, reserve: float = 0.0) -> float:
        return max(0.0, self.budget - (time.perf_counter() - self.started) - reserve)


# ---------------------------------------------------------------------------------------------
# Reports


def build_document(results: list[CheckResult], ctx: Context | None, command: str, started_utc: str,
                   seconds: float) -> dict[str, Any]:
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip", "info")}
    return {
        "schema": SCHEMA,
        "started_utc": started_utc,
        "seconds": round(seconds, 1),
        "command": command,
        "counts": counts,
        "exit_code": EXIT_FAILED if counts["fail"] else EXIT_OK,
        "machine": ctx.machine if ctx else {},
        "checks": [asdict(r) for r in results],
        "parity": ctx.parity if ctx else {},
        "goal": ctx.goal if ctx else {},
        "bench": ctx.bench if ctx else {},
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_summary(document: dict[str, Any]) -> str:
    """The JSON as a page: checks, the parity table, and the benchmark numbers with their commands."""
    machine = document.get("machine", {})
    gpus = ", ".join(g.get("name", "?") for g in machine.get("gpus", [])) or "?"
    counts = document["counts"]
    lines = [
        "# GPU check", "",
        f"`{document['command']}` on {gpus}, {document['started_utc']}, {document['seconds']} s: "
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped.", "",
        "| check | status | result |", "|---|---|---|",
    ]
    lines += [f"| {_cell(c['name'])} | {c['status']} | {_cell(c['summary'])} |" for c in document["checks"]]
    rows = document.get("parity", {}).get("rows", [])
    if rows:
        lines += ["", f"Torch CUDA vs the CPU FP32 reference, embedded model, {document['parity']['source']}:", "",
                  "| precision | photo | size | within 1 level | within 2 levels | max diff |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['precision']} | {r['photo']} | {r['size']} | {r['within_1']:.3%} | {r['within_2']:.3%} | "
                  f"{r['max_diff']} |" for r in rows]
    for name, bench in document.get("bench", {}).items():
        lines += ["", f"`{name}`: `{bench['environment'].get('command', '')}`", "",
                  "| backend | precision | size | batch | p50 ms | p90 ms | frames/s | H2D ms | compute ms | D2H ms |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in bench["records"]:
            split = [f"{r[k]:.2f}" if r.get(k) is not None else "-" for k in ("h2d_ms", "compute_ms", "d2h_ms")]
            lines.append(f"| {r['backend']} | {r['precision']} | {r['width']}x{r['height']} | {r['batch']} | "
                         f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['fps']:.1f} | {' | '.join(split)} |")
        state = bench["environment"].get("gpu_state") or []
        if state:
            lines += ["", "GPU at start: " + "; ".join(
                f"{s.get('name')}: SM {s.get('sm_clock_mhz')} of {s.get('max_sm_clock_mhz')} MHz, "
                f"{s.get('power_w')} of {s.get('power_limit_w')} W, {s.get('temperature_c')} C" for s in state)]
    return "\n".join(lines) + "\n"


def write_reports(document: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``gpu_check.json`` and ``gpu_check.md``, each written whole (the project's atomic write)."""
    from stylize_rt.fileio import write_atomic  # the checkout's, importable once use_checkout ran

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / "gpu_check.json", out_dir / "gpu_check.md")
    for path, text in zip(paths, (json.dumps(document, indent=2) + "\n", markdown_summary(document))):
        write_atomic(path, text)
    return paths


# ---------------------------------------------------------------------------------------------
# Preparing the site folder (on a machine with a registry)


def requirement_pins(root: Path) -> dict[str, str]:
    pins = {}
    for file in sorted((root / "requirements").glob("*.txt")):
        for line in file.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[name.strip().lower()] = version.strip()
    return pins


def unpack_wheels(wheels: Path, site: Path) -> list[str]:
    """Unzip every wheel in ``wheels`` into ``site``: a folder Python imports from when on its path."""
    names = []
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
        names.append(wheel.name)
    return names


def write_photos(site: Path) -> list[str]:
    """scikit-image's sample photos as PNG (public domain / CC0), for the parity check on real photos."""
    import cv2  # the dev machine's: the [demo] and runtime extras
    from skimage import data

    folder = site / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PHOTOS:
        image = getattr(data, name)()
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        written.append(f"{name}.png")
    return written


def prepare_site(site: Path, python_version: str = "3.12", platform: str = "manylinux_2_17_x86_64") -> int:
    """Download (pinned), unpack and list what a bare GPU machine lacks; carry ``site`` there."""
    pins = requirement_pins(ROOT)
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--python-version", python_version, "--platform", platform, "--platform", "manylinux2014_x86_64",
                   "--abi", f"cp{python_version.replace('.', '')}", "--abi", "abi3", "--abi", "none", "-d", tmp,
                   *[f"{name}=={pins[name]}" if name in pins else name for name in SITE_PACKAGES]]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"gpu-check: pip download failed: {(done.stderr or done.stdout).strip().splitlines()[-1]}",
                  file=sys.stderr)
            return EXIT_FAILED
        wheels = unpack_wheels(Path(tmp), site)
    photos = write_photos(site)
    (site / "SITE.json").write_text(json.dumps({"python": python_version, "platform": platform, "wheels": wheels,
                                                "photos": photos}, indent=2) + "\n")
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    print(f"gpu-check: {site}: {', '.join(wheels)} and {len(photos)} photos ({size / 2**20:.1f} MiB); carry it to the "
          "GPU machine (it is used from build/gpu-site, or --site DIR)")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# The command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpu_check.py", description=__doc__.split("\n\n", 1)[0],
        epilog="Exit codes: 0 passed (skips listed), 1 a check failed, 2 no usable GPU or bad arguments.")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                        help=f"where gpu_check.json and gpu_check.md go (default {DEFAULT_OUT.relative_to(ROOT)}; "
                        "make gpu-check names benchmarks/results)")
    parser.add_argument("--site", type=Path, default=None,
                        help=f"folder of unpacked wheels and photos (default {DEFAULT_SITE.relative_to(ROOT)} "
                        "when it exists)")
    parser.add_argument("--only", default=None, help=f"comma list of checks to run (of {', '.join(CHECKS)})")
    parser.add_argument("--budget", type=float, default=290.0, help="seconds for the whole run (default 290)")
    parser.add_argument("--bench-seconds", type=float, default=0.4, help="timed seconds per bench configuration")
    parser.add_argument("--prepare-site", type=Path, metavar="DIR", default=None,
                        help="instead of checking: download and unpack what a bare GPU machine lacks into DIR")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--assume-gpu", action="store_true",
                        help="run the checks even where no GPU is found (tests this script; GPU pieces then skip)")
    args = parser.parse_args(argv)
    if args.only is not None:
        chosen = [c.strip() for c in args.only.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in CHECKS]
        if unknown or not chosen:
            parser.error(f"unknown check {', '.join(unknown) or repr(args.only)} (choose from {', '.join(CHECKS)})")
        args.only = chosen
    if args.budget <= 0 or args.bench_seconds <= 0:
        parser.error("--budget and --bench-seconds must be positive")
    if args.site is not None and not args.site.is_dir():
        parser.error(f"--site {args.site}: no such folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(CHECKS))
        return EXIT_OK
    if args.prepare_site is not None:
        return prepare_site(args.prepare_site)
    site = args.site or (DEFAULT_SITE if DEFAULT_SITE.is_dir() else None)
    started_utc = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    command = " ".join(["gpu_check.py", *(argv if argv is not None else sys.argv[1:])])
    with tempfile.TemporaryDirectory(prefix="stylize-rt-gpu-check-") as tmp:
        workdir = Path(tmp)
        env = use_checkout(ROOT, site, workdir)
        reason = None if args.assume_gpu else no_gpu_reason()
        if reason:
            print(f"gpu-check: {reason}", file=sys.stderr)
            return EXIT_NO_GPU
        ctx = Context(ROOT, workdir, env, site, args.budget, args.bench_seconds, modules_present(), start)
        results: list[CheckResult] = []
        for name, check in CHECKS.items():
            if args.only and name not in args.only and name != "environment":
                continue
            t0 = time.perf_counter()
            try:
                outcome = check(ctx)
            except Exception as exc:  # noqa: BLE001 - one broken check is a failed line, the others still run
                outcome = CheckResult(name, "fail", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            for result in outcome if isinstance(outcome, list) else [outcome]:
                result.seconds = result.seconds or round(time.perf_counter() - t0, 1)
                print(result.line(), flush=True)
                results.append(result)
        document = build_document(results, ctx, command, started_utc, time.perf_counter() - start)
        try:
            json_path, md_path = write_reports(document, args.out_dir)
        except OSError as exc:
            print(f"gpu-check: cannot write {args.out_dir}: {exc.strerror or exc}", file=sys.stderr)
            return 3
    counts = document["counts"]
    print(f"gpu-check: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
          f"in {document['seconds']:.0f} s; wrote {json_path} and {md_path}")
    return document["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
