"""The preview window (OpenCV HighGUI) with its keys.

Keys: q / Esc quit, space pause, s screenshot, c captions on/off, o original/stylized
split view, h FPS/latency readout on/off. The pip wheel ``opencv-python-headless`` has no
GUI at all; that is detected up front and named, instead of failing on the first frame.
"""

from __future__ import annotations

import collections
import os
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from stylize_rt.errors import MissingDependencyError
from stylize_rt.imageio import write_image
from stylize_rt.runtime.frames import rgb_to_bgr
from stylize_rt.runtime.overlay import ViewState, compose, readout_lines
from stylize_rt.runtime.sinks import FrameInfo

HEADLESS_HINT = (
    "this OpenCV build has no GUI (opencv-python-headless), so no window can open; for a window: "
    "pip uninstall opencv-python-headless && pip install opencv-python  "
    "(or write to a file with --output PATH, or use --no-display)"
)


def gui_available() -> bool:
    """True when OpenCV was built with a window toolkit (GTK, Qt, Win32, Cocoa)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("NONE", "NO", "")
    return True


def display_available() -> bool:
    """True where a window could be shown (a desktop session; on Linux DISPLAY/WAYLAND_DISPLAY)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def handle_key(key: int, view: ViewState) -> str | None:
    """Apply one key press to ``view``; returns ``"screenshot"`` when one is asked for."""
    if key < 0:
        return None
    key &= 0xFF
    if key in (ord("q"), ord("Q"), 27):
        view.quit = True
    elif key == ord(" "):
        view.paused = not view.paused
    elif key in (ord("c"), ord("C")):
        view.captions = not view.captions
    elif key in (ord("o"), ord("O")):
        view.split = not view.split
    elif key in (ord("h"), ord("H")):
        view.hud = not view.hud
    elif key in (ord("s"), ord("S")):
        return "screenshot"
    else:
        return "other"  # not a window key: the style keys may want it
    return None


class WindowSink:
    """Shows frames in an OpenCV window; shares ``view`` with the pipeline so keys take effect."""

    def __init__(self, title: str = "stylize-rt", view: ViewState | None = None,
                 screenshot_dir: str | os.PathLike[str] = ".", on_key: Callable[[str], bool] | None = None) -> None:
        """``on_key``: keys the window does not use itself go here (the style keys, see
        ``style_controls.apply_style_key``); it returns whether it took the key."""
        if not gui_available():
            raise MissingDependencyError(HEADLESS_HINT)
        if not display_available():
            raise MissingDependencyError("no display to open a window on (DISPLAY is not set); "
                                         "write to a file with --output PATH, or use --no-display")
        self.title = title
        self.view = view or ViewState(hud=True)
        self.screenshot_dir = Path(screenshot_dir)
        self.on_key = on_key
        self.frames_written = 0
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        self._last: np.ndarray | None = None
        self._shown_at: collections.deque = collections.deque(maxlen=30)  # for the FPS readout

    @property
    def quit(self) -> bool:
        """The viewer pressed q / Esc or closed the window: the run ends."""
        return self.view.quit

    def _screenshot(self) -> None:
        if self._last is None:
            return
        path = self.screenshot_dir / time.strftime("stylize-rt-%Y%m%d-%H%M%S.png")
        write_image(path, self._last)
        print(f"stylize-rt: screenshot {path}", file=sys.stderr)

    def _poll(self, wait_ms: int) -> None:
        key = cv2.waitKey(wait_ms)
        action = handle_key(key, self.view)
        if action == "screenshot":
            self._screenshot()
        elif action == "other" and self.on_key is not None:
            self.on_key(chr(key & 0xFF))
        if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:  # closed with the mouse
            self.view.quit = True

    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        now = time.perf_counter()
        self._shown_at.append(now)
        if info is not None and (self.view.hud or self.view.split):
            original = info.original if info.original is not None else frame
            recent = self._shown_at
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            frame = compose(original, frame, ViewState(hud=self.view.hud, split=self.view.split, captions=False),
                            None, readout_lines(info.stats, fps))
        self._last = frame
        cv2.imshow(self.title, rgb_to_bgr(frame))
        self.frames_written += 1
        self._poll(1)
        while self.view.paused and not self.view.quit:  # live sources keep dropping meanwhile
            self._poll(30)

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
