"""``Stylizer``: frames in, stylized frames out, whatever the model's IO convention.

Frames are numpy HWC uint8 RGB (or NHWC batches) of any size. A model's convention is
its tensor layout (NHWC or NCHW), element type and value range (0..255, 0..1 or -1..1):

1. our exporter writes it into the ONNX metadata (``stylize_rt.io_layout``), so our
   models need no guessing;
2. otherwise the layout comes from the graph (where the 3-channel axis is), uint8 input
   means 0..255, and a float model's range is found by one probe run: a model that was
   fed 0..1 and answers with values above 2 works in 0..255 (e.g. the ONNX model zoo's
   fast-neural-style), one that answers below -0.1 works in -1..1 (tanh generators);
3. ``layout=`` / ``input_range=`` (``--layout`` / ``--input-range``) override both.

Models with a fixed input size (e.g. 224x224) are fed a resized frame and their output
is resized back to the frame's size; a fixed batch size is served in chunks.

Style controls (``runtime.style_controls``: style or blend, strength, colour preservation)
go into a multi-style graph as inputs; on a single-style model strength and colour
preservation are applied to its output on the host, with the same arithmetic.

``grid_offsets`` (one (top, left) pad per frame, from ``runtime.grid_anchor.GridAnchor``) pad
each frame at its top-left before the model and crop the result back, so a moving camera's
scene keeps its place on the generator's sampling grid (``grid``, from the graph's
``stylize_rt.grid_px`` metadata).

``texture_scale`` (``--texture-scale``) runs the model on each frame shrunk by that factor
(``model_size``) and puts its change back on the full frame (``runtime.detail_transfer``): a
larger texture, a sharp full-size frame, and about ``texture_scale**2`` less model work. Grid
offsets still count the full frame's pixels, on the grid as the full frame sees it
(``anchor_grid``: the model's grid times the texture scale), so the anchor follows the camera to
the full frame's pixel, finer than the shrunk frame's; the padded frame is shrunk as a whole.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from stylize_rt import contract
from stylize_rt.contract import AXIS_ORDERS, INPUT_RANGES, TensorSpec
from stylize_rt.contract import IO_LAYOUTS as LAYOUTS
from stylize_rt.errors import BadInputError
from stylize_rt.runtime.backends.base import Backend, image_input_shape
from stylize_rt.runtime.detail_transfer import upsample_change
from stylize_rt.runtime.frames import resize, stack_frames
from stylize_rt.runtime.grid_anchor import pad_to_grid
from stylize_rt.runtime.style_controls import LUMA_WEIGHTS, StyleControls, apply_controls
from stylize_rt.sizes import MIN_SIDE, check_texture_scale, grid_padded_size, texture_scaled_size


@dataclass(frozen=True)
class IOConvention:
    """How a model wants its frames: axis order, element type, value range, fixed sizes."""

    order: str  # "nhwc" or "nchw"
    dtype: np.dtype
    value_range: str  # a key of INPUT_RANGES
    fixed_hw: tuple[int, int] | None  # (height, width) when the graph fixes them
    fixed_batch: int | None
    source: str  # "metadata", "graph", "probe" or "flags": where the convention came from
    channels: int = 3  # 3: RGB; 1: a grayscale model, fed the frame's luma (its output is replicated to RGB)

    @property
    def layout(self) -> str:
        return f"{self.dtype.name}_{self.order}"


COLOR_CHANNELS = (1, 3)  # grayscale or RGB


def _dims(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def _axis_order(spec: TensorSpec, override: str | None) -> str:
    shape = spec.shape
    if len(shape) != 4:
        raise BadInputError(f"not an image model: its input has shape {shape}, expected 4 dimensions")
    first, last = shape[1] in COLOR_CHANNELS, shape[3] in COLOR_CHANNELS
    by_graph = "nchw" if first and not last else "nhwc" if last and not first else None
    if override:
        order = override.split("_")[-1]
        if order not in AXIS_ORDERS:
            raise BadInputError(f"--layout must be one of nhwc, nchw (got {override!r})")
        if by_graph is not None and order != by_graph:
            raise BadInputError(f"--layout {order} does not fit the model: its input {spec.name!r} is "
                                f"{_dims(shape)}, {by_graph.upper()}")
        return order
    if by_graph is not None:
        return by_graph
    # Both or neither axis holds colour: uint8 image models are NHWC by habit, float ones NCHW.
    return "nhwc" if spec.dtype == np.uint8 else "nchw"


def _channels(spec: TensorSpec, order: str) -> int:
    channels = spec.shape[3] if order == "nhwc" else spec.shape[1]
    if channels is None:
        return 3
    if channels not in COLOR_CHANNELS:
        raise BadInputError(f"the model's input {spec.name!r} ({_dims(spec.shape)}) has {channels} channels; "
                            "stylize-rt runs image models with 3 (RGB) or 1 (grayscale) channels")
    return channels


def luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8 RGB frames (what a grayscale model is fed)."""
    return np.rint(frames.astype(np.float32) @ LUMA_WEIGHTS).astype(np.uint8)


