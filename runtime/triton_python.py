"""The models that Triton's Python backend runs for ``export-triton --backend python`` (and the captioner loop).

``export-triton`` writes a ``model.py`` of a few lines (:func:`model_py`) that adds the site
directories named in its config (``stylize_rt.site_packages``) to the server's Python and hands
the requests to one of the classes here:

- :class:`GeneratorModel` runs ``model.onnx`` through stylize-rt's ONNX Runtime backend. With
  ``max_batch_size > 0``, the requests of one ``execute`` call that share a frame size run as
  one batch (what Triton's dynamic batcher gathers).
- :class:`CaptionerModel` runs the greedy/beam decoding loop of ``runtime.captioner`` over two
  other models of the same repository (``NAME_encoder``, ``NAME_decoder_step``), called through
  Triton's business-logic scripting (BLS), so either backend can serve the graphs.

Tensors cross the Python-backend boundary only by DLPack (``np.from_dlpack`` in,
``Tensor.from_dlpack`` out): the stub's numpy bindings were compiled against numpy 1, and under
numpy 2 they read a wrong item size (inputs come back with zero strides, outputs with no bytes).
For the same reason captions leave as UTF-8 bytes in a zero-padded ``uint8 [N, L]`` tensor
instead of Triton's BYTES type (:func:`decode_captions` reads them back).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from stylize_rt.contract import CAPTIONER_CONFIG_FILE
from stylize_rt.errors import BadInputError, StylizeError, first_line
from stylize_rt.fileio import read_json
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
from stylize_rt.runtime.captioner import Captioner

ROLE_PARAM = "stylize_rt.role"  # which class serves a Python-backend model
GENERATOR_ROLE, CAPTIONER_ROLE = "generator", "captioner"
THREADS_PARAM = "stylize_rt.threads"
SITE_PACKAGES_PARAM = "stylize_rt.site_packages"
BEAM_PARAM = "stylize_rt.beam"
ENCODER_PARAM, DECODER_PARAM = "stylize_rt.encoder_model", "stylize_rt.decoder_model"
FACT_ENCODER_PARAM = "stylize_rt.fact_encoder_model"  # a fact captioner's third graph
ONNX_FILE = "model.onnx"  # the graph beside a generator's model.py
CAPTION_INPUT, CAPTION_OUTPUT = "image", "caption"

_MODEL_PY = '''"""Triton Python-backend model written by `stylize-rt export-triton --backend python`.

It serves a stylize-rt {role}: the server's Python needs stylize-rt and onnxruntime (pip install
stylize-rt there, or export with --site-packages DIR; see stylize_rt.runtime.triton_python).
"""

import json
import os
import site

ROLE = "{role}"


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {{}})
        for path in parameters.get("{site}", {{}}).get("string_value", "").split(os.pathsep):
            if path:
                site.addsitedir(path)  # processes .pth files too (editable installs)
        import triton_python_backend_utils as pb_utils

        from stylize_rt.runtime import triton_python

        self.model = triton_python.open_model(ROLE, args, pb_utils)

    def execute(self, requests):
        return self.model.execute(requests)

    def finalize(self):
        self.model.close()
'''


def model_py(role: str) -> str:
    """The ``model.py`` that serves ``role`` (generator or captioner)."""
    return _MODEL_PY.format(role=role, site=SITE_PACKAGES_PARAM)


def _parameters(config: dict) -> dict[str, str]:
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


def open_model(role: str, args: dict, pb_utils) -> Any:
    """The served object for ``role`` (called from ``model.py``'s ``initialize``)."""
    _quiet_dlpack_capsules()
    if role == GENERATOR_ROLE:
        return GeneratorModel(args, pb_utils)
    if role == CAPTIONER_ROLE:
        return CaptionerModel(args, pb_utils)
    raise BadInputError(f"unknown stylize-rt model role {role!r}")


_CAPSULE_NOISE = "PyCapsule_GetPointer called with incorrect name"


def _quiet_dlpack_capsules() -> None:
    """Drop one known-harmless message: the stub consumes numpy's DLPack capsule under a name numpy's
    capsule destructor does not expect, so every output would print an ignored ValueError to the server
    log. The tensor's memory is still freed by the stub (checked: flat stub RSS over 240 calls). Every
    other unraisable exception still reaches the previous hook."""
    previous = sys.unraisablehook
    if getattr(previous, "stylize_rt_quiet", False):
        return

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, ValueError) and str(unraisable.exc_value) == _CAPSULE_NOISE:
            return
        previous(unraisable)

    hook.stylize_rt_quiet = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _error_response(pb_utils, exc: BaseException):
    text = str(exc) if isinstance(exc, StylizeError) else f"{type(exc).__name__}: {first_line(exc)}"
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(text))


def _input(pb_utils, request, name: str) -> np.ndarray:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise BadInputError(f"missing input {name!r}")
    return np.from_dlpack(tensor)


def _output(pb_utils, name: str, value: np.ndarray):
    return pb_utils.Tensor.from_dlpack(name, np.ascontiguousarray(value))


