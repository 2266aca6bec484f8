"""Captions beside stylization: a background thread that captions the newest frame now and then.

A captioner (encoder + autoregressive decoder) is far slower than the style model, so it
must never sit in the frame path: the pipeline only *offers* frames (a non-blocking
overwrite of a one-frame slot), the worker captions whichever frame is newest when it is
free and at most once per ``interval_s``, and the overlay shows the newest caption with
its age. A captioner that fails is reported once and switched off; frames keep flowing.

Everything the captioner does runs in this thread: for the fact captioner that is the ImageNet
classifier, the colour and layout rules, the decoder and the Haar face detector (20-90 ms a
frame on a busy CPU core, too slow for the frame path, cheap at one caption a second).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from stylize_rt.errors import first_line


@dataclass(frozen=True)
class Caption:
    text: str
    frame_index: int
    captured_at: float  # perf_counter of the frame it describes
    made_at: float  # perf_counter when the captioner returned
    compute_s: float

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the captioned frame was captured."""
        return (time.perf_counter() if now is None else now) - self.captured_at


class CaptionWorker:
    """Runs ``caption_fn(frame_rgb) -> str`` on the newest offered frame, asynchronously."""

    def __init__(self, caption_fn: Callable[[np.ndarray], str], interval_s: float = 1.0) -> None:
        self.caption_fn = caption_fn
        self.interval_s = interval_s
        self.captions_made = 0
        self.offers = 0
        self.error: str | None = None
        self._slot: tuple[np.ndarray, int, float] | None = None
        self._latest: Caption | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="stylize-rt-captions", daemon=True)

    def start(self) -> "CaptionWorker":
        self._thread.start()
        return self

    def offer(self, frame: np.ndarray, frame_index: int, captured_at: float) -> None:
        """Hand over a frame; never blocks (a frame not yet taken is simply replaced)."""
        if self.error is not None:
            return
        with self._cond:
            self._slot = (frame, frame_index, captured_at)
            self.offers += 1
            self._cond.notify()

    def latest(self) -> Caption | None:
        return self._latest

    def _loop(self) -> None:
        last_start = -float("inf")
        while True:
            with self._cond:
                while self._slot is None and not self._stop:
                    self._cond.wait()
                # Offers wake the thread; it still waits out the interval (newer frames replace the
                # slot meanwhile, and the newest is captioned), so captions come at most once per interval.
                deadline = last_start + self.interval_s
                while not self._stop and (wait := deadline - time.perf_counter()) > 0:
                    self._cond.wait(wait)
                if self._stop:
                    return
                frame, index, captured_at = self._slot
                self._slot = None
            last_start = time.perf_counter()
            try:
                text = str(self.caption_fn(frame)).strip()
            except Exception as exc:  # noqa: BLE001 - a captioner failure must not stop the video
                self.error = f"{type(exc).__name__}: {first_line(exc)}"
                print(f"stylize-rt: warning: captions turned off, the captioner failed: {self.error}", file=sys.stderr)
                return
            done = time.perf_counter()
            self._latest = Caption(text, index, captured_at, done, done - last_start)
            self.captions_made += 1

    def stop(self, timeout_s: float = 0.1) -> None:
        """Ask the thread to end; a caption in progress is not waited for (the thread is a daemon)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