def _fixed_sizes(spec: TensorSpec, order: str) -> tuple[tuple[int, int] | None, int | None]:
    shape = spec.shape
    h, w = (shape[1], shape[2]) if order == "nhwc" else (shape[2], shape[3])
    fixed_hw = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return fixed_hw, batch


def image_input(backend: Backend) -> TensorSpec:
    """The frames' input of an image-to-image model; the others may only be the style controls."""
    controls = [s for s in backend.inputs if s.name in contract.CONTROL_INPUTS]
    images = [s for s in backend.inputs if s not in controls]
    if len(images) != 1 or len(backend.outputs) < 1:
        names = ", ".join(s.name for s in backend.inputs)
        raise BadInputError(f"not an image-to-image model: inputs {names or 'none'}, {len(backend.outputs)} outputs")
    return images[0]


def style_names(backend: Backend, spec: TensorSpec | None) -> list[str]:
    """The model's styles: the metadata's list, else its one style's name (or numbers)."""
    count = spec.shape[-1] if spec is not None and isinstance(spec.shape[-1], int) else None
    try:
        names = json.loads(backend.metadata.get(contract.STYLES, "null"))
    except ValueError:
        names = None
    if isinstance(names, list) and all(isinstance(n, str) for n in names) and (count in (None, len(names))):
        return names
    if spec is None:
        return [backend.metadata.get(contract.STYLE) or "style"]
    return [str(i) for i in range(count or 1)]