class GeneratorModel:
    """A generator's ``model.onnx`` on stylize-rt's ONNX Runtime backend, one session per instance."""

    def __init__(self, args: dict, pb_utils) -> None:
        self.pb = pb_utils
        config = json.loads(args["model_config"])
        parameters = _parameters(config)
        folder = Path(args["model_repository"]) / str(args["model_version"])
        threads = int(parameters.get(THREADS_PARAM) or 0)
        gpu = args.get("model_instance_kind") == "GPU"
        self.backend = OnnxRuntimeBackend(folder / ONNX_FILE, threads=threads, warmup=0,
                                          providers="auto" if gpu else "cpu",
                                          device=int(args.get("model_instance_device_id") or 0))
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.names = [spec.name for spec in self.backend.inputs]

    def execute(self, requests: list) -> list:
        responses: list[Any] = [None] * len(requests)
        groups: dict[tuple, list[tuple[int, dict[str, np.ndarray]]]] = {}
        for index, request in enumerate(requests):
            try:
                feeds = {name: _input(self.pb, request, name) for name in self.names}
            except Exception as exc:  # noqa: BLE001 - one bad request fails alone
                responses[index] = _error_response(self.pb, exc)
                continue
            # Requests of the same shapes share one model call when Triton batches for this model.
            key = tuple((n, a.dtype.str, a.shape[1:]) for n, a in feeds.items()) if self.batched else (index,)
            groups.setdefault(key, []).append((index, feeds))
        for members in groups.values():
            self._run(members, responses)
        return responses

    def _run(self, members: list[tuple[int, dict[str, np.ndarray]]], responses: list) -> None:
        try:
            if len(members) == 1:
                outputs = self.backend.infer(members[0][1])
            else:
                outputs = self.backend.infer({n: np.concatenate([f[n] for _, f in members]) for n in self.names})
        except Exception as exc:  # noqa: BLE001 - the model's error goes back to every request of the call
            for index, _ in members:
                responses[index] = _error_response(self.pb, exc)
            return
        start = 0
        for index, feeds in members:
            count = len(feeds[self.names[0]]) if len(members) > 1 else None
            part = {n: (v if count is None else v[start:start + count]) for n, v in outputs.items()}
            start += count or 0
            responses[index] = self.pb.InferenceResponse(
                output_tensors=[_output(self.pb, n, v) for n, v in part.items()])

    def close(self) -> None:
        self.backend.close()


class _BlsGraph:
    """Another model of the same server, called like a backend (``infer(feeds) -> outputs``)."""

    def __init__(self, pb_utils, model_name: str, outputs: list[str]) -> None:
        self.pb = pb_utils
        self.model_name = model_name
        self.output_names = outputs

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pb = self.pb
        extra = {}
        if hasattr(pb, "PreferredMemory"):  # outputs on the host, whatever device the graph ran on
            extra["preferred_memory"] = pb.PreferredMemory(pb.TRITONSERVER_MEMORY_CPU, 0)
        request = pb.InferenceRequest(model_name=self.model_name, requested_output_names=self.output_names,
                                      inputs=[_output(pb, n, v) for n, v in feeds.items()], **extra)
        response = request.exec()
        if response.has_error():
            raise StylizeError(f"{self.model_name}: {response.error().message()}")
        return {n: np.from_dlpack(pb.get_output_tensor_by_name(response, n)).copy() for n in self.output_names}

    def close(self) -> None:
        pass


class CaptionerModel:
    """Frames in (``image``: uint8 [N, H, W, 3], any size), captions out (UTF-8 rows of ``caption``)."""

    def __init__(self, args: dict, pb_utils) -> None:
        self.pb = pb_utils
        parameters = _parameters(json.loads(args["model_config"]))
        folder = Path(args["model_repository"]) / str(args["model_version"])
        graphs = read_json(folder / CAPTIONER_CONFIG_FILE, "exported captioner config")
        self.beam = int(parameters.get(BEAM_PARAM) or 1)
        encoder = _BlsGraph(pb_utils, parameters[ENCODER_PARAM], list(graphs["encoder"]["outputs"]))
        decoder = _BlsGraph(pb_utils, parameters[DECODER_PARAM], list(graphs["decoder_step"]["outputs"]))
        middle = ()
        if parameters.get(FACT_ENCODER_PARAM):  # fact captioner: classifier, fact encoder, decoder step
            middle = (_BlsGraph(pb_utils, parameters[FACT_ENCODER_PARAM], list(graphs["fact_encoder"]["outputs"])),)
        # The decoding loop of runtime.captioner over the server's own encoder and decoder models.
        self.captioner = Captioner(folder, graphs=(encoder, *middle, decoder))

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                images = _input(self.pb, request, CAPTION_INPUT)
                if images.ndim == 3:
                    images = images[None]
                captions = self.captioner.caption_batch(list(images), beam=self.beam)
                responses.append(self.pb.InferenceResponse(
                    output_tensors=[_output(self.pb, CAPTION_OUTPUT, encode_captions(captions))]))
            except Exception as exc:  # noqa: BLE001 - one bad request fails alone
                responses.append(_error_response(self.pb, exc))
        return responses

    def close(self) -> None:
        self.captioner.close()


def encode_captions(captions: list[str]) -> np.ndarray:
    """Captions -> ``uint8 [N, L]``: each row one caption's UTF-8 bytes, zero-padded."""
    data = [c.encode("utf-8") for c in captions]
    out = np.zeros((len(data), max((len(d) for d in data), default=0) or 1), np.uint8)
    for row, raw in zip(out, data):
        row[: len(raw)] = np.frombuffer(raw, np.uint8)
    return out


def decode_captions(rows: np.ndarray) -> list[str]:
    """:func:`encode_captions`'s rows back to strings."""
    rows = np.asarray(rows, np.uint8).reshape(len(rows), -1)
    return [bytes(row).rstrip(b"\0").decode("utf-8") for row in rows]


__all__ = ["CaptionerModel", "GeneratorModel", "decode_captions", "encode_captions", "model_py", "open_model"]
