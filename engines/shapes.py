"""Optimization-profile shapes: presets (720p, 1080p...), ``--min/--opt/--max`` parsing, layouts.

A TensorRT engine built from an ONNX graph with dynamic height/width only runs shapes inside
its optimization profile, and its kernels are tuned for the profile's ``opt`` shape. Users
think in frame sizes ("1080p"), the engine thinks in tensor shapes ("1x1080x1920x3" for the
uint8 NHWC generator, "1x3x1080x1920" for the float32 NCHW one): this module translates.
Everything here is pure Python, so it is tested without TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from stylize_rt.errors import BadInputError, first_line
from stylize_rt.sizes import PRESETS, grid_padded_size, parse_size

# Without --shapes/--min/--opt/--max: what users feed the CPU path too, from thumbnails to
# 1080p in either orientation (a 512x512 photo, a portrait 1080x1920 phone frame), kernels
# tuned for 720p. A wide range costs the engine little (activation memory is sized for max);
# larger frames (1440p, 4K) need an engine built with --max, or run on the fallback backend.
DEFAULT_MIN, DEFAULT_OPT, DEFAULT_MAX = "16x16", "720p", "1920x1920"

Shape = tuple[int, ...]


@dataclass(frozen=True)
class InputInfo:
    """One model input as the ONNX graph declares it; ``None`` marks a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    @property
    def layout(self) -> str:
        """``nhwc`` or ``nchw``, read from where the 3 colour channels sit."""
        if len(self.shape) != 4:
            raise BadInputError(f"input {self.name!r} has rank {len(self.shape)}; expected a 4-D image batch")
        if self.shape[3] == 3:
            return "nhwc"
        if self.shape[1] == 3:
            return "nchw"
        raise BadInputError(
            f"input {self.name!r} of shape {_fmt_dims(self.shape)} has no channel dimension of 3 (NHWC or NCHW)"
        )

    def frame_shape(self, width: int, height: int, batch: int = 1) -> Shape:
        """The tensor shape of ``batch`` frames of ``width`` x ``height`` for this input."""
        wanted = (batch, height, width, 3) if self.layout == "nhwc" else (batch, 3, height, width)
        for axis, (fixed, want) in enumerate(zip(self.shape, wanted)):
            if fixed is not None and fixed != want:
                raise BadInputError(
                    f"input {self.name!r} has a fixed dimension {axis} of {fixed}; shape {_fmt(wanted)} "
                    "does not fit (export the model with dynamic height/width)"
                )
        return wanted