def _probe_pattern(height: int, width: int) -> np.ndarray:
    """A natural-ish test frame (gradients, a bright disc, texture) for the range probe."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(0)
    img = np.stack([xx / width, yy / height, 0.5 + 0.4 * np.sin(xx / 5.0) * np.cos(yy / 7.0)], axis=-1)
    img[(yy - height / 2) ** 2 + (xx - width / 3) ** 2 < (min(height, width) / 5) ** 2] = (0.95, 0.9, 0.2)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


class Stylizer:
    """Applies one loaded image-to-image model to frames of any size.

    ``layout`` ("nhwc"/"nchw", or our "uint8_nhwc"/"float32_nchw") and ``input_range``
    ("0-255", "0-1", "-1-1") override what the model's metadata says or what is inferred.
    """

    def __init__(self, backend: Backend, layout: str | None = None, input_range: str | None = None,
                 controls: StyleControls | None = None, texture_scale: float = 1.0) -> None:
        self._input = image_input(backend)
        if input_range is not None and input_range not in INPUT_RANGES:
            raise BadInputError(f"--input-range must be one of {', '.join(INPUT_RANGES)} (got {input_range!r})")
        self.backend = backend
        self._output = backend.outputs[0].name
        self._controls_in = {s.name: s for s in backend.inputs if s.name in contract.CONTROL_INPUTS}
        if (contract.INPUT_STRENGTH in self._controls_in) != (contract.INPUT_PRESERVE_COLOR in self._controls_in):
            raise BadInputError(f"the graph takes {', '.join(self._controls_in)}: a generator graph takes strength "
                                "and preserve_color together, or neither")
        self.styles = style_names(backend, self._controls_in.get(contract.INPUT_STYLE))
        self.controls = controls or StyleControls()
        self.convention = self._convention(layout, input_range)
        self.layout = self.convention.layout
        self.grid = self._grid()
        self.texture_scale = texture_scale

    @property
    def texture_scale(self) -> float:
        """How many times larger the style's texture is drawn (1: as trained); see the module docstring."""
        return self._texture_scale

    @texture_scale.setter
    def texture_scale(self, texture_scale: float) -> None:
        texture_scale = check_texture_scale(texture_scale)
        if texture_scale != 1.0 and self.convention.fixed_hw:
            h, w = self.convention.fixed_hw
            raise BadInputError(f"--texture-scale needs a model that takes any frame size; this one takes {w}x{h}")
        self._texture_scale = texture_scale

    def model_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the frame the model sees for a ``width`` x ``height`` frame (the
        texture scale shrinks it; a model of fixed size resizes later, in ``stylize_batch``)."""
        if self._texture_scale == 1.0:
            return width, height
        return texture_scaled_size(width, height, self._texture_scale)

    @property
    def anchor_grid(self) -> int | None:
        """The grid a ``GridAnchor`` keeps on the frames given to ``stylize_batch``: the model's grid in
        the full frame's pixels (times the texture scale, rounded; exact where that is whole)."""
        if self.grid is None:
            return None
        return max(self.grid, round(self.grid * self._texture_scale))

    def anchored_model_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the model sees for an anchored ``width`` x ``height`` frame: padded for the
        anchor, then shrunk by the texture scale."""
        return self.model_size(*grid_padded_size(width, height, self.anchor_grid or 1))

    def grid_fits(self, width: int, height: int) -> bool:
        """Whether the backend takes ``width`` x ``height`` frames (at their model size) padded for the grid
        anchor: an engine's optimization profile (TensorRT, ONNX Runtime's TensorRT EP) may end at the
        frame size itself."""
        if self.grid is None:
            return False
        profile = getattr(self.backend, "profile", None) or getattr(self.backend, "trt_profile", None)
        if profile is None:
            return True
        wp, hp = self.anchored_model_size(width, height)
        shape = image_input_shape(self._input, hp, wp)
        try:
            return shape is not None and profile[self._input.name].contains(shape)
        except KeyError:
            return True  # a static input has no profile entry: nothing to fit

    def _grid(self) -> int | None:
        """The generator's sampling grid in px, where the graph says it and takes any size."""
        return None if self.convention.fixed_hw else contract.grid_px(self.backend.metadata)

    @property
    def controls(self) -> StyleControls:
        """What the next frame is drawn with; set it between any two frames (no stall, no rebuild)."""
        return self._controls

    @controls.setter
    def controls(self, controls: StyleControls) -> None:
        controls.style_vector(len(self.styles))  # checks the weights fit this model
        self._controls = controls

    @property
    def multi_style(self) -> bool:
        return contract.INPUT_STYLE in self._controls_in

    # -- convention -------------------------------------------------------------------
    def _convention(self, layout: str | None, input_range: str | None) -> IOConvention:
        ours = self.backend.metadata.get(contract.IO_LAYOUT)
        dtype = np.dtype(self._input.dtype)
        if dtype == np.dtype(object) or dtype.kind not in "uif":
            raise BadInputError(f"unsupported model input type {dtype} for {self._input.name!r}")
        integer = dtype.kind in "iu"  # integer pixels can only carry 0..255 levels
        if ours in LAYOUTS and layout is None:
            order = ours.split("_")[1]
            source = "metadata"
            value_range = input_range or self.backend.metadata.get(contract.INPUT_RANGE, contract.DEFAULT_RANGE[ours])
        else:
            order = _axis_order(self._input, layout)
            source = "flags" if layout or input_range else "graph"
            value_range = input_range or ("0-255" if integer else None)
        if integer and value_range != "0-255":
            raise BadInputError(f"the model takes {dtype} pixels: only --input-range 0-255 fits integer inputs")
        fixed_hw, fixed_batch = _fixed_sizes(self._input, order) if len(self._input.shape) == 4 else (None, None)
        channels = _channels(self._input, order) if len(self._input.shape) == 4 else 3
        convention = IOConvention(order, dtype, value_range or "0-1", fixed_hw, fixed_batch, source, channels)
        if value_range is None:  # a float model that says nothing: one probe run decides
            convention = dataclasses.replace(convention, value_range=self._probe_range(convention), source="probe")
        return convention

    def _probe_range(self, convention: IOConvention) -> str:
        h, w = convention.fixed_hw or (64, 64)
        frame = _probe_pattern(h, w)[None]
        feeds = {self._input.name: self._to_model(frame, convention), **self._control_feeds([StyleControls()])}
        y = self.backend.infer(feeds)[self._output]
        y = np.asarray(y, dtype=np.float32)
        if not np.isfinite(y).all():
            raise BadInputError("the model's output is not finite on a test frame; set --input-range")
        if y.min() < -0.1:
            return "-1-1"
        if np.percentile(y, 99) > 2.0:
            return "0-255"
        return "0-1"

    # -- conversion -------------------------------------------------------------------
    @staticmethod
    def _to_model(frames: np.ndarray, convention: IOConvention) -> np.ndarray:
        if convention.channels == 1:
            frames = luma(frames)[..., None]
        if convention.dtype.kind in "iu":
            x = frames.astype(convention.dtype, copy=False)
        else:
            lo, hi = INPUT_RANGES[convention.value_range]
            x = frames.astype(np.float32) * np.float32((hi - lo) / 255.0)
            if lo:
                x += np.float32(lo)
            x = x.astype(convention.dtype, copy=False)
        if convention.order == "nchw":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def _from_model(self, y: np.ndarray) -> np.ndarray:
        convention = self.convention
        if y.ndim != 4:
            raise BadInputError(f"not an image model: its output has shape {y.shape}")
        if convention.order == "nchw" or (y.shape[1] in COLOR_CHANNELS and y.shape[3] not in COLOR_CHANNELS):
            y = y.transpose(0, 2, 3, 1)
        if y.shape[3] not in COLOR_CHANNELS:
            raise BadInputError(f"the model's output has {y.shape[3]} channels, expected 3 (RGB) or 1 (grayscale)")
        if y.shape[3] == 1:
            y = np.repeat(y, 3, axis=3)
        if y.dtype == np.uint8:
            return np.ascontiguousarray(y)
        if y.dtype.kind in "iu":
            return np.clip(y, 0, 255).astype(np.uint8)
        lo, hi = INPUT_RANGES[convention.value_range]
        y = y.astype(np.float32, copy=False)
        if lo:
            y = y - np.float32(lo)
        y = y * np.float32(255.0 / (hi - lo))
        return np.rint(np.clip(y, 0.0, 255.0)).astype(np.uint8)

    # -- public API -------------------------------------------------------------------
    def __call__(self, frame: np.ndarray, controls: StyleControls | None = None) -> np.ndarray:
        """One HWC uint8 RGB frame -> one HWC uint8 RGB frame of the same size."""
        if frame.ndim != 3:
            raise BadInputError(f"expected one uint8 frame of shape (H, W, 3), got {frame.dtype} {tuple(frame.shape)}")
        return self.stylize_batch(frame[None], controls)[0]

    def stylize_batch(self, frames: np.ndarray,
                      controls: StyleControls | Sequence[StyleControls] | None = None,
                      grid_offsets: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
        """NHWC uint8 RGB -> NHWC uint8 RGB, same size as given; ``controls`` for all frames or one
        per frame (default: ``self.controls``); ``grid_offsets``: see the module docstring."""
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise BadInputError(
                f"expected uint8 frames of shape (N, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
            )
        n, h, w = frames.shape[:3]
        if n == 0 or h == 0 or w == 0:
            raise BadInputError(f"empty frames: shape {tuple(frames.shape)}")
        controls = self._per_frame(controls, n)
        if grid_offsets is not None:
            return self._anchored(frames, controls, list(grid_offsets))
        return self._texture_scaled(frames, controls)

    def _texture_scaled(self, frames: np.ndarray, controls: list[StyleControls]) -> np.ndarray:
        """The model on the frames shrunk by the texture scale, its change put back on them."""
        h, w = frames.shape[1:3]
        model_w, model_h = self.model_size(w, h)
        if (model_w, model_h) == (w, h):
            return self._at_model_size(frames, controls)
        small = np.stack([resize(f, model_w, model_h) for f in frames])
        out = self._at_model_size(small, controls)
        return np.stack([upsample_change(f, s, o, luma_only=c.preserve_color)
                         for f, s, o, c in zip(frames, small, out, controls)])

    def _at_model_size(self, frames: np.ndarray, controls: list[StyleControls]) -> np.ndarray:
        """The model on frames already at the size it is to see (resized to a fixed size, padded up to
        the smallest side, in fixed-size batches where the graph says so)."""
        n, h, w = frames.shape[:3]
        original = frames
        fixed_hw, fixed_batch = self.convention.fixed_hw, self.convention.fixed_batch
        if fixed_hw and fixed_hw != (h, w):
            frames = np.stack([resize(f, fixed_hw[1], fixed_hw[0]) for f in frames])
        elif not fixed_hw and min(h, w) < MIN_SIDE:
            # Below the generator's smallest side its border padding cannot work: edge-pad up to it
            # and crop the result back, so a 7x5 image comes back 7x5.
            pad = ((0, 0), (0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)), (0, 0))
            return self._at_model_size(np.pad(frames, pad, mode="edge"), controls)[:, :h, :w]
        if fixed_batch and fixed_batch != n:
            out = np.concatenate([self._run_fixed_batch(frames[i : i + fixed_batch], controls[i : i + fixed_batch],
                                                        fixed_batch) for i in range(0, n, fixed_batch)])
        else:
            out = self._run(frames, controls)
        if out.shape[1:3] != (h, w):
            out = np.stack([resize(f, w, h) for f in out])
        return self._host_controls(original, out, controls)

    def _anchored(self, frames: np.ndarray, controls: list[StyleControls],
                  offsets: list[tuple[int, int]]) -> np.ndarray:
        if self.grid is None:
            raise BadInputError("grid offsets need a generator graph of any size with stylize_rt.grid_px metadata")
        if len(offsets) != len(frames):
            raise BadInputError(f"{len(offsets)} grid offsets for {len(frames)} frames")
        h, w = frames.shape[1:3]
        try:
            padded = stack_frames([pad_to_grid(f, o, self.anchor_grid) for f, o in zip(frames, offsets)])
        except ValueError as exc:
            raise BadInputError(str(exc)) from None
        out = self._texture_scaled(padded, controls)
        return np.stack([o[top : top + h, left : left + w] for o, (top, left) in zip(out, offsets)])

    def _per_frame(self, controls, n: int) -> list[StyleControls]:
        if controls is None:
            controls = self.controls
        if isinstance(controls, StyleControls):
            return [controls] * n
        controls = list(controls)
        if len(controls) != n:
            raise BadInputError(f"{len(controls)} style controls for {n} frames")
        return controls

    def _control_feeds(self, controls: list[StyleControls]) -> dict[str, np.ndarray]:
        """The multi-style graph's control inputs for ``controls`` (one per frame)."""
        feeds = {}
        if contract.INPUT_STYLE in self._controls_in:
            feeds[contract.INPUT_STYLE] = np.stack([c.style_vector(len(self.styles)) for c in controls])
        if contract.INPUT_STRENGTH in self._controls_in:
            feeds[contract.INPUT_STRENGTH] = np.array([c.strength for c in controls], np.float32)
        if contract.INPUT_PRESERVE_COLOR in self._controls_in:
            feeds[contract.INPUT_PRESERVE_COLOR] = np.array([float(c.preserve_color) for c in controls], np.float32)
        return feeds

    def _host_controls(self, inputs: np.ndarray, outputs: np.ndarray, controls: list[StyleControls]) -> np.ndarray:
        """Strength and colour preservation for a graph that does not take them (the same arithmetic)."""
        if contract.INPUT_STRENGTH in self._controls_in:
            return outputs  # the graph did both
        return apply_controls(inputs, outputs, [c.strength for c in controls], [c.preserve_color for c in controls])

    def _run_fixed_batch(self, chunk: np.ndarray, controls: list[StyleControls], batch: int) -> np.ndarray:
        count = len(chunk)
        if count < batch:  # pad the last chunk by repeating its last frame
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - count, axis=0)])
            controls = controls + [controls[-1]] * (batch - count)
        return self._run(chunk, controls)[:count]

    def to_model(self, frames: np.ndarray) -> np.ndarray:
        """NHWC uint8 RGB frames in this model's input convention (what ``infer`` takes); frames of
        the model's fixed size, if it has one."""
        return self._to_model(np.ascontiguousarray(frames), self.convention)

    def _run(self, frames: np.ndarray, controls: list[StyleControls]) -> np.ndarray:
        feeds = {self._input.name: self.to_model(frames), **self._control_feeds(controls)}
        y = self.backend.infer(feeds)[self._output]
        return self._from_model(np.asarray(y))

    def model_feeds(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Everything ``backend.infer`` takes for ``frames`` with the current controls (benchmarks
        prepare this once, outside their timed loop)."""
        return {self._input.name: self.to_model(frames),
                **self._control_feeds([self.controls] * len(frames))}

    def stylize_device(self, frames, out=None, stream=None):
        """Device NHWC uint8 RGB frames -> device frames, zero-copy, enqueued on ``stream``.

        ``frames``/``out`` are anything with ``__cuda_array_interface__`` (torch, cupy, numba,
        pycuda). Only a uint8 NHWC model takes frames as they are, so that is the one layout
        served here; other layouts would need conversion kernels on the device. Nothing is
        synchronized: the caller orders later work on the same stream.
        """
        infer_device = getattr(self.backend, "infer_device", None)
        if infer_device is None:
            raise BadInputError(
                f"the {self.backend.name} backend takes host numpy frames; device frames need a GPU backend "
                "(tensorrt, or onnxruntime with the CUDA/TensorRT provider)"
            )
        if (self.layout != "uint8_nhwc" or self.convention.fixed_hw or self.convention.value_range != "0-255"
                or self.convention.channels != 3):
            raise BadInputError(
                f"device frames need a uint8 NHWC 0-255 model of any size; this one is {self.describe()} "
                "(export with --layout uint8_nhwc)"
            )
        if self._controls_in:
            raise BadInputError("device frames run single-style graphs; this graph takes style controls")
        if self._texture_scale != 1.0:
            raise BadInputError("device frames run at the model's size; --texture-scale works on host frames")
        outputs = None if out is None else {self._output: out}
        return infer_device({self._input.name: frames}, outputs, stream)[self._output]

    def warm_up(self, width: int, height: int, batch: int = 1, runs: int = 2) -> None:
        """Run the model on a real-looking frame so the first live frame pays no setup cost."""
        frame = _probe_pattern(height, width)
        frames = np.repeat(frame[None], batch, axis=0)
        for _ in range(runs):
            self.stylize_batch(frames)

    def describe(self) -> str:
        c = self.convention
        fixed = f", fixed {c.fixed_hw[1]}x{c.fixed_hw[0]}" if c.fixed_hw else ""
        fixed += ", grayscale" if c.channels == 1 else ""
        return f"{c.dtype.name} {c.order.upper()} in {c.value_range} (from {c.source}{fixed})"

    def close(self) -> None:
        self.backend.close()
