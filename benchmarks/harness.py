"""The measuring loop: configurations in, one record per configuration out.

A configuration is a backend variant (engine + options), a precision, a model file and
a frame size/batch. The harness opens each backend once, feeds it real-looking frames
in the model's own input convention (prepared once: model-only numbers exclude
pre/post-processing), warms it up, checks the output once (not NaN, not constant: a
broken model must not produce a fast-looking number), then times a fixed count or a
time budget of iterations. Configurations measured together take turns, so their ratios
share the machine's load. With ``pipeline``, source -> runtime -> sink is timed beside
each model-only figure, so the runtime's overhead around the model shows; with
``transcode``, decode -> stylize -> encode of an H.264 clip (software codecs), so the codec's
share of a file-to-file run shows too.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from stylize_rt import contract
from stylize_rt.benchmarks import load
from stylize_rt.benchmarks.peak import onnx_conv_macs
from stylize_rt.benchmarks.stats import LatencyStats, summarize, throughput
from stylize_rt.errors import MissingDependencyError, StylizeError
from stylize_rt.runtime.backends import registry
from stylize_rt.runtime.captioner import Captioner
from stylize_rt.runtime.codecs import EncodeOptions
from stylize_rt.runtime.pipeline import PipelineConfig, run_stream
from stylize_rt.runtime.sinks import RawPipeSink
from stylize_rt.runtime.sources import RawPipeSource
from stylize_rt.runtime.stylizer import Stylizer
from stylize_rt.runtime.transcode import encode_clip, transcode_in_memory
from stylize_rt.training.caption_photos import MAIN_PHOTOS, load_photos

MIN_TIMED_ITERS = 30  # a median of fewer iterations is not a number to publish


class OutputCheckError(StylizeError):
    """A model produced NaN/Inf, a constant image or the wrong shape: timing it would measure nothing."""

    exit_code = 1


@dataclass(frozen=True)
class Variant:
    """One way to run a model: a registry backend name with its options, on a device."""

    name: str  # what tables show: onnxruntime, torch, torch-compile, onnxruntime-cuda, ...
    backend: str  # name understood by ``open_backend``
    device: str  # cpu / cuda
    options: dict[str, Any] = field(default_factory=dict)
    precision_option: bool = False  # pass the precision to the backend (torch autocast, ORT TensorRT EP)


@dataclass(frozen=True)
class BenchConfig:
    variant: Variant
    precision: str
    model: Path
    batch: int
    height: int
    width: int
    network: str = "model"  # "model", or the name of a peer network benchmarked beside it
    layout: str | None = None  # --layout / --input-range for models without our metadata
    input_range: str | None = None


@dataclass
class BenchRecord:
    """One measured configuration; the JSON schema is this dataclass's fields."""

    backend: str
    device: str
    precision: str
    batch: int
    height: int
    width: int
    mode: str
    model: str
    iters: int
    warmup: int
    clock: str
    min_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    noise: float
    fps: float
    mpix_s: float
    gmacs_per_frame: float | None = None
    gflops: float | None = None
    peak_fraction: float | None = None
    h2d_ms: float | None = None
    compute_ms: float | None = None
    d2h_ms: float | None = None
    pipeline: str | None = None
    # pipeline: mean end-to-end time per batch / mean model-only time per batch of the model-only
    # twin timed in the same turns, - 1: the throughput a user loses to the runtime around the model
    overhead: float | None = None
    # pipeline: where an end-to-end batch's time went, per batch, inside the iterations
    capture_ms: float | None = None  # transcode rows: demux + decode + YUV->RGB
    infer_ms: float | None = None
    output_ms: float | None = None  # transcode rows: RGB->YUV + encode + mux
    codec_share: float | None = None  # transcode rows: (capture + output) / all three stages' busy time
    p50_ci_low_ms: float | None = None  # ~95% confidence interval of the median
    p50_ci_high_ms: float | None = None
    network: str = "model"  # "model": the one benchmarked; a peer network's name otherwise
    others_load: float | None = None  # mean cores other processes used during this row's blocks
    flagged_blocks: int = 0  # blocks during which others used more than benchmarks.load.BUSY_CORES
    blocks: int = 0
    flag: str | None = None  # why this row must not be published (e.g. end-to-end beats model-only)
    omp_wait_policy: str | None = None  # torch rows: OMP_WAIT_POLICY when torch loaded (None: OpenMP's default)
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BenchRecord":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def key(self) -> tuple:
        """Identity used to match a record against a baseline."""
        return (self.network, self.backend, self.device, self.precision, self.batch, self.height, self.width,
                self.mode)


