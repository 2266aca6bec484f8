"""Helpers for the runtime tests: frames that carry their index, tiny real ONNX models, video I/O.

A frame's index is drawn as 8 wide black/white stripes (one per bit) so it survives lossy
mp4v compression; with an identity model, reading the output back proves order and count.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

BITS = 8
W, H = 64, 48  # stripe width 8 px, even sides for the codec


def coded_frame(index: int, width: int = W, height: int = H) -> np.ndarray:
    """An RGB frame whose top half encodes ``index`` (0..255) in stripes; bottom half a gradient."""
    frame = np.zeros((height, width, 3), np.uint8)
    stripe = width // BITS
    for bit in range(BITS):
        if index >> bit & 1:
            frame[: height // 2, bit * stripe : (bit + 1) * stripe] = 255
    frame[height // 2 :] = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    return frame


def decode_index(frame: np.ndarray) -> int:
    height, width = frame.shape[:2]
    stripe = width // BITS
    value = 0
    for bit in range(BITS):
        block = frame[2 : height // 2 - 2, bit * stripe + 2 : (bit + 1) * stripe - 2]
        if block.mean() > 127:
            value |= 1 << bit
    return value


def write_video(path: Path, count: int, fps: float = 25.0, width: int = W, height: int = H) -> Path:
    from stylize_rt.runtime.sinks import FrameInfo, VideoFileSink

    sink = VideoFileSink(path, fps)
    for i in range(count):
        sink.write(coded_frame(i, width, height), FrameInfo(i, time.perf_counter()))
    sink.close()
    return path


def read_video(path: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    assert cap.isOpened(), f"cannot open {path}"
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def identity_onnx(path: Path) -> Path:
    """A real ONNX model that returns its uint8 NHWC input (with our IO metadata)."""
    import onnx
    from onnx import TensorProto, helper

    dims = ["batch", "height", "width", 3]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])],
        "identity",
        [helper.make_tensor_value_info("input", TensorProto.UINT8, dims)],
        [helper.make_tensor_value_info("output", TensorProto.UINT8, dims)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "stylize_rt.io_layout", "uint8_nhwc"
    onnx.save(model, str(path))
    return path


class SlowBackend:
    """A real backend (ONNX Runtime) made deliberately slow: every call sleeps ``delay_s`` first."""

    def __init__(self, inner, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.name = "slow-" + inner.name
        self.inputs, self.outputs, self.metadata = inner.inputs, inner.outputs, inner.metadata
        self.calls = 0

    def infer(self, feeds):
        time.sleep(self.delay_s)
        self.calls += 1
        return self.inner.infer(feeds)

    def close(self) -> None:
        self.inner.close()


def test_coded_frames_survive_mp4(tmp_path):
    path = write_video(tmp_path / "c.mp4", 20)
    frames = read_video(path)
    assert [decode_index(f) for f in frames] == list(range(20))
