"""``stylize-rt batch``: stylize a collection of images and videos, here or on a Ray cluster.

One plan, one worker, two executors:

1. :func:`plan_batch` expands the inputs (folders recursively, globs, files) into work items,
   one per image and one per video (a video's frames stay in order in one task), each with
   its output path under ``--output`` (folder structure kept). Two inputs that would write
   the same output, or an output that is an input, stop the job before anything runs.
   Outputs that exist and decode are done already (a resumed job skips them); an existing
   output that does not decode is reported and kept unless ``overwrite``.
2. :class:`BatchWorker` opens the model once and stylizes the items it is handed; images
   of one size in a call share a model call. Every output is written atomically (a temp
   file renamed into place), so an output that exists is complete; a corrupt input fails
   its own item with a one-line reason and the job goes on.
3. Without Ray the worker runs here over the plan. With Ray (``ray_address``), Ray Data
   distributes the same items to an actor pool: each actor is one ``BatchWorker`` (one
   backend opened once), ``actors`` of them with ``cpus_per_actor``/``gpus_per_actor`` each.
   Ray restarts an actor that dies and retries its batch; the worker skips items whose
   output appeared meanwhile, so a retry never rewrites a finished output. A job that
   fails anyway resumes where it stopped when run again.

Ray is an optional extra (``stylize-rt[scale]``) imported only when a job asks for it. With
a multi-node cluster, inputs and outputs must be on storage every node sees at the same path.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from stylize_rt.errors import BadInputError, MissingDependencyError, StylizeError, first_line
from stylize_rt.fileio import write_atomic
from stylize_rt.imageio import IMAGE_SUFFIXES, decode_image, write_image
from stylize_rt.runtime.codecs import CONTAINERS
from stylize_rt.runtime.grid_anchor import GridAnchor
from stylize_rt.runtime.session import ModelChoice, StyleChoice, open_stylizer
from stylize_rt.runtime.sinks import FrameInfo, VideoFileSink
from stylize_rt.runtime.sources import VIDEO_SUFFIXES, VideoFileSource

REPORT_FILE = "stylize-rt-batch.json"
DEFAULT_VIDEO_SUFFIX = ".mp4"  # for video inputs in containers our writer does not produce
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024  # a local cluster moves file names, not pixels
SCALE_HINT = "pip install 'stylize-rt[scale]'"


@dataclass(frozen=True)
class WorkItem:
    kind: str  # "image" | "video"
    source: str
    output: str


@dataclass
class ItemResult:
    source: str
    output: str
    status: str  # "done" | "failed" | "exists" (finished by an earlier attempt of this job)
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    worker: int = 0  # the worker process id (which actor did it)


@dataclass
class BatchPlan:
    todo: list[WorkItem] = field(default_factory=list)
    done_before: list[WorkItem] = field(default_factory=list)  # complete outputs already there
    kept: list[tuple[WorkItem, str]] = field(default_factory=list)  # existing outputs that are not complete
    ignored: list[str] = field(default_factory=list)  # files in input folders that are neither image nor video


@dataclass
class BatchConfig:
    """A batch job; every field has the ``batch`` flag of the same name."""

    inputs: tuple[str, ...]
    output: str
    model: ModelChoice = field(default_factory=ModelChoice)
    style: StyleChoice = field(default_factory=StyleChoice)  # --style --mix --strength --preserve-color --texture-scale
    batch: int = 4  # images per worker call (and frames per model call for videos)
    overwrite: bool = False
    ray_address: str | None = None  # None: run here; "local": start a local Ray; else a cluster address
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    progress: bool = True
    report: str | None = None  # default: OUTPUT/stylize-rt-batch.json

    def validate(self) -> None:
        if not self.inputs:
            raise BadInputError("give at least one --input (a folder, a video, an image or a glob)")
        if self.batch < 1 or self.actors < 1:
            raise BadInputError("--batch and --actors must be >= 1")
        if self.cpus_per_actor < 0 or self.gpus_per_actor < 0:
            raise BadInputError("--cpus-per-actor and --gpus-per-actor must be >= 0")
        if self.style.timeline:
            raise BadInputError("a style timeline follows one video's clock: use stylize-rt run --style-timeline")


@dataclass
class BatchSummary:
    results: list[ItemResult]
    plan: BatchPlan
    seconds: float
    executor: str

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def images_per_second(self) -> float:
        """Frames written per second of the whole job (worker start-up included)."""
        done = [r for r in self.results if r.status == "done"]
        return sum(r.frames for r in done) / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        plan = self.plan
        out = [f"batch ({self.executor}): {self.count('done')} stylized, {len(plan.done_before) + self.count('exists')} "
               f"already done, {len(self.failed)} failed, {len(plan.kept)} existing outputs kept; "
               f"{self.images_per_second:.2f} frames/s over {self.seconds:.1f} s"]
        out += [f"  failed: {r.source}: {r.error}" for r in self.failed]
        out += [f"  kept (not overwritten, pass --overwrite): {item.output}: {why}" for item, why in plan.kept]
        if plan.ignored:
            out.append(f"  ignored {len(plan.ignored)} files that are neither images nor videos (e.g. {plan.ignored[0]})")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"executor": self.executor, "seconds": round(self.seconds, 3),
                "frames_per_second": round(self.images_per_second, 3),
                "counts": {"done": self.count("done"), "already_done": len(self.plan.done_before) + self.count("exists"),
                           "failed": len(self.failed), "kept": len(self.plan.kept)},
                "results": [dataclasses.asdict(r) for r in self.results],
                "kept": [{"output": item.output, "reason": why} for item, why in self.plan.kept],
                "ignored": self.plan.ignored}


# ---------------------------------------------------------------------------------------
# Planning


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _expand(spec: str, output_dir: Path, ignored: list[str]) -> Iterator[tuple[Path, Path]]:
    """(file, path relative to its output folder) for one ``--input``."""
    path = Path(spec)
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            if output_dir == file.resolve().parent or output_dir in file.resolve().parents:
                continue  # a rerun must not take its own outputs for inputs
            if file.name.startswith("."):
                continue
            if _kind(file) is None:
                ignored.append(str(file))
                continue
            yield file, file.relative_to(path)
    elif path.is_file():
        yield path, Path(path.name)
    elif glob.has_magic(spec):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not matches:
            raise BadInputError(f"no files match {spec!r}")
        for file in matches:
            if _kind(file) is not None:
                yield file, Path(file.name)
            else:
                ignored.append(str(file))
    else:
        raise BadInputError(f"input not found: {spec}")


def _output_for(kind: str, relative: Path, output_dir: Path) -> Path:
    if kind == "video" and relative.suffix.lower() not in CONTAINERS:
        relative = relative.with_suffix(DEFAULT_VIDEO_SUFFIX)
    return output_dir / relative


def output_complete(item: WorkItem) -> str | None:
    """None when ``item``'s output is there and decodes, else why not (a missing output says so too)."""
    path = Path(item.output)
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty file"
    try:
        if item.kind == "image":
            with Image.open(path) as image:
                image.verify()
            return None
        source = VideoFileSource(path)
        try:
            return None if source.read() is not None else "no frames"
        finally:
            source.close()
    except Exception as exc:  # noqa: BLE001 - PIL and OpenCV raise many types for a broken file
        return f"does not decode ({first_line(exc)})"