@dataclass(frozen=True)
class InputProfile:
    """min/opt/max shapes of one input inside one optimization profile."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        if not (len(self.min) == len(self.opt) == len(self.max)):
            raise BadInputError(f"profile for {self.name!r}: min/opt/max have different ranks")
        for lo, mid, hi in zip(self.min, self.opt, self.max):
            if lo <= 0 or not lo <= mid <= hi:
                raise BadInputError(
                    f"profile for {self.name!r}: need 0 < min <= opt <= max in every dimension, got "
                    f"min {_fmt(self.min)}, opt {_fmt(self.opt)}, max {_fmt(self.max)}"
                )

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= d <= hi for lo, d, hi in zip(self.min, shape, self.max)
        )

    def to_dict(self) -> dict:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "InputProfile":
        return cls(str(data["name"]), _ints(data["min"]), _ints(data["opt"]), _ints(data["max"]))


@dataclass(frozen=True)
class Profile:
    """One TensorRT optimization profile: a shape range per dynamic input."""

    inputs: tuple[InputProfile, ...] = field(default_factory=tuple)

    def __getitem__(self, name: str) -> InputProfile:
        for item in self.inputs:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"inputs": [i.to_dict() for i in self.inputs]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Profile":
        return cls(tuple(InputProfile.from_dict(i) for i in data["inputs"]))

    def describe(self) -> str:
        return "; ".join(f"{i.name}: {_fmt(i.min)} .. {_fmt(i.opt)} .. {_fmt(i.max)}" for i in self.inputs)


def parse_frame_size(text: str) -> tuple[int, int]:
    """``720p`` or ``1280x720`` -> (width, height), any side >= 1 (a profile may go below a frame's 16 px)."""
    return parse_size(text, "frame size", minimum=1)


def parse_batch(text: str | int) -> tuple[int, int, int]:
    """``4`` -> (4, 4, 4); ``1:4:8`` -> (1, 4, 8); ``1:8`` -> (1, 8, 8) (opt = max)."""
    parts = str(text).split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise BadInputError(f"bad batch {text!r}: use N or MIN:OPT:MAX, e.g. 1:4:8") from None
    if len(values) == 1:
        values = values * 3
    elif len(values) == 2:
        values = [values[0], values[1], values[1]]
    if len(values) != 3 or not 0 < values[0] <= values[1] <= values[2]:
        raise BadInputError(f"bad batch {text!r}: need 0 < MIN <= OPT <= MAX")
    return values[0], values[1], values[2]


def parse_shape_arg(text: str, input_names: Sequence[str]) -> dict[str, Shape | tuple[int, int]]:
    """Parse one ``--min/--opt/--max`` value.

    Accepts trtexec's ``name:1x720x1280x3[,name2:...]``, a bare ``1x720x1280x3`` (models with one
    input) or a frame size (``720p``, ``1280x720``), which is returned as (width, height) for
    :func:`resolve_profile` to lay out per input.
    """
    out: dict[str, Shape | tuple[int, int]] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, dims = item.rpartition(":")
        if not sep:
            if len(input_names) != 1:
                raise BadInputError(
                    f"{item!r}: the model has inputs {list(input_names)}; write NAME:SHAPE for each"
                )
            name = input_names[0]
        elif name not in input_names:
            raise BadInputError(f"{item!r}: the model has no input {name!r} (inputs: {list(input_names)})")
        if dims.lower() in PRESETS or dims.lower().count("x") == 1:
            out[name] = parse_frame_size(dims)
        else:
            try:
                shape = tuple(int(d) for d in dims.lower().split("x"))
            except ValueError:
                raise BadInputError(f"bad shape {item!r}: use e.g. 1x720x1280x3 or 720p") from None
            if any(d <= 0 for d in shape):
                raise BadInputError(f"bad shape {item!r}: every dimension must be positive")
            out[name] = shape
    if not out:
        raise BadInputError(f"empty shape argument {text!r}")
    return out


def resolve_profile(
    inputs: Sequence[InputInfo],
    shapes: Iterable[str] | None = None,
    min_shape: str | None = None,
    opt_shape: str | None = None,
    max_shape: str | None = None,
    batch: str | int = 1,
    grid: int | None = None,
) -> Profile:
    """Turn presets and/or explicit shapes into one optimization profile covering every input.

    ``shapes`` (e.g. ``["720p"]`` or ``["480p", "1080p"]``): min = the smallest frame, max = the
    largest, opt = the largest (the size a video pipeline built up to it usually runs at). One
    preset gives a fixed-size profile, the fastest engine. Explicit ``--min/--opt/--max`` override
    the matching end. With nothing given: 16x16 .. 720p .. 1920x1920 (both orientations of 1080p).
    Inputs that are not image batches (a multi-style graph's controls) get the batch range in their
    dynamic dimensions and keep their fixed ones (min = opt = max for n_styles).

    ``grid`` (a generator's ``stylize_rt.grid_px``): the runtime's grid anchor pads video frames to
    ``grid_padded_size``, so the frame sizes the profile is made of (presets, defaults; never an
    explicit ``--opt``/``--max``) reach up to that: ``--shapes 720p`` takes 1280x720 and 1288x728.
    """
    names = [i.name for i in inputs]
    sizes = [parse_frame_size(s) for s in (shapes or []) if str(s).strip()]
    if sizes:
        by_area = sorted(sizes, key=lambda wh: (wh[0] * wh[1], wh))
        lo = (min(w for w, _ in sizes), min(h for _, h in sizes))
        hi = (max(w for w, _ in sizes), max(h for _, h in sizes))
        defaults = {"min": lo, "opt": by_area[-1], "max": hi}
    else:
        defaults = {k: parse_frame_size(v) for k, v in (("min", DEFAULT_MIN), ("opt", DEFAULT_OPT), ("max", DEFAULT_MAX))}
    if grid:
        defaults["max"] = grid_padded_size(*defaults["max"], grid)
        if sizes:  # a video pipeline built up to this size runs it anchored
            defaults["opt"] = grid_padded_size(*defaults["opt"], grid)
    explicit = {
        "min": parse_shape_arg(min_shape, names) if min_shape else {},
        "opt": parse_shape_arg(opt_shape, names) if opt_shape else {},
        "max": parse_shape_arg(max_shape, names) if max_shape else {},
    }
    batches = dict(zip(("min", "opt", "max"), parse_batch(batch)))
    profiles = []
    for info in inputs:
        if all(d is not None for d in info.shape):
            continue  # a static input needs no profile entry
        ends = {}
        for end in ("min", "opt", "max"):
            value = explicit[end].get(info.name, defaults[end])
            if info.name not in explicit[end] and len(info.shape) != 4:
                # a control input (a multi-style graph's style [N, n_styles], strength [N], preserve_color
                # [N]): the batch end of the profile in its dynamic dims, its fixed dims as they are
                value = tuple(batches[end] if d is None else d for d in info.shape)
            elif len(value) == 2 and len(info.shape) != 2:
                value = info.frame_shape(value[0], value[1], batches[end])
            elif len(value) != len(info.shape):
                raise BadInputError(
                    f"--{end} shape {_fmt(value)} for {info.name!r} has rank {len(value)}; "
                    f"the input is {_fmt_dims(info.shape)}"
                )
            for axis, (fixed, want) in enumerate(zip(info.shape, value)):
                if fixed is not None and fixed != want:
                    raise BadInputError(
                        f"--{end} shape {_fmt(value)} for {info.name!r}: dimension {axis} is fixed at {fixed}"
                    )
            ends[end] = tuple(value)
        _fit_defaults(ends, {end for end in ends if info.name in explicit[end]})
        profiles.append(InputProfile(info.name, ends["min"], ends["opt"], ends["max"]))
    return Profile(tuple(profiles))


def _fit_defaults(ends: dict[str, Shape], given: set[str]) -> None:
    """Stretch the ends the user did not give around the ones they did (``--min 1080p`` alone works).

    Explicit values are never changed: contradictory explicit ones still fail validation.
    """
    lo, opt, hi = ends["min"], ends["opt"], ends["max"]
    if "min" not in given:
        lo = tuple(min(a, b, c) for a, b, c in zip(lo, opt if "opt" in given else lo, hi if "max" in given else lo))
    if "max" not in given:
        hi = tuple(max(a, b, c) for a, b, c in zip(hi, opt if "opt" in given else hi, lo))
    if "opt" not in given:
        opt = tuple(min(max(o, a), c) for a, o, c in zip(lo, opt, hi))
    ends.update(min=lo, opt=opt, max=hi)


def check_shape(profile: Profile, name: str, shape: Sequence[int]) -> None:
    """Raise a one-line error when ``shape`` is outside the engine's profile for ``name``."""
    try:
        item = profile[name]
    except KeyError:
        return  # static input: the engine checks the exact shape itself
    if not item.contains(shape):
        raise BadInputError(
            f"input {name!r} shape {_fmt(shape)} is outside the engine's profile "
            f"(min {_fmt(item.min)}, max {_fmt(item.max)}): rebuild with e.g. "
            f"stylize-rt build-engine ... --max {_fmt(tuple(max(a, b) for a, b in zip(shape, item.max)))}"
        )


def _ints(values: Iterable) -> Shape:
    return tuple(int(v) for v in values)


def _fmt(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def _fmt_dims(shape: Sequence[int | None]) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


__all__ = [
    "InputInfo",
    "InputProfile",
    "Profile",
    "parse_frame_size",
    "parse_batch",
    "parse_shape_arg",
    "resolve_profile",
    "check_shape",
]


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an engine build needs to know about an ONNX file before TensorRT parses it."""

    inputs: tuple[InputInfo, ...]
    outputs: tuple[InputInfo, ...]
    metadata: dict[str, str]


_ONNX_ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 16: "bfloat16"}
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
              "tensor(int8)": "int8", "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}


def read_onnx_info(path) -> OnnxModelInfo:
    """IO tensors and metadata of an ONNX file (``onnx`` when installed, else ONNX Runtime).

    Only the graph is read (no external weights), so this is cheap even for large models.
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"ONNX file not found: {path}")
    try:
        import onnx
    except ImportError:
        return _read_with_onnxruntime(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - DecodeError and friends
        raise BadInputError(f"cannot read ONNX file {path}: {first_line(exc)}") from None
    initializers = {t.name for t in model.graph.initializer}

    def info(value) -> InputInfo:
        t = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        return InputInfo(value.name, _ONNX_ELEM_TYPES.get(t.elem_type, f"onnx:{t.elem_type}"), dims)

    return OnnxModelInfo(
        inputs=tuple(info(v) for v in model.graph.input if v.name not in initializers),
        outputs=tuple(info(v) for v in model.graph.output),
        metadata={p.key: p.value for p in model.metadata_props},
    )


def _read_with_onnxruntime(path) -> OnnxModelInfo:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types
        raise BadInputError(f"cannot read ONNX file {path}: {first_line(exc)}") from None

    def info(arg) -> InputInfo:
        return InputInfo(arg.name, _ORT_TYPES.get(arg.type, arg.type), tuple(d if isinstance(d, int) else None for d in arg.shape))

    return OnnxModelInfo(
        inputs=tuple(info(a) for a in session.get_inputs()),
        outputs=tuple(info(a) for a in session.get_outputs()),
        metadata=dict(session.get_modelmeta().custom_metadata_map),
    )


__all__ += ["OnnxModelInfo", "read_onnx_info"]
