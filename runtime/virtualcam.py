"""``--output virtualcam``: stylized frames as a camera that video-call apps can pick.

Through pyvirtualcam (the ``[virtualcam]`` extra): v4l2loopback on Linux, the OBS virtual
camera on Windows and macOS. Where no virtual-camera device exists the run stops before any
work with one line saying what to install and how (exit 2).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from stylize_rt.errors import MissingDependencyError, first_line
from stylize_rt.runtime.frames import resize

LINUX_SETUP = ("sudo apt-get install v4l2loopback-dkms && sudo modprobe v4l2loopback devices=1 exclusive_caps=1 "
               "card_label=stylize-rt")
OTHER_SETUP = "install OBS Studio and start its virtual camera once"
SYSFS_DEVICES = Path("/sys/devices/virtual/video4linux")


def setup_hint() -> str:
    return LINUX_SETUP if sys.platform.startswith("linux") else OTHER_SETUP


def loopback_devices(sysfs: Path = SYSFS_DEVICES) -> list[str]:
    """The v4l2loopback devices the kernel has (Linux); they live under the virtual video4linux class."""
    return sorted(f"/dev/{p.name}" for p in sysfs.glob("video*")) if sysfs.is_dir() else []


def _import_pyvirtualcam():
    try:
        import pyvirtualcam  # optional: the [virtualcam] extra
    except ImportError:
        raise MissingDependencyError(
            "--output virtualcam needs pyvirtualcam: pip install 'stylize-rt[virtualcam]'; then " + setup_hint()
        ) from None
    return pyvirtualcam


class VirtualCameraSink:
    """Frames to a virtual camera; the device opens at the first frame (its size is the frames')."""

    def __init__(self, fps: float | None = None, device: str | None = None) -> None:
        self._pyvirtualcam = _import_pyvirtualcam()
        if sys.platform.startswith("linux") and device is None and not loopback_devices():
            raise MissingDependencyError(
                "--output virtualcam: no virtual camera device (the v4l2loopback kernel module is not loaded); "
                "install and load it: " + LINUX_SETUP
            )
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.device = device
        self.size: tuple[int, int] | None = None
        self.frames_written = 0
        self._camera = None

    def _open(self, width: int, height: int) -> None:
        pyvirtualcam = self._pyvirtualcam
        try:
            self._camera = pyvirtualcam.Camera(width, height, self.fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                               device=self.device)
        except RuntimeError as exc:
            raise MissingDependencyError(f"--output virtualcam: {first_line(exc)}; {setup_hint()}") from None
        self.size = (width, height)
        print(f"stylize-rt: virtual camera {self._camera.device} at {width}x{height} {self.fps:g} fps",
              file=sys.stderr)

    def write(self, frame: np.ndarray, info=None) -> None:
        if self._camera is None:
            self._open(frame.shape[1], frame.shape[0])
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = resize(frame, *self.size)
        self._camera.send(np.ascontiguousarray(frame))
        self.frames_written += 1

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()


__all__ = ["VirtualCameraSink", "loopback_devices", "setup_hint"]