def _video_temp(output: Path) -> Path:
    """Where a video is written until it is complete (then renamed to ``output``)."""
    return output.with_name(f".{output.stem}.batch-partial{output.suffix}")


def _stale_partials(output: Path) -> list[Path]:
    """Temp files a worker killed mid-write leaves (images: NAME.*.tmp; videos: the video temp and the
    writer's own .STEM.*.partial.EXT)."""
    parent = output.parent
    if not parent.is_dir():
        return []
    temp = _video_temp(output)
    return [*parent.glob(f"{glob.escape(output.name)}.*.tmp"), *([temp] if temp.exists() else []),
            *parent.glob(f".{glob.escape(temp.stem)}.*.partial{output.suffix}")]


def plan_batch(inputs: Iterable[str], output: str | os.PathLike[str], overwrite: bool = False) -> BatchPlan:
    """The work items for ``inputs`` -> ``output`` (see the module doc); one-line errors for collisions."""
    output_dir = Path(output).resolve()
    if output_dir.exists() and not output_dir.is_dir():
        raise BadInputError(f"--output must be a folder: {output} is a file")
    plan = BatchPlan()
    by_output: dict[Path, Path] = {}
    sources: set[Path] = set()
    items: list[WorkItem] = []
    for spec in inputs:
        for file, relative in _expand(spec, output_dir, plan.ignored):
            kind = _kind(file)
            target = _output_for(kind, relative, output_dir)
            resolved = file.resolve()
            if resolved in sources:
                continue  # the same file named twice (a folder and a glob inside it)
            if target in by_output:
                raise BadInputError(f"{file} and {by_output[target]} would both write {target}: "
                                    "give them separate --output folders or rename one")
            by_output[target] = file
            sources.add(resolved)
            items.append(WorkItem(kind, str(file), str(target)))
    for item in items:
        if Path(item.output) in sources:
            raise BadInputError(f"{item.source} would be overwritten by its own output: choose another --output")
    if not items:
        raise BadInputError("no images or videos in the inputs"
                            + (f" (ignored {len(plan.ignored)} other files)" if plan.ignored else ""))
    for item in items:
        state = output_complete(item)
        if state is None and not overwrite:
            plan.done_before.append(item)
        elif state not in (None, "missing") and not overwrite:
            plan.kept.append((item, state))
        else:
            plan.todo.append(item)
    for item in plan.todo:
        for stale in _stale_partials(Path(item.output)):
            stale.unlink(missing_ok=True)
    return plan


