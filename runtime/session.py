"""One run session: model, source, sinks, window and captions composed in one place.

``stylize-rt run`` and ``stylize-rt demo`` (and embedders) describe a run as a
:class:`RunConfig` and go through :func:`open_run`, so the demo proves exactly the user's
path. A :class:`RunSession` owns everything it opened in an ``ExitStack``: whatever fails
while opening, what was already open is closed again; once the stream runner starts, it
owns the source and the sink (it finalizes the output on every exit path, see
``pipeline``), and the session closes the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from stylize_rt import contract
from stylize_rt.errors import BadInputError, OutputError
from stylize_rt.models import DEFAULT_GENERATOR, MODELS_DIR, get_model, resolve_model
from stylize_rt.runtime.backends.registry import is_triton_url, open_backend
from stylize_rt.runtime.caption_sink import CaptionSink
from stylize_rt.runtime.caption_worker import CaptionWorker
from stylize_rt.runtime.captioner import Captioner
from stylize_rt.runtime.codecs import EncodeOptions
from stylize_rt.runtime.guard import refuse_overwriting_inputs
from stylize_rt.runtime.overlay import ViewState
from stylize_rt.runtime.pipeline import PipelineConfig, StreamRunner
from stylize_rt.runtime.sinks import FrameInfo, NullSink, Sink, TeeSink, open_sink, output_kind
from stylize_rt.runtime.sources import DEFAULT_RECONNECTS, DEFAULT_TIMEOUT_S, ImageFolderSource, Source, open_source
from stylize_rt.runtime.stats import RunStats
from stylize_rt.runtime.style_controls import StyleControls, StyleTimeline, apply_style_key, one_hot, parse_mix
from stylize_rt.runtime.stylizer import Stylizer
from stylize_rt.runtime.window import WindowSink


def default_model_path() -> Path:
    """The embedded default generator's folder, as ``--engine styles6`` names it (so ``auto`` precision
    picks its graph: the INT8 one on CPU where it met its quality floor); a clear error when this
    install lacks its ONNX file."""
    try:
        model = get_model(DEFAULT_GENERATOR)
        path = model.path("onnx")
    except (BadInputError, KeyError):
        raise BadInputError(
            f"the embedded default model {DEFAULT_GENERATOR!r} is missing from this install "
            f"({MODELS_DIR / DEFAULT_GENERATOR}); retrain it with `make models`, or pass --engine MODEL"
        ) from None
    if not path.is_file():
        raise BadInputError(
            f"the embedded default model file is missing: {path}; retrain it with `make models`, "
            "or pass --engine MODEL"
        )
    return model.directory


@dataclass
class ModelChoice:
    """Which model runs and how (``--engine --backend --threads --fp16/--fp32 --layout --input-range``)."""

    engine: str | os.PathLike[str] | None = None  # None: the embedded default
    backend: str = "auto"
    threads: int = 0
    precision: str | None = None
    layout: str | None = None
    input_range: str | None = None


def open_stylizer(model: ModelChoice | str | os.PathLike[str] | None = None) -> Stylizer:
    """A model file (or a full ``ModelChoice``; None: the embedded default) loaded by its backend,
    as a ``Stylizer``."""
    choice = model if isinstance(model, ModelChoice) else ModelChoice(engine=model)
    # A triton:// URL names a served model (backends/triton.py): there is no file to check.
    if is_triton_url(choice.engine):
        path = choice.engine
    else:
        path = resolve_model(choice.engine) if choice.engine else default_model_path()
    handle = open_backend(path, backend=choice.backend, threads=choice.threads, precision=choice.precision or "auto")
    try:
        graph = handle.metadata.get(contract.PRECISION)
        on_cpu = not getattr(handle, "on_gpu", False) and handle.name == "onnxruntime"
        if choice.precision == "int8" and on_cpu and graph not in (None, "int8"):
            raise BadInputError(f"--precision int8 runs an INT8 graph; {path} is a {graph} graph (make one with "
                                "stylize-rt export generator CHECKPOINT -o gen_int8.onnx --precision int8)")
        return Stylizer(handle, layout=choice.layout, input_range=choice.input_range)
    except BaseException:
        handle.close()
        raise


def describe_model(choice: ModelChoice, stylizer: Stylizer) -> str:
    """Which model, backend (and ONNX Runtime providers) and IO convention a run uses, in one line."""
    backend = stylizer.backend
    providers = getattr(backend, "providers", None)
    engine = f" [{', '.join(p.replace('ExecutionProvider', '') for p in providers)}]" if providers else ""
    name = str(choice.engine) if choice.engine else f"embedded default ({DEFAULT_GENERATOR})"
    file = getattr(backend, "path", None)
    graph = backend.metadata.get(contract.PRECISION)
    detail = ", ".join(x for x in (Path(file).name if file else "", f"{graph} graph" if graph else "") if x)
    return f"{name}{f' ({detail})' if detail else ''} via {backend.name}{engine}: {stylizer.describe()}"


@dataclass
class StyleChoice:
    """What to draw (``--style --mix --strength --preserve-color --style-timeline --texture-scale``)."""

    style: str | None = None  # a style's name or index
    mix: str | None = None  # "mosaic=0.7,waves=0.3"
    strength: float = 1.0
    preserve_color: bool = False
    timeline: str | None = None  # "mosaic@0,waves@4": keyframes in seconds of the video
    texture_scale: float = 1.0  # the style's texture this many times larger (the model sees a shrunk frame)

    def controls(self, styles: list[str]) -> StyleControls:
        if sum(x is not None for x in (self.style, self.mix, self.timeline)) > 1:
            raise BadInputError("give one of --style, --mix, --style-timeline")
        weights = one_hot(styles, self.style) if self.style is not None else (
            parse_mix(styles, self.mix) if self.mix else None)
        return StyleControls(weights, self.strength, self.preserve_color)


@dataclass
class RunConfig:
    """Everything one run needs; every field has the ``run`` flag of the same name."""

    model: ModelChoice = field(default_factory=ModelChoice)
    style: StyleChoice = field(default_factory=StyleChoice)
    input: str | None = None  # --input PATH|URL|-
    camera: int | None = None  # --camera N
    camera_size: tuple[int, int] | None = None
    camera_fps: float | None = None
    raw_size: tuple[int, int] | None = None  # --raw-size for --input -
    pix_fmt: str = "rgb24"
    fps: float | None = None  # frame rate written to video outputs (default: the source's)
    output: str | None = None  # --output PATH|URL|virtualcam|-
    encode: EncodeOptions = field(default_factory=EncodeOptions)  # --codec --crf --bitrate --preset --hwaccel
    audio: bool = True  # False: --no-audio
    reconnect: int = DEFAULT_RECONNECTS  # --reconnect N for network inputs
    timeout_s: float = DEFAULT_TIMEOUT_S  # --timeout: a network input silent this long is lost
    display: bool = True  # False: --no-display
    screenshot_dir: str = "."
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    caption_engine: str | None = None  # --caption-engine DIR
    caption_interval: float = 1.0
    caption_log: str | None = None  # --caption-log PATH|-


class RunSession:
    """An opened run (see the module doc); use as a context manager, then :meth:`run`."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.source: Source | None = None
        self.stylizer: Stylizer | None = None
        self.sink: Sink | None = None
        self.view = ViewState()
        self.has_window = False
        self.runner: StreamRunner | None = None
        self.timeline: StyleTimeline | None = None
        self._first_at: dict[str, float] = {}
        self._stack = contextlib.ExitStack()

    # -- opening ------------------------------------------------------------------------
    def __enter__(self) -> RunSession:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _open(self) -> None:
        cfg = self.config
        cfg.encode.check()
        if cfg.output is not None:
            output_kind(cfg.output)  # an output we cannot write is exit 2 before any input opens
        self.source = open_source(cfg.input, camera=cfg.camera, camera_size=cfg.camera_size,
                                  camera_fps=cfg.camera_fps, raw_size=cfg.raw_size, pix_fmt=cfg.pix_fmt, fps=cfg.fps,
                                  hwaccel=cfg.encode.hwaccel, reconnect=cfg.reconnect,
                                  timeout_s=cfg.timeout_s)
        self._stack.callback(self._close_unless_started, self.source)
        engine = Path(cfg.model.engine) if cfg.model.engine else None
        refuse_overwriting_inputs(getattr(self.source, "input_files", []), cfg.output, [cfg.caption_log],
                                  protected=[engine], stdin_is_input=cfg.input == "-")
        self.stylizer = open_stylizer(cfg.model)
        self._stack.callback(self.stylizer.close)
        self.stylizer.controls = cfg.style.controls(self.stylizer.styles)
        self.stylizer.texture_scale = cfg.style.texture_scale
        self.timeline = StyleTimeline.parse(self.stylizer.styles, cfg.style.timeline) if cfg.style.timeline else None
        sink = self._open_sinks()
        self._stack.callback(self._close_unless_started, sink)
        if cfg.caption_engine:
            sink = CaptionSink(sink, self._open_caption_worker(), self.view, self._open_caption_log())
        self.sink = sink

    def _open_sinks(self) -> Sink:
        cfg, source = self.config, self.source
        sinks: list[Sink] = []
        if cfg.display and (cfg.output is None or source.live):
            try:
                sinks.append(WindowSink(f"stylize-rt: {source.name}", self.view, cfg.screenshot_dir, self._style_key))
                self.view.hud = True  # the readout is drawn in the window only, never into files
                self.has_window = True
            except Exception:
                if cfg.output is None:
                    raise
                print("stylize-rt: no window (headless OpenCV or no display); writing the output only",
                      file=sys.stderr)
        if cfg.output is not None:
            sinks.append(open_sink(cfg.output, fps=cfg.fps or source.fps, pix_fmt=cfg.pix_fmt,
                                   single_image=source.frame_count == 1 and not source.live, encode=cfg.encode,
                                   audio=self._audio(), use_source_times=cfg.fps is None or cfg.input == "-"))
        if not sinks:
            if cfg.display:
                raise BadInputError("nothing to write to: give --output PATH (or - for stdout), or --no-display")
            sinks.append(NullSink())
        return sinks[0] if len(sinks) == 1 else TeeSink(*sinks)

    def _audio(self):
        """The source's audio for a video output, unless --no-audio or --fps re-times the frames."""
        audio = getattr(self.source, "audio", None)
        if audio is None or not self.config.audio:
            return None
        if self.config.fps is not None:
            print(f"stylize-rt: note: --fps {self.config.fps:g} re-times the frames, so the input's audio "
                  "would drift: it is left out", file=sys.stderr)
            return None
        return audio

    def _open_caption_worker(self) -> CaptionWorker:
        captioner = Captioner(self.config.caption_engine)
        self._stack.callback(captioner.close)
        return CaptionWorker(captioner.caption, interval_s=max(0.0, self.config.caption_interval))

    def _open_caption_log(self) -> IO[str] | None:
        target = self.config.caption_log
        if target is None:
            return None
        if target == "-":
            return sys.stdout
        try:
            log = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed by the exit stack
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
        self._stack.callback(log.close)
        return log

    def _style_key(self, key: str) -> bool:
        """A window key for the style controls: takes effect on the next frame."""
        changed = apply_style_key(key, self.stylizer.controls, self.stylizer.styles)
        if changed is None:
            return False
        self.stylizer.controls = changed
        return True

    def controls_at(self, info: FrameInfo) -> StyleControls:
        """The timeline's controls for a frame: at its time in the video (index / fps), or since the
        first frame for a live source."""
        if self.source.live or not self.source.fps:
            seconds = info.captured_at - self._first_at.setdefault("t", info.captured_at)
        else:
            seconds = info.index / self.source.fps
        base = self.stylizer.controls
        return StyleControls(self.timeline.at(seconds), base.strength, base.preserve_color)

    def _close_unless_started(self, resource) -> None:
        """Before the runner started, the session closes source and sink; after, the runner did."""
        if self.runner is None and resource is not None:
            resource.close()

    # -- running ------------------------------------------------------------------------
    def pipeline_config(self) -> PipelineConfig:
        """The run's pipeline settings, with what the window and captions need added."""
        cfg, source = self.config, self.source
        pipeline = cfg.pipeline
        keep = pipeline.keep_original or self.has_window or cfg.caption_engine is not None
        pace = pipeline.pace_fps
        if self.has_window and not source.live and cfg.output is None and pace is None:
            pace = cfg.fps or source.fps or 30.0  # a file previewed in a window plays at its own rate
        realtime_output = cfg.output is not None and output_kind(cfg.output) in ("stream", "virtualcam")
        if realtime_output and not source.live and pace is None:
            pace = cfg.fps or source.fps or 30.0  # a file sent to a stream or camera goes out at its own rate
        skip = pipeline.skip_bad_frames or isinstance(source, ImageFolderSource)  # a folder goes on past bad images
        controls_at = self.controls_at if self.timeline is not None else pipeline.controls_at
        return dataclasses.replace(pipeline, keep_original=keep, pace_fps=pace, skip_bad_frames=skip,
                                   controls_at=controls_at)

    def run(self) -> RunStats:
        """Stream until the source ends, the viewer quits, or an error (outputs finalized first)."""
        self.runner = StreamRunner(self.stylizer, self.source, self.sink, self.pipeline_config())
        return self.runner.run()

    def close(self) -> None:
        self._stack.close()

    def __exit__(self, *exc) -> None:
        self.close()


def open_run(config: RunConfig) -> RunSession:
    """``with open_run(config) as session: stats = session.run()``."""
    return RunSession(config)


__all__ = ["ModelChoice", "StyleChoice", "RunConfig", "RunSession", "default_model_path", "describe_model", "open_run", "open_stylizer"]
