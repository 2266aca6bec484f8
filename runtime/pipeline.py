"""The stream runner: capture, inference and output in three threads joined by bounded queues.

Why threads: decoding/capturing a frame, running the model and encoding/showing the result
take comparable time, and OpenCV, ONNX Runtime and TensorRT all release the GIL while they
work, so three stages overlap and the throughput approaches that of the slowest stage.

Two policies, chosen by ``source.live``:

* files and pipes: every frame, in order, nothing dropped; full queues block the stage
  that feeds them (back-pressure), so memory stays bounded;
* live sources (cameras, RTSP): the newest frame wins; a frame the model had no time for is
  replaced by a newer one and counted, so latency stays at about one model time instead of
  growing without bound.

The output stage runs in the caller's thread (OpenCV windows want the main thread, and
Ctrl-C is delivered there); whatever ends the run, the sink is closed, which finalizes the
output file with every frame written so far.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from stylize_rt.errors import StylizeError
from stylize_rt.progress import progress_bar
from stylize_rt.runtime.frames import resize, stack_frames
from stylize_rt.runtime.grid_anchor import GridAnchor
from stylize_rt.runtime.signals import deferred_signals
from stylize_rt.runtime.sinks import FrameInfo, Sink
from stylize_rt.runtime.sources import Source
from stylize_rt.runtime.stats import RunStats
from stylize_rt.runtime.style_controls import StyleControls
from stylize_rt.runtime.stylizer import Stylizer
from stylize_rt.sizes import scaled_size

_POLL_S = 0.05
_JOIN_S = 2.0


@dataclass
class PipelineConfig:
    """How frames are processed; every field has a CLI flag of the same meaning."""

    size: tuple[int, int] | None = None  # --size WxH: processing and output size
    scale: float | None = None  # --scale: processing size relative to the source
    batch: int = 1  # --batch: frames per model call (files; live sources always use 1)
    max_frames: int | None = None  # --max-frames
    queue_frames: int = 8  # depth of the file-mode queues between stages
    warm_up: bool = True  # run the model before the first frame
    progress: bool = True  # tqdm bar on stderr for file runs
    live: bool | None = None  # None: the source decides (``source.live``)
    keep_original: bool = False  # hand sinks the frame before --size/--scale resizing (split view, captions)
    pace_fps: float | None = None  # write no faster than this (a file previewed in a window)
    skip_bad_frames: bool = False  # image folders: a frame the model refuses is reported and skipped
    controls_at: Callable[[FrameInfo], StyleControls] | None = None  # per-frame style controls (timelines)
    grid_anchor: bool = True  # --no-grid-anchor: keep the model's grid on the scene in videos (runtime.grid_anchor)


@dataclass
class _Packet:
    frame: np.ndarray
    info: FrameInfo
    original: np.ndarray | None = None  # the frame before resizing, when ``keep_original``
    grid_offset: tuple[int, int] | None = None  # the grid anchor's pad for this frame, when anchoring


@dataclass
class _Result:
    original: np.ndarray
    stylized: np.ndarray
    info: FrameInfo


class Channel:
    """A bounded hand-over between two threads.

    ``latest_wins=False``: a FIFO; ``put`` waits while full. ``latest_wins=True``: ``put``
    never waits; when full, the oldest item is dropped and counted. ``close`` marks the end
    (optionally with the error that ended it); items already in are still delivered.
    """

    def __init__(self, capacity: int, latest_wins: bool) -> None:
        self.capacity = max(1, capacity)
        self.latest_wins = latest_wins
        self.dropped = 0
        self.error: BaseException | None = None
        self._items: collections.deque = collections.deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item, stop: threading.Event) -> bool:
        with self._cond:
            if self.latest_wins:
                while len(self._items) >= self.capacity:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self.capacity and not stop.is_set():
                    self._cond.wait(_POLL_S)
                if stop.is_set():
                    return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, stop: threading.Event):
        """The next item, or ``None`` once closed and drained (or stopped)."""
        with self._cond:
            while not self._items and not self._closed and not stop.is_set():
                self._cond.wait(_POLL_S)
            if self._items and not stop.is_set():
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return None

    def close(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._closed = True
            if error is not None and self.error is None:
                self.error = error
            self._cond.notify_all()


class StreamRunner:
    """Runs ``source -> stylizer -> sink`` until the source ends, the sink asks to stop or an error.

    Each frame reaches the sink with its ``FrameInfo``: the unstylized frame (``original``)
    and the run's live ``stats``, from which decorators and windows draw captions and
    readouts; the runner itself draws nothing. A sink with a true ``quit`` attribute (a
    window whose viewer pressed q) ends the run.
    """

    def __init__(self, stylizer: Stylizer, source: Source, sink: Sink, config: PipelineConfig | None = None) -> None:
        self.stylizer = stylizer
        self.source = source
        self.sink = sink
        self.config = config or PipelineConfig()
        self.live = bool(source.live) if self.config.live is None else self.config.live
        self.batch = 1 if self.live else max(1, self.config.batch)
        self.stats = RunStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        depth = 1 if self.live else max(self.config.queue_frames, 2 * self.batch)
        self._frames = Channel(depth, latest_wins=self.live)
        self._results = Channel(1 if self.live else depth, latest_wins=self.live)
        self._keep_original = self.config.keep_original
        # Anchoring follows the camera from frame to frame: only sources whose frames are one shot.
        grid = getattr(stylizer, "anchor_grid", None)  # the model's grid in the frame's pixels
        anchored = self.config.grid_anchor and grid and getattr(source, "continuous", False)
        self.grid_anchor = GridAnchor(grid) if anchored else None
        self._anchor_checked = False

    # -- sizes ------------------------------------------------------------------------
    def _target_size(self, width: int, height: int) -> tuple[int, int] | None:
        if self.config.size:
            return self.config.size
        if self.config.scale:
            return scaled_size(width, height, self.config.scale)
        return None

    # -- stages -----------------------------------------------------------------------
    def _capture(self) -> None:
        stats = self.stats
        limit = None if self.live else self.config.max_frames
        index = 0
        try:
            while not self._stop.is_set() and (limit is None or index < limit):
                t0 = time.perf_counter()
                frame = self.source.read()
                t1 = time.perf_counter()
                if frame is None:
                    break
                stats.stage("capture").add(t1 - t0)
                timing = getattr(self.source, "timing", None)  # the source's clock, when it has one
                info = FrameInfo(index, (timing and timing.captured_at) or t1, getattr(self.source, "frame_name", None),
                                 pts=timing and timing.pts, duration=timing and timing.duration)
                index += 1
                stats.frames_in = index
                original = frame
                target = self._target_size(frame.shape[1], frame.shape[0])
                if target and target != (frame.shape[1], frame.shape[0]):
                    frame = resize(frame, *target)
                    stats.stage("resize").add(time.perf_counter() - t1)
                packet = _Packet(frame, info, original if self._keep_original else None)
                if self.grid_anchor is not None:
                    packet.grid_offset = self._grid_offset(frame)
                if not self._frames.put(packet, self._stop):
                    break
            self._frames.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, re-raised there
            self._frames.close(exc)

    def _grid_offset(self, frame: np.ndarray) -> tuple[int, int] | None:
        """The anchor's pad for ``frame``; at the first frame, the anchor is turned off (with a note)
        where the engine takes no frame padded to the grid (a profile that ends at the frame size)."""
        h, w = frame.shape[:2]
        if not self._anchor_checked:
            self._anchor_checked = True
            if not self.stylizer.grid_fits(w, h):
                wp, hp = self.stylizer.anchored_model_size(w, h)
                print(f"stylize-rt: note: grid anchor off: the engine takes no {wp}x{hp} frames (the {w}x{h} frame "
                      f"padded to the model's grid); build it with --max {wp}x{hp} or larger to anchor",
                      file=sys.stderr)
                self.grid_anchor = None
                return None
        return self.grid_anchor.offset(frame)

    def _infer(self) -> None:
        pending: _Packet | None = None
        try:
            while not self._stop.is_set():
                first = pending or self._frames.get(self._stop)
                pending = None
                if first is None:
                    break
                batch = [first]
                while len(batch) < self.batch:
                    nxt = self._frames.get(self._stop)
                    if nxt is None:
                        break
                    if nxt.frame.shape != first.frame.shape:  # batches need one size
                        pending = nxt
                        break
                    batch.append(nxt)
                t0 = time.perf_counter()
                batch, stylized = self._stylize(batch)
                self.stats.stage("model").add(time.perf_counter() - t0, max(1, len(batch)))
                for packet, out in zip(batch, stylized):
                    original = packet.original if packet.original is not None else packet.frame
                    if not self._results.put(_Result(original, out, packet.info), self._stop):
                        return
            self.stats.dropped_capture = self._frames.dropped
            self._results.close(self._frames.error)
        except BaseException as exc:  # noqa: BLE001
            self._results.close(exc)

    def _stylize(self, batch: list[_Packet]) -> tuple[list[_Packet], np.ndarray | list]:
        """The batch and its stylized frames; with ``skip_bad_frames``, frames the model refuses
        are reported, counted in ``stats.skipped`` and dropped, and the others go on."""
        controls = [self.config.controls_at(p.info) for p in batch] if self.config.controls_at else None
        offsets = [p.grid_offset for p in batch]
        offsets = None if any(o is None for o in offsets) else offsets
        try:
            if offsets is not None:
                return batch, self.stylizer.stylize_batch(stack_frames([p.frame for p in batch]), controls, offsets)
            if len(batch) == 1:
                return batch, self.stylizer(batch[0].frame, controls[0] if controls else None)[None]
            return batch, self.stylizer.stylize_batch(stack_frames([p.frame for p in batch]), controls)
        except StylizeError as exc:
            if not self.config.skip_bad_frames:
                raise
            if len(batch) > 1:  # find the frame(s) at fault; keep the rest
                kept, outs = [], []
                for packet in batch:
                    one, out = self._stylize([packet])
                    kept += one
                    outs += list(out)
                return kept, outs
            name = batch[0].info.name or f"frame {batch[0].info.index}"
            self.stats.skipped.append(name)
            print(f"stylize-rt: warning: skipped {name}: {exc}", file=sys.stderr)
            return [], []

    def _output(self, progress) -> None:
        stats = self.stats
        paced_from: float | None = None
        limit = self.config.max_frames if self.live else None
        while True:
            result = self._results.get(self._stop)
            if result is None:
                break
            t0 = time.perf_counter()
            info = result.info
            info.original = result.original
            info.stats = stats
            stats.dropped_capture, stats.dropped_output = self._frames.dropped, self._results.dropped
            frame = result.stylized
            if self.config.pace_fps:
                if paced_from is None:
                    paced_from = t0
                delay = paced_from + stats.frames_out / self.config.pace_fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            self.sink.write(frame, info)
            t1 = time.perf_counter()
            stats.stage("output").add(t1 - t0)
            stats.stage("latency").add(t1 - result.info.captured_at)
            stats.frames_out += 1
            if stats.first_output_at is None:
                stats.first_output_at = t1
            if progress is not None:
                progress.update(1)
            if getattr(self.sink, "quit", False) or (limit is not None and stats.frames_out >= limit):
                break

    # -- run --------------------------------------------------------------------------
    def _warm_up(self) -> None:
        size = getattr(self.source, "size", None)
        if not self.config.warm_up or not size:
            return
        target = self._target_size(*size) or size
        self.stylizer.warm_up(target[0], target[1], self.batch)

    def _progress_bar(self):
        if self.live or not self.config.progress:
            return None
        total = getattr(self.source, "frame_count", None)
        if total and self.config.max_frames:
            total = min(total, self.config.max_frames)
        return progress_bar(total=total, unit="frame", desc="stylize", leave=False)

    def _finish(self, progress) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(_JOIN_S)
        if progress is not None:
            progress.close()
        self.stats.finished_at = time.perf_counter()
        self.stats.dropped_capture = self._frames.dropped
        self.stats.dropped_output = self._results.dropped

    def run(self) -> RunStats:
        """Process the stream; returns the timings. Errors from any stage are raised here,
        after the sink was closed (output finalized) and the threads were stopped."""
        self._warm_up()
        self.stats = RunStats()  # warm-up is not part of the run's timings
        self.stats.live = self.live
        self.stats.source_fps = getattr(self.source, "fps", None)
        self._threads = [
            threading.Thread(target=self._capture, name="stylize-rt-capture", daemon=True),
            threading.Thread(target=self._infer, name="stylize-rt-infer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        progress = self._progress_bar()
        error: BaseException | None = None
        try:
            self._output(progress)
        except BaseException as exc:  # noqa: BLE001 - Ctrl-C / SIGTERM / sink errors: finalize first
            error = exc
        finally:
            with deferred_signals() as received:  # a second Ctrl-C must not abandon the output half-finalized
                self._finish(progress)
                try:
                    self.sink.close()
                except BaseException as exc:  # noqa: BLE001
                    error = error or exc
                if not self._threads[0].is_alive():  # never release a capture another thread is inside
                    with contextlib.suppress(Exception):  # closing a source must not mask the real outcome
                        self.source.close()
            if received and error is None:
                error = KeyboardInterrupt()
        error = error or self._results.error or self._frames.error
        if error is not None:
            raise error
        return self.stats


def run_stream(stylizer: Stylizer, source: Source, sink: Sink, config: PipelineConfig | None = None, **kwargs) -> RunStats:
    """One call for embedding: stylize everything ``source`` gives into ``sink``."""
    return StreamRunner(stylizer, source, sink, config, **kwargs).run()
