"""Opening a model as a ``Stylizer`` and stylizing a file into a file: what ``run`` and ``demo`` share.

``stylize-rt demo`` goes through these functions, which build the same source, runner and
sink objects as ``stylize-rt run --input X --output Y``, so the demo proves the user's path.
"""

from __future__ import annotations

import os
from pathlib import Path

from stylize_rt.errors import BadInputError
from stylize_rt.runtime.pipeline import PipelineConfig, StreamRunner
from stylize_rt.runtime.sinks import open_sink
from stylize_rt.runtime.sources import open_source
from stylize_rt.runtime.stats import RunStats
from stylize_rt.runtime.stylizer import Stylizer


def default_model_path() -> Path:
    """The embedded default generator's ONNX file; a clear error when this install lacks it."""
    from stylize_rt.models import DEFAULT_GENERATOR, MODELS_DIR, get_model

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
    return path


def open_stylizer(
    engine: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    threads: int = 0,
    layout: str | None = None,
    input_range: str | None = None,
    precision: str | None = None,
) -> Stylizer:
    """``--engine MODEL`` (or the embedded default) loaded by ``--backend``, as a ``Stylizer``."""
    from stylize_rt.runtime.backends.registry import open_backend

    path = Path(engine) if engine else default_model_path()
    if not path.exists():
        raise BadInputError(f"model not found: {path}")
    options: dict = {}
    if threads:
        options["threads"] = threads
    if precision:
        options["precision"] = precision
    try:
        handle = open_backend(path, backend=backend, **options)
    except TypeError as exc:  # a backend without that option (e.g. precision on CPU ONNX Runtime)
        raise BadInputError(f"backend {backend!r} does not take these options ({', '.join(options)}): {exc}") from None
    try:
        return Stylizer(handle, layout=layout, input_range=input_range)
    except BaseException:
        handle.close()
        raise


def stylize_path(stylizer: Stylizer, input_spec: str, output_spec: str, config: PipelineConfig | None = None,
                 fps: float | None = None, pix_fmt: str = "rgb24", raw_size=None) -> RunStats:
    """Stylize ``input_spec`` (video, image, folder, URL, ``-``) into ``output_spec`` (video, image, folder, ``-``)."""
    source = open_source(input_spec, raw_size=raw_size, pix_fmt=pix_fmt, fps=fps)
    try:
        sink = open_sink(output_spec, fps=fps or source.fps, pix_fmt=pix_fmt,
                         single_image=source.frame_count == 1 and not source.live)
    except BaseException:
        source.close()
        raise
    return StreamRunner(stylizer, source, sink, config).run()
