"""Captions on the way out: a sink decorator that offers frames to a :class:`CaptionWorker`.

The pipeline knows nothing about captions. Wrapped around the output sink(s), this offers
each frame's unstylized original to the worker (a non-blocking hand-over), draws the newest
caption onto the frame every output gets (files and windows alike), and writes one JSON
line per new caption to ``log``. The worker starts with the first frame (after the model's
warm-up) and stops when the sink closes.
"""

from __future__ import annotations

import json
from typing import IO

import numpy as np

from stylize_rt.runtime.caption_worker import Caption, CaptionWorker
from stylize_rt.runtime.overlay import ViewState, compose
from stylize_rt.runtime.sinks import FrameInfo, Sink


class CaptionSink:
    """``sink`` with the newest caption drawn on every frame; ``view.captions`` toggles the drawing."""

    def __init__(self, sink: Sink, worker: CaptionWorker, view: ViewState | None = None,
                 log: IO[str] | None = None) -> None:
        self.sink = sink
        self.worker = worker
        self.view = view or ViewState()
        self.log = log
        self._started = False
        self._logged: Caption | None = None

    @property
    def frames_written(self) -> int:
        return getattr(self.sink, "frames_written", 0)

    @property
    def quit(self) -> bool:
        return getattr(self.sink, "quit", False)

    def write(self, frame: np.ndarray, info: FrameInfo) -> None:
        if not self._started:
            self.worker.start()
            self._started = True
        original = info.original if info.original is not None else frame
        self.worker.offer(original, info.index, info.captured_at)
        caption = self.worker.latest()
        self._log(caption)
        self.sink.write(compose(original, frame, ViewState(captions=self.view.captions), caption), info)

    def _log(self, caption: Caption | None) -> None:
        if self.log is None or caption is None or caption is self._logged:
            return
        self._logged = caption
        record = {"frame": caption.frame_index, "text": caption.text, "compute_s": round(caption.compute_s, 3),
                  "age_s": round(caption.age_s(), 3)}
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()

    def close(self) -> None:
        """Stop the worker (a caption in progress is not waited for), then close the wrapped sink."""
        if self._started:
            self.worker.stop()
        self.sink.close()


__all__ = ["CaptionSink"]
