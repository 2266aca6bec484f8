"""Basic ONNX export of the generator: dynamic batch, height and width.

Opset 17: InstanceNormalization, Resize (nearest, asymmetric) and reflect Pad are all in
TensorRT 10/11's ONNX parser support list and in ONNX Runtime's CPU/CUDA kernels.
The legacy TorchScript exporter is used because it writes size arithmetic (the decoder's
crop) as plain Shape/Slice ops on any opset we ask for.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from stylize_rt import __version__
from stylize_rt.errors import OutputError

OPSET = 17
IOLayout = Literal["float32_nchw", "uint8_nhwc"]


def export_generator(
    generator: nn.Module,
    path: str | os.PathLike[str],
    io_layout: IOLayout = "float32_nchw",
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``generator`` as ONNX to ``path`` atomically (temp file, then rename)."""
    from stylize_rt.training.generator import UInt8NHWC

    path = Path(path)
    model = generator.eval()
    if io_layout == "uint8_nhwc":
        model = UInt8NHWC(generator).eval()
        sample = torch.randint(0, 256, (1, 64, 48, 3), dtype=torch.uint8)
        axes = {0: "batch", 1: "height", 2: "width"}
    elif io_layout == "float32_nchw":
        sample = torch.rand(1, 3, 64, 48)
        axes = {0: "batch", 2: "height", 3: "width"}
    else:
        raise ValueError(f"unknown io_layout {io_layout!r}")

    meta = {"stylize_rt.version": __version__, "stylize_rt.io_layout": io_layout}
    meta.update(metadata or {})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (sample,),
                tmp,
                dynamo=False,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": axes, "output": axes},
            )
        _add_metadata(tmp, meta)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _add_metadata(path: str, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(path)
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.save(model, path)