@dataclass
class Skipped:
    """A configuration that was not run, and why (missing hardware, package or model file)."""

    backend: str
    precision: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Failed:
    """A configuration that ran but failed (output check, backend error)."""

    backend: str
    precision: str
    height: int
    width: int
    batch: int
    mode: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Budget:
    """How long to time each configuration: a fixed count, or seconds (at least MIN_TIMED_ITERS)."""

    warmup: int = 3
    iters: int | None = None
    seconds: float | None = 3.0

    def done(self, count: int, elapsed: float) -> bool:
        """A fixed ``iters`` count, else at least MIN_TIMED_ITERS iterations *and* ``seconds``."""
        if self.iters is not None:
            return count >= self.iters
        return count >= MIN_TIMED_ITERS and elapsed >= (self.seconds or 0.0)


# ---------------------------------------------------------------------------------------
# Inputs


def make_frames(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``batch`` real-looking RGB frames (NHWC uint8): smooth light, edges, shapes and grain.

    Not zeros and not uniform noise: a model's arithmetic does not depend on pixel values,
    but INT8 activation ranges, denormals and any data-dependent path do, and a photo-like
    frame keeps those honest. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    frames = np.empty((batch, height, width, 3), np.uint8)
    for i in range(batch):
        phase = rng.uniform(0, 2 * np.pi, 3)
        sky = np.stack([0.35 + 0.3 * v, 0.5 + 0.25 * v, 0.85 - 0.2 * v], axis=-1)
        ground = np.stack([0.3 + 0.2 * np.sin(9 * u + phase[0]), 0.45 + 0.1 * np.cos(7 * v + phase[1]),
                           0.2 + 0.1 * u], axis=-1)
        horizon = 0.55 + 0.08 * np.sin(4 * u + phase[2])
        img = np.where((v > horizon)[..., None], ground, sky)
        for _ in range(6):  # discs and boxes: hard edges at several scales
            cx, cy = rng.uniform(0, 1, 2)
            r = rng.uniform(0.03, 0.18)
            color = rng.uniform(0.05, 0.95, 3)
            if rng.random() < 0.5:
                mask = (u - cx) ** 2 * (width / height) ** 2 + (v - cy) ** 2 < r**2
            else:
                mask = (np.abs(u - cx) < r) & (np.abs(v - cy) < r * 0.6)
            img[mask] = color
        img = img * (0.8 + 0.2 * np.cos(3 * (u - 0.5)) * np.cos(3 * (v - 0.5)))[..., None]  # vignette
        img = img + rng.normal(0, 0.02, img.shape)  # sensor grain
        frames[i] = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return frames


# ---------------------------------------------------------------------------------------
# The output guard


def check_outputs(outputs: dict[str, np.ndarray], batch: int, height: int, width: int) -> None:
    """Raise ``OutputCheckError`` unless the first output is a finite, non-constant image batch."""
    if not outputs:
        raise OutputCheckError("the model returned no outputs")
    name, y = next(iter(outputs.items()))
    y = np.asarray(y)
    nhwc = y.ndim == 4 and y.shape[1:3] == (height, width)
    nchw = y.ndim == 4 and y.shape[2:4] == (height, width)
    if y.shape[:1] != (batch,) or not (nhwc or nchw):
        raise OutputCheckError(
            f"output {name!r} has shape {tuple(y.shape)}, expected {batch} images of {width}x{height}"
        )
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        bad = int(np.size(y) - np.count_nonzero(np.isfinite(y)))
        raise OutputCheckError(f"output {name!r} has {bad} NaN/Inf values")
    flat = y.reshape(y.shape[0], -1)
    constant = flat.max(axis=1) == flat.min(axis=1)
    if constant.any():
        value = flat[int(np.argmax(constant)), 0]
        raise OutputCheckError(f"output {name!r} is a constant image (every value {value}): nothing would be measured")


# ---------------------------------------------------------------------------------------
# Timing


Step = Callable[[], "dict[str, float] | None"]


@dataclass
class Timing:
    """Per-iteration samples of one step, with the device-side splits where the backend gave them."""

    samples_ms: list[float] = field(default_factory=list)
    splits: list[dict[str, float]] = field(default_factory=list)
    clock: str = "perf_counter"
    loads: list[float] = field(default_factory=list)  # cores other processes used, per block


BLOCK_SECONDS = 0.2  # how long each step runs before the next one takes its turn


def time_steps(steps: dict[Any, Step], budget: Budget, warmups: dict[Any, int] | None = None) -> dict[Any, Timing]:
    """Warm up each step, then time them in turns, a block of iterations each, until the budget is spent.

    Taking turns keeps configurations that are compared with each other (model-only vs
    end-to-end, ORT vs PyTorch) under the same machine load, which matters on a shared
    CPU: a ratio measured this way does not depend on what the neighbours did in between.
    Turns are blocks of about ``BLOCK_SECONDS``, each after one untimed iteration (for
    steps fast enough to fill a block with more than one), so a previous backend's thread
    pool spinning down or cold caches do not land in the samples. With a fixed ``iters`` count every step gets exactly that many samples.

    ``warmups`` overrides ``budget.warmup`` per step (an end-to-end step whose model was
    just warmed by its model-only twin needs one run, not several clips).

    A step returns None (timed here with perf_counter) or the backend's own CUDA-event
    timings in ms (``h2d_ms``, ``compute_ms``, ``d2h_ms``, optionally ``total_ms``): on a GPU
    the host clock would time the launch, not the work.
    """
    if not steps:
        return {}
    cost = {}
    for name, step in steps.items():
        runs = (warmups or {}).get(name, budget.warmup)
        t0 = time.perf_counter()
        for _ in range(runs):
            step()
        cost[name] = (time.perf_counter() - t0) / runs if runs else 0.0
    timings = {name: Timing() for name in steps}
    turns = len(steps) > 1
    start = time.perf_counter()
    while True:
        count = min(len(t.samples_ms) for t in timings.values())
        if budget.done(count, (time.perf_counter() - start) / len(steps)):
            return timings
        for name, step in steps.items():
            block = max(1, min(50, int(BLOCK_SECONDS / cost[name]) if cost[name] > 0 else 10))
            if budget.iters is not None:
                block = min(block, budget.iters - len(timings[name].samples_ms))
                if block <= 0:
                    continue  # this step has its count; the others are catching up
            if turns and block > 1:
                step()  # untimed: re-warm after the other steps' turns (negligible for slow steps)
            before = load.mark()
            for _ in range(block):
                _time_one(step, timings[name])
            others = load.others_cores(before, load.mark())
            if others is not None:
                timings[name].loads.append(others)


def _time_one(step: Step, timing: Timing) -> None:
    t0 = time.perf_counter()
    device = step()
    elapsed = (time.perf_counter() - t0) * 1000.0
    if device and "infer_ms" in device:  # pipeline: wall time per batch, and the model's share of it
        timing.samples_ms.append(float(device.get("wall_ms", elapsed)))
        timing.splits.append(device)
    elif device and ("total_ms" in device or "compute_ms" in device):
        timing.clock = "device_events"
        total = device.get("total_ms", sum(device.get(k, 0.0) for k in ("h2d_ms", "compute_ms", "d2h_ms")))
        timing.samples_ms.append(float(total))
        timing.splits.append(device)
    else:
        timing.samples_ms.append(elapsed)


def _device_timings(backend) -> dict[str, float] | None:
    """The backend's event timings of its last ``infer``, where it records them."""
    timings = getattr(backend, "last_timings", None)
    return dict(timings) if timings else None


def model_step(backend, feeds: dict[str, np.ndarray]) -> Step:
    def step() -> dict[str, float] | None:
        backend.infer(feeds)
        return _device_timings(backend)

    return step


class _TimedBackend:
    """Passes calls through to a backend and keeps how long its ``infer`` calls took.

    The end-to-end step wraps its backend in this so each iteration knows its own model
    time: overhead = iteration time / model time within the same iteration, a paired
    measurement that load changes between iterations cannot distort.
    """

    def __init__(self, backend) -> None:
        self._backend = backend
        self.name = backend.name
        self.inputs = backend.inputs
        self.outputs = backend.outputs
        self.metadata = backend.metadata
        self.infer_ms = 0.0

    def infer(self, feeds):
        t0 = time.perf_counter()
        out = self._backend.infer(feeds)
        self.infer_ms += (time.perf_counter() - t0) * 1000.0
        return out

    def close(self) -> None:
        self._backend.close()


class _Discard:
    """A byte stream that swallows writes (the far end of a raw-video pipe)."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.bytes += n
        return n

    def flush(self) -> None:
        pass


# Each end-to-end step starts the stream runner once, so its thread start and the pipeline's
# fill and drain (the first frame waits for capture, the last for output) are spread over
# this many batches. A real stream spreads them over thousands; with 4 batches they added
# about 8% to a 5 ms model call (256x256), 16 brings that within 1% of 32.
PIPELINE_BATCHES_PER_RUN = 16


def pipeline_step(backend, batch: int, height: int, width: int, ring: int = 4, layout: str | None = None,
                  input_range: str | None = None) -> tuple[Step, str]:
    """source -> runtime -> sink around ``backend``; returns the step and what it exercised.

    One step is one run of the runtime's stream runner (``run_stream``: capture, model and
    output threads joined by queues) over a clip of ``PIPELINE_BATCHES_PER_RUN`` batches (see there):
    source, the runtime's raw-video reader over an in-memory bgr24 stream of distinct
    frames (what ffmpeg or a capture process writes; no cache can help); sink, the
    runtime's raw-video writer (bgr24) into a stream that discards. Codec and disk costs
    are left out on purpose: they belong to the source/sink a user picks, not to the
    runtime. The step's time is reported per batch, comparable with model-only latency.
    """
    timed = _TimedBackend(backend)
    stylizer = Stylizer(timed, layout=layout, input_range=input_range)
    frames = np.concatenate([make_frames(batch, height, width, seed=100 + i) for i in range(ring)])
    count = PIPELINE_BATCHES_PER_RUN * batch
    clip = np.concatenate([frames] * (count // len(frames) + 1))[:count]
    data = np.ascontiguousarray(clip[..., ::-1]).tobytes()
    config = PipelineConfig(batch=batch, warm_up=False, progress=False, live=False)

    out = stylizer.stylize_batch(frames[:batch])
    check_outputs({"stylized": out}, batch, height, width)

    def step() -> dict[str, float]:
        timed.infer_ms = 0.0
        sink_stream = _Discard()
        t0 = time.perf_counter()
        stats = run_stream(stylizer, RawPipeSource(io.BytesIO(data), (width, height), pix_fmt="bgr24"),
                           RawPipeSink(sink_stream, pix_fmt="bgr24"), config)
        wall_ms = (time.perf_counter() - t0) * 1000.0
        if stats.frames_out != count or sink_stream.bytes != clip.nbytes:
            raise RuntimeError(f"the pipeline wrote {stats.frames_out} of {count} frames")
        per_batch = 1000.0 / PIPELINE_BATCHES_PER_RUN
        return {"wall_ms": wall_ms / PIPELINE_BATCHES_PER_RUN, "infer_ms": timed.infer_ms / PIPELINE_BATCHES_PER_RUN,
                "capture_ms": stats.stage("capture").total_s * per_batch,
                "output_ms": stats.stage("output").total_s * per_batch}

    return step, "run_stream: RawPipeSource(bgr24) -> capture/model/output threads -> RawPipeSink(bgr24)"


# Software codecs on both ends: what any machine has, and what a GPU machine's numbers are compared with.
TRANSCODE_ENCODE = EncodeOptions(codec="libx264", hwaccel="none")


def transcode_step(backend, batch: int, height: int, width: int, ring: int = 4, layout: str | None = None,
                   input_range: str | None = None) -> tuple[Step, str]:
    """decode -> runtime -> encode around ``backend``, in memory; returns the step and what it exercised.

    The clip (``PIPELINE_BATCHES_PER_RUN`` batches of distinct photo-like frames, H.264
    ``yuv420p``) is encoded once, outside the timing. One step is one
    ``transcode_in_memory``: the runtime's PyAV ``VideoFileSource`` decoding it (software),
    the stream runner's capture/model/output threads, and a ``VideoWriter`` encoding H.264
    (libx264, the runtime's default settings) into memory: what ``--input a.mp4 --output
    b.mp4`` runs, minus the disk. Times are per batch, comparable with model-only latency.
    """
    timed = _TimedBackend(backend)
    stylizer = Stylizer(timed, layout=layout, input_range=input_range)
    frames = np.concatenate([make_frames(batch, height, width, seed=100 + i) for i in range(ring)])
    count = PIPELINE_BATCHES_PER_RUN * batch
    clip = encode_clip(np.concatenate([frames] * (count // len(frames) + 1))[:count], fps=30.0,
                       encode=TRANSCODE_ENCODE)
    config = PipelineConfig(batch=batch, warm_up=False, progress=False, live=False)
    check_outputs({"stylized": stylizer.stylize_batch(frames[:batch])}, batch, height, width)

    def step() -> dict[str, float]:
        timed.infer_ms = 0.0
        times = transcode_in_memory(stylizer, clip, config, TRANSCODE_ENCODE)
        if times.frames != count or times.bytes_out == 0:
            raise RuntimeError(f"the transcode wrote {times.frames} of {count} frames")
        per_batch = 1000.0 / PIPELINE_BATCHES_PER_RUN
        return {"wall_ms": times.wall_s * per_batch, "infer_ms": timed.infer_ms / PIPELINE_BATCHES_PER_RUN,
                "capture_ms": times.decode_s * per_batch, "output_ms": times.encode_s * per_batch}

    return step, ("transcode_in_memory: H.264 in memory -> VideoFileSource (software decode) -> capture/model/"
                  "output threads -> VideoWriter (libx264 yuv420p) in memory")


# ---------------------------------------------------------------------------------------
# Running configurations


@dataclass
class WorkCounter:
    """Conv MACs per frame at each size, counted once per model (for GFLOP/s)."""

    model: Path | None
    cache: dict[tuple[int, int], int | None] = field(default_factory=dict)
    error: str | None = None

    def macs(self, height: int, width: int) -> int | None:
        if self.model is None:
            return None
        if (height, width) not in self.cache:
            self.cache[(height, width)] = self._count(height, width)
        return self.cache[(height, width)]

    def _count(self, height: int, width: int) -> int | None:
        try:
            if self.model.suffix == ".onnx":
                return onnx_conv_macs(self.model, height, width)
            if self.model.is_dir():
                from stylize_rt.nets.checkpoint import read_card  # torch: checkpoints only where it is installed
                from stylize_rt.nets.generator import GeneratorConfig, estimate_macs

                card = read_card(self.model, kind="generator")
                return estimate_macs(GeneratorConfig.from_dict(card["generator"]), height, width)
        except ImportError as exc:
            self.error = f"cannot count FLOPs: {exc.name} is not installed"
        except Exception as exc:  # noqa: BLE001 - a FLOP count is optional; the latency still stands
            self.error = f"cannot count FLOPs of {self.model.name}: {exc}"
        return None


def open_variant(variant: Variant, model: Path, precision: str, threads: int):
    """Open ``model`` with the variant's backend.

    Every backend takes the shared options: ``threads``; its open-time warm-up turned off (the
    harness warms up at the benchmark's size and says how many runs); the precision only
    where the backend chooses arithmetic from it (an INT8 or FP16 ONNX file carries its
    precision in the graph).
    """
    fields = dict(variant.options, threads=threads, warmup=0)
    if variant.precision_option:
        fields["precision"] = precision
    return registry.open_backend(model, backend=variant.backend, **fields)


@dataclass
class Prepared:
    """A configuration whose output passed the check, with its timed steps ready."""

    config: BenchConfig
    steps: dict[str, Step]  # mode (model / pipeline / transcode) -> step
    command: str
    descriptions: dict[str, str] = field(default_factory=dict)  # end-to-end mode -> what it exercised
    work: WorkCounter | None = None  # MACs of this configuration's network (for GFLOP/s)


def prepare(backend, config: BenchConfig, command: str = "", pipeline: bool = False,
            work: WorkCounter | None = None, transcode: bool = False) -> Prepared:
    """Feeds in the backend's convention, the output check, and the model (+ pipeline, + transcode) steps."""
    frames = make_frames(config.batch, config.height, config.width)
    stylizer = Stylizer(backend, layout=config.layout, input_range=config.input_range)
    feeds = stylizer.model_feeds(frames)  # in the model's convention, converted once, outside the timed loop
    check_outputs(backend.infer(feeds), config.batch, config.height, config.width)
    prepared = Prepared(config, {"model": model_step(backend, feeds)}, command, work=work)
    for mode, wanted, make in (("pipeline", pipeline, pipeline_step), ("transcode", transcode, transcode_step)):
        if wanted:
            prepared.steps[mode], prepared.descriptions[mode] = make(
                backend, config.batch, config.height, config.width, layout=config.layout,
                input_range=config.input_range)
    return prepared


def measure_together(
    group: list[Prepared],
    budget: Budget,
    work: WorkCounter | None = None,
    peak_gflops: float | None = None,
) -> list[BenchRecord]:
    """Time every step of ``group`` in turns (see ``time_steps``); one record per step.

    ``peak_gflops`` (the CPU's SGEMM peak) applies to CPU configurations only; MACs come from
    each item's own ``work`` counter, else the shared ``work``.
    """
    steps = {(i, mode): step for i, item in enumerate(group) for mode, step in item.steps.items()}
    warmups = {key: min(1, budget.warmup) for key in steps if key[1] != "model"}
    timings = time_steps(steps, budget, warmups)
    records = []
    for (i, mode), timing in timings.items():
        item = group[i]
        counter = item.work or work
        macs = counter.macs(item.config.height, item.config.width) if counter else None
        peak = peak_gflops if item.config.variant.device == "cpu" else None
        records.append(_record(item.config, mode, timing, budget, macs, peak, item.command,
                               item.descriptions.get(mode)))
    return records


def measure(backend, config: BenchConfig, budget: Budget, work: WorkCounter | None = None,
            peak_gflops: float | None = None, command: str = "", pipeline: bool = False) -> list[BenchRecord]:
    """Measure one configuration on an opened backend (model-only, and end-to-end with ``pipeline``)."""
    return measure_together([prepare(backend, config, command, pipeline)], budget, work, peak_gflops)


def _record(config: BenchConfig, mode: str, timing: Timing, budget: Budget, macs: int | None,
            peak_gflops: float | None, command: str, pipeline_name: str | None) -> BenchRecord:
    stats: LatencyStats = summarize(timing.samples_ms)
    fps, mpix = throughput(stats.mean_ms, config.batch, config.height, config.width)
    gflops = 2.0 * macs * config.batch / (stats.mean_ms / 1000.0) / 1e9 if macs else None
    splits = timing.splits
    split = {k: float(np.mean([s[k] for s in splits]))
             for k in ("h2d_ms", "compute_ms", "d2h_ms", "capture_ms", "infer_ms", "output_ms")
             if splits and all(k in s for s in splits)}
    if mode == "transcode" and split:
        busy = split["capture_ms"] + split["infer_ms"] + split["output_ms"]
        split["codec_share"] = (split["capture_ms"] + split["output_ms"]) / busy if busy else None
    loads = timing.loads
    return BenchRecord(
        backend=config.variant.name,
        device=config.variant.device,
        precision=config.precision,
        batch=config.batch,
        height=config.height,
        width=config.width,
        mode=mode,
        model=str(config.model),
        iters=stats.n,
        warmup=budget.warmup if mode == "model" else min(1, budget.warmup),
        clock=timing.clock,
        min_ms=stats.min_ms,
        mean_ms=stats.mean_ms,
        p50_ms=stats.p50_ms,
        p90_ms=stats.p90_ms,
        p99_ms=stats.p99_ms,
        max_ms=stats.max_ms,
        std_ms=stats.std_ms,
        noise=stats.noise,
        fps=fps,
        mpix_s=mpix,
        gmacs_per_frame=macs / 1e9 if macs else None,
        gflops=gflops,
        peak_fraction=gflops / peak_gflops if gflops and peak_gflops else None,
        pipeline=pipeline_name,
        p50_ci_low_ms=stats.p50_ci_low_ms,
        p50_ci_high_ms=stats.p50_ci_high_ms,
        network=config.network,
        others_load=float(np.mean(loads)) if loads else None,
        flagged_blocks=sum(1 for x in loads if x > load.BUSY_CORES),
        blocks=len(loads),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY") if config.variant.backend == "torch" else None,
        command=command,
        **split,
    )


def add_overheads(records: Iterable[BenchRecord]) -> None:
    """Overhead as users feel it, from each end-to-end row and its model-only twin of the same turns.

    ``overhead`` = end-to-end mean time per batch / model-only mean time per batch - 1: the frames
    per second lost to the runtime around the model, including the model slowing down while the
    capture and output threads share the cores (which an in-iteration ratio cannot show; that
    split stays in ``capture_ms`` / ``infer_ms`` / ``output_ms``). An end-to-end row that beats its
    model-only twin beyond both medians' confidence intervals cannot be right (the pipeline does
    the model's work and more): it is flagged, not published.
    """
    records = list(records)
    model_only = {r.key()[:-1]: r for r in records if r.mode == "model"}
    for r in records:
        twin = model_only.get(r.key()[:-1])
        if r.mode == "model" or twin is None:
            continue
        r.overhead = r.mean_ms / twin.mean_ms - 1.0
        if r.p50_ci_high_ms is not None and twin.p50_ci_low_ms is not None and r.p50_ci_high_ms < twin.p50_ci_low_ms:
            r.flag = (f"end-to-end p50 {r.p50_ms:.2f} ms beats model-only {twin.p50_ms:.2f} ms beyond both "
                      "confidence intervals")


# ---------------------------------------------------------------------------------------
# Captioner


CAPTION_FRAME = (360, 640)  # (height, width) of the frames captioned: what a live camera gives


def caption_frames(height: int, width: int) -> tuple[list[np.ndarray], str]:
    """Frames to caption: the six main packaged photos, centre-cropped to the frame's aspect and
    resized (what a camera pointed at them gives), else synthetic frames."""
    try:
        photos = list(load_photos(MAIN_PHOTOS).values())
    except MissingDependencyError:
        return list(make_frames(6, height, width, seed=7)), "synthetic frames"
    frames = []
    for img in photos:
        h, w = img.shape[:2]
        if w / h > width / height:
            cw = round(h * width / height)
            img = img[:, (w - cw) // 2 : (w - cw) // 2 + cw]
        else:
            ch = round(w * height / width)
            img = img[(h - ch) // 2 : (h - ch) // 2 + ch]
        frames.append(np.ascontiguousarray(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)))
    return frames, f"packaged photos ({', '.join(MAIN_PHOTOS)})"


def measure_captioner(budget: Budget, model_dir: str | None = None, threads: int = 0) -> tuple[list[dict], str | None]:
    """Encoder latency, per-token decoder latency and whole greedy captions of an exported captioner.

    ``model_dir``: an exported captioner folder, or None for the embedded one. Returns
    (rows, None), or ([], reason) where there is no captioner to run. Each part is timed
    on its own (a caption's cost is one encoder call plus one decoder step per token),
    then whole captions, so the parts can be checked against the whole. For a fact captioner
    ``caption_ms`` is encoder + greedy caption (crop, classifier, activation map and colours,
    fact encoder, greedy decoding, detokenizing); face detection is timed on its own
    (``faces_ms``) and with the rest (``caption_with_faces_ms``): it runs only in the caption
    worker's thread, never in the frame path.
    """
    try:
        captioner = Captioner(model_dir, threads=max(1, threads))
    except StylizeError as exc:
        return [], f"no captioner to benchmark: {exc}"
    try:
        height, width = CAPTION_FRAME
        frames, frames_from = caption_frames(height, width)
        facts = captioner.kind == "facts"
        inputs = captioner.preprocess(frames[:1]) if not facts else None
        if facts:
            from stylize_rt.runtime.caption_facts import crop_for_encoder  # a fact captioner's own crop

            crop = crop_for_encoder(frames[0])[None]
            enc = captioner.encoder.infer({"image": crop})
            inputs = captioner.coder.encode_batch([captioner.facts(frames[0], faces=False)])
        else:
            enc = captioner.encoder.infer({"image": inputs})
        state = captioner._encode(inputs)  # noqa: SLF001 - the decoder's state is the unit under test here
        bad = [k for k, v in {**enc, **state}.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
        if bad:
            raise OutputCheckError(f"captioner encoder output {bad[0]!r} has NaN/Inf values")
        token = np.full(1, captioner.spec.bos_id, np.int64)
        logits, _ = captioner._step(token, state)  # noqa: SLF001 - one decoder step is the unit timed here
        if not np.isfinite(logits).all() or logits.max() == logits.min():
            raise OutputCheckError("captioner decoder logits are NaN/Inf or constant: nothing would be measured")
        cycle = {"i": 0}

        def next_frame() -> np.ndarray:
            cycle["i"] += 1
            return frames[cycle["i"] % len(frames)]

        def encode() -> None:
            captioner.encoder.infer({"image": crop if facts else inputs})

        def decode_step() -> None:
            captioner._step(token, state)  # noqa: SLF001

        def caption() -> None:
            frame = next_frame()
            if facts:  # encoder + greedy caption; faces are the worker thread's extra, timed below
                captioner.decode(captioner.coder.encode_batch([captioner.facts(frame, faces=False)]))
            else:
                captioner.caption(frame)

        steps = {"encoder": encode, "token": decode_step, "caption": caption}
        if facts and captioner.facts.faces is not None:
            steps["faces"] = lambda: captioner.facts.faces(next_frame())
            steps["caption_with_faces"] = lambda: captioner.caption(next_frame())
        tokens = float(np.mean([len(t) + 1 for t in captioner.greedy_tokens(
            captioner.preprocess(frames) if not facts else
            captioner.coder.encode_batch([captioner.facts(f, faces=False) for f in frames]))]))
        timings = time_steps(steps, budget)
        stats = {k: summarize(timings[k].samples_ms) for k in steps}
        enc_s, tok, cap = stats["encoder"], stats["token"], stats["caption"]
        row = {
            "backend": "onnxruntime", "device": "cpu", "precision": _encoder_precision(captioner),
            "threads": max(1, threads),
            "kind": captioner.kind, "frame": f"{width}x{height}", "frames": frames_from,
            "image_size": captioner.spec.image_size, "tokens": tokens,
            "encoder_ms": enc_s.p50_ms, "encoder_p90_ms": enc_s.p90_ms,
            "token_ms": tok.p50_ms, "token_p90_ms": tok.p90_ms,
            "caption_ms": cap.p50_ms, "caption_p90_ms": cap.p90_ms, "captions_s": 1000.0 / cap.p50_ms,
            "iters": min(s.n for s in stats.values()), "model": str(captioner.directory),
            "load_others_cores": round(float(np.median(sum((t.loads for t in timings.values()), []) or [0.0])), 2),
        }
        if "faces" in stats:
            row.update(faces_ms=stats["faces"].p50_ms, faces_p90_ms=stats["faces"].p90_ms,
                       caption_with_faces_ms=stats["caption_with_faces"].p50_ms,
                       caption_with_faces_p90_ms=stats["caption_with_faces"].p90_ms)
        return [row], None
    finally:
        captioner.close()


def _encoder_precision(captioner: Captioner) -> str:
    """What the image encoder graph computes in, from its metadata (the INT8 classifier says "int8")."""
    return str(captioner.encoder.metadata.get(contract.PRECISION, "fp32"))


def measure_caption_overlay(generator: str | Path, model_dir: str | None = None, threads: int = 1,
                            frames: int = 300, rounds: int = 5, interval_s: float = 1.0) -> dict:
    """Does the live overlay slow the stylizer down? Same-run A/B of the stream runner.

    ``frames`` 640x360 frames (the packaged photos) go through ``run_stream`` with ``generator``
    into a discarding raw-video sink, alternately without captions and with the captioner as the
    runtime's ``CaptionSink`` + ``CaptionWorker`` (a caption at most every ``interval_s``, faces
    included, in the worker's thread). Returns the median frames/s of each and their ratio.
    """
    from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend  # the stylizer for this A/B
    from stylize_rt.runtime.caption_sink import CaptionSink  # captions attach as a sink decorator
    from stylize_rt.runtime.caption_worker import CaptionWorker

    height, width = CAPTION_FRAME
    photos, frames_from = caption_frames(height, width)
    clip = np.stack([photos[i % len(photos)] for i in range(frames)])
    data = np.ascontiguousarray(clip[..., ::-1]).tobytes()
    stylizer = Stylizer(OnnxRuntimeBackend(generator, threads=threads))
    captioner = Captioner(model_dir, threads=1)
    config = PipelineConfig(batch=1, warm_up=True, progress=False, live=False, keep_original=True)
    fps: dict[str, list[float]] = {"plain": [], "captions": []}
    captions_made: list[int] = []
    try:
        for _ in range(rounds):
            for mode in ("plain", "captions"):
                sink = RawPipeSink(_Discard(), pix_fmt="bgr24")
                worker = None
                if mode == "captions":
                    worker = CaptionWorker(captioner.caption, interval_s=interval_s)
                    sink = CaptionSink(sink, worker)
                t0 = time.perf_counter()
                stats = run_stream(stylizer, RawPipeSource(io.BytesIO(data), (width, height), pix_fmt="bgr24"),
                                   sink, config)
                wall = time.perf_counter() - t0
                if stats.frames_out != frames:
                    raise RuntimeError(f"the pipeline wrote {stats.frames_out} of {frames} frames")
                fps[mode].append(frames / wall)
                if worker is not None:
                    captions_made.append(worker.captions_made)
    finally:
        captioner.close()
        stylizer.close()
    plain, with_captions = float(np.median(fps["plain"])), float(np.median(fps["captions"]))
    return {"generator": str(generator), "captioner": str(captioner.directory), "frame": f"{width}x{height}",
            "frames": frames_from, "frames_per_run": frames, "rounds": rounds, "interval_s": interval_s,
            "threads": threads, "plain_fps": plain, "captions_fps": with_captions,
            "fps_ratio": with_captions / plain, "captions_per_run": captions_made,
            "plain_fps_runs": fps["plain"], "captions_fps_runs": fps["captions"]}