# ---------------------------------------------------------------------------------------
# The worker (the same code here and in every Ray actor)

COLUMNS = ("kind", "source", "output")


def to_columns(items: list[WorkItem]) -> dict[str, np.ndarray]:
    return {name: np.array([getattr(i, name) for i in items], dtype=object) for name in COLUMNS}


def result_columns(results: list[ItemResult]) -> dict[str, np.ndarray]:
    names = [f.name for f in dataclasses.fields(ItemResult)]
    return {name: np.array([getattr(r, name) for r in results], dtype=object) for name in names}


def results_from_columns(columns: dict[str, np.ndarray]) -> list[ItemResult]:
    count = len(next(iter(columns.values()))) if columns else 0
    return [ItemResult(**{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in columns.items()})
            for i in range(count)]


class BatchWorker:
    """Opens one backend once; ``__call__`` stylizes a batch of work items (columns of :data:`COLUMNS`)."""

    def __init__(self, model: ModelChoice, batch: int = 4, overwrite: bool = False,
                 style: StyleChoice | None = None) -> None:
        self.stylizer = open_stylizer(model)
        try:
            style = style or StyleChoice()
            self.stylizer.controls = style.controls(self.stylizer.styles)
            self.stylizer.texture_scale = style.texture_scale
        except BaseException:
            self.stylizer.close()
            raise
        self.batch = batch
        self.overwrite = overwrite

    def __call__(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [WorkItem(str(k), str(s), str(o)) for k, s, o in zip(*(columns[c] for c in COLUMNS))]
        return result_columns(self.process(items))

    def process(self, items: list[WorkItem]) -> list[ItemResult]:
        results: dict[int, ItemResult] = {}
        images: dict[tuple[int, ...], list[tuple[int, WorkItem, np.ndarray]]] = {}
        for index, item in enumerate(items):
            if not self.overwrite and output_complete(item) is None:
                # An earlier attempt (a restarted actor's first try) finished it: keep that file.
                results[index] = ItemResult(item.source, item.output, "exists", worker=os.getpid())
            elif item.kind == "video":
                results[index] = self._video(item)
            else:
                try:
                    frame, _ = decode_image(item.source)
                except StylizeError as exc:
                    results[index] = ItemResult(item.source, item.output, "failed", error=str(exc), worker=os.getpid())
                    continue
                images.setdefault(frame.shape, []).append((index, item, frame))
        for group in images.values():
            for start in range(0, len(group), self.batch):
                results.update(self._images(group[start:start + self.batch]))
        return [results[i] for i in range(len(items))]

    def _images(self, group: list[tuple[int, WorkItem, np.ndarray]]) -> dict[int, ItemResult]:
        t0 = time.perf_counter()
        out: dict[int, ItemResult] = {}
        try:
            styled = self.stylizer.stylize_batch(np.stack([frame for _, _, frame in group]))
        except StylizeError as exc:
            return {i: ItemResult(item.source, item.output, "failed", error=str(exc), worker=os.getpid())
                    for i, item, _ in group}
        seconds = (time.perf_counter() - t0) / len(group)
        for (index, item, _), frame in zip(group, styled):
            try:
                write_image(item.output, frame)
                out[index] = ItemResult(item.source, item.output, "done", 1, seconds, worker=os.getpid())
            except StylizeError as exc:
                out[index] = ItemResult(item.source, item.output, "failed", error=str(exc), worker=os.getpid())
        return out

    def _video(self, item: WorkItem) -> ItemResult:
        """One video in order: frames in chunks of ``batch``, written to a temp file renamed when complete
        (a video that fails half-way leaves no output); through a grid anchor, as ``stylize-rt run``
        runs a video, where the model declares its grid and takes the padded frames."""
        t0 = time.perf_counter()
        frames = 0
        source = sink = None
        temp = _video_temp(Path(item.output))
        try:
            source = VideoFileSource(item.source)
            temp.parent.mkdir(parents=True, exist_ok=True)
            # The input's audio and frame times are carried over, as ``stylize-rt run`` does.
            sink = VideoFileSink(temp, fps=source.fps, audio=source.audio)
            anchor = None
            while True:
                chunk, infos = [], []
                while len(chunk) < self.batch and (frame := source.read()) is not None:
                    timing = source.timing
                    infos.append(FrameInfo(frames + len(chunk), time.perf_counter(),
                                           pts=timing.pts if timing else None,
                                           duration=timing.duration if timing else None))
                    chunk.append(frame)
                if not chunk:
                    break
                if frames == 0 and self.stylizer.grid_fits(chunk[0].shape[1], chunk[0].shape[0]):
                    anchor = GridAnchor(self.stylizer.anchor_grid)
                offsets = [anchor.offset(f) for f in chunk] if anchor is not None else None
                for styled, info in zip(self.stylizer.stylize_batch(np.stack(chunk), None, offsets), infos):
                    sink.write(styled, info)
                frames += len(chunk)
            if frames == 0:
                raise BadInputError(f"{item.source}: no frames")
            sink.close()
            sink = None
            os.replace(temp, item.output)
            return ItemResult(item.source, item.output, "done", frames, time.perf_counter() - t0, worker=os.getpid())
        except (StylizeError, OSError) as exc:
            return ItemResult(item.source, item.output, "failed", frames, error=first_line(exc), worker=os.getpid())
        finally:
            if sink is not None:
                sink.close()
            temp.unlink(missing_ok=True)
            if source is not None:
                source.close()

    def close(self) -> None:
        self.stylizer.close()


# ---------------------------------------------------------------------------------------
# Executors


def _chunks(items: list[WorkItem], size: int) -> Iterator[list[WorkItem]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_local(config: BatchConfig, todo: list[WorkItem]) -> Iterator[ItemResult]:
    worker = BatchWorker(config.model, config.batch, config.overwrite, config.style)
    try:
        for chunk in _chunks(todo, config.batch):
            yield from results_from_columns(worker(to_columns(chunk)))
    finally:
        worker.close()


def _import_ray():
    try:
        import ray  # the [scale] extra: only --ray jobs need it
        import ray.data  # Ray Data (pandas, pyarrow), used as ray.data
    except ImportError:
        raise MissingDependencyError(f"--ray needs Ray Data: {SCALE_HINT}") from None
    return ray


def connect_ray(address: str) -> Any:
    """Ray, initialized: the running session if there is one, a local cluster for ``local``, else ``address``."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    try:
        if address == "local":
            # One node, this machine: it advertises loopback, not the LAN address.
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise StylizeError(f"cannot connect to the Ray cluster at {address}: {first_line(exc)}") from None
    return ray


def run_ray(config: BatchConfig, todo: list[WorkItem]) -> Iterator[ItemResult]:
    ray = connect_ray(config.ray_address or "local")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the job's own bar counts items; Ray's would count blocks
    model = config.model
    if not model.threads and config.cpus_per_actor >= 1:
        model = dataclasses.replace(model, threads=int(config.cpus_per_actor))  # one actor, its own cores
    dataset = ray.data.from_items([dataclasses.asdict(item) for item in todo],
                                  override_num_blocks=max(1, min(len(todo), 4 * config.actors)))
    results = dataset.map_batches(
        BatchWorker, batch_size=config.batch, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=config.actors),
        fn_constructor_kwargs={"model": model, "batch": config.batch, "overwrite": config.overwrite,
                               "style": config.style},
        num_cpus=config.cpus_per_actor, num_gpus=config.gpus_per_actor or None)
    for columns in results.iter_batches(batch_size=None, batch_format="numpy"):
        yield from results_from_columns(columns)


def run_batch(config: BatchConfig, on_result: Callable[[ItemResult], None] | None = None) -> BatchSummary:
    """Plan, run (here or on Ray), write the report; returns the summary (failures are in it, not raised)."""
    config.validate()
    plan = plan_batch(config.inputs, config.output, config.overwrite)
    executor = "local" if config.ray_address is None else f"ray, {config.actors} actor(s)"
    results: list[ItemResult] = []
    if config.ray_address is not None and plan.todo:
        connect_ray(config.ray_address)  # before the clock: starting a local Ray is not the job's work
    bar = None
    if config.progress and plan.todo:
        from tqdm import tqdm  # a hard dependency; imported here so a quiet job never touches the terminal

        bar = tqdm(total=len(plan.todo), desc="batch", unit="file", dynamic_ncols=True, disable=None)
    t0 = time.perf_counter()
    try:
        if plan.todo:
            run = run_local if config.ray_address is None else run_ray
            for result in run(config, plan.todo):
                results.append(result)
                if bar is not None:
                    bar.update(1)
                if on_result is not None:
                    on_result(result)
    finally:
        if bar is not None:
            bar.close()
    summary = BatchSummary(results, plan, time.perf_counter() - t0, executor)
    report = Path(config.report) if config.report else Path(config.output) / REPORT_FILE
    write_atomic(report, json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


__all__ = ["BatchConfig", "BatchPlan", "BatchSummary", "BatchWorker", "ItemResult", "WorkItem", "output_complete",
           "plan_batch", "run_batch"]
