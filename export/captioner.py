"""Captioner export: encoder graph(s) + ``decoder_step.onnx`` + tokenizer + config, in one folder.

A fact captioner's folder (``config.input == "facts"``) holds ``fact_encoder.onnx`` (fact ids ->
the decoder's attention cells and initial state), the ImageNet classifier ``encoder.onnx`` that
recognises the facts (``export.caption_encoder``: built from the EfficientNet-Lite0 wheel and
quantized to INT8, or copied from another fact captioner's folder with the same noun table),
``classifier.npz`` and ``nouns.json``. An image captioner's folder holds the image
``encoder.onnx``.

The decoder is exported as a single step with its recurrent state (GRU hidden state and
the previous attention context) as explicit inputs and outputs; the caller drives the
loop (``runtime.captioner``). Both graphs have a dynamic batch axis (beam search runs its
beams as a batch); sequence length never appears in a graph. Opset 17 like the generator:
GRU-cell arithmetic (MatMul/Gemm, Sigmoid, Tanh), Softmax, Gather and Conv are in
TensorRT 10/11's ONNX parser support list and in ONNX Runtime's CPU/CUDA kernels.

``verify_captioner_export`` proves the folder: encoder outputs match PyTorch, and the
ONNX stepwise greedy decode gives the same tokens as the PyTorch decode on held-out images.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from stylize_rt import __version__, contract
from stylize_rt.caption_facts import FactCoder, NounTable
from stylize_rt.contract import CAPTIONER_CLASSIFIER_FILE as CLASSIFIER_FILE
from stylize_rt.contract import CAPTIONER_CONFIG_FILE as CONFIG_FILE
from stylize_rt.contract import CAPTIONER_DECODER_FILE as DECODER_FILE
from stylize_rt.contract import CAPTIONER_ENCODER_FILE as ENCODER_FILE
from stylize_rt.contract import CAPTIONER_FACT_ENCODER_FILE as FACT_ENCODER_FILE
from stylize_rt.contract import CAPTIONER_FORMAT as FORMAT
from stylize_rt.contract import CAPTIONER_NOUNS_FILE as NOUNS_FILE
from stylize_rt.contract import CAPTIONER_TOKENIZER_FILE as TOKENIZER_FILE
from stylize_rt.errors import BadInputError, OutputError, run_reporting_errors
from stylize_rt.export.caption_encoder import build_classifier
from stylize_rt.export.verify import VerificationError
from stylize_rt.fileio import read_json, replace_dir
from stylize_rt.nets.captioner import Captioner, load_captioner, load_fact_coder
from stylize_rt.runtime.captioner import Captioner as OnnxCaptioner
from stylize_rt.tokenizer import Tokenizer
from stylize_rt.training.caption_synth import make_facts
from stylize_rt.training.scenes import make_scenes, render_scenes
from stylize_rt.training.train_captioner import encoder_input

OPSET = 17
ENCODER_OUTPUTS = ["features", "keys", "hidden", "context"]
DECODER_INPUTS = ["token", "hidden", "context", "features", "keys"]
DECODER_OUTPUTS = ["logits", "hidden_out", "context_out", "attention"]


class _EncoderGraph(nn.Module):
    """uint8 NHWC RGB in (what cameras and decoders hand over), the four encoder outputs out."""

    def __init__(self, model: Captioner) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        # Cast first: TensorRT accepts a uint8 network input only when it feeds a Cast directly.
        x = image.to(torch.float32).permute(0, 3, 1, 2) / 255.0
        return self.model.encode(x)


class _FactEncoderGraph(nn.Module):
    """Fact-token ids [B, 13] int64 in, the four encoder outputs out."""

    def __init__(self, model: Captioner) -> None:
        super().__init__()
        self.model = model

    def forward(self, facts: torch.Tensor):
        return self.model.encode(facts)


class _DecoderStepGraph(nn.Module):
    def __init__(self, model: Captioner) -> None:
        super().__init__()
        self.model = model

    def forward(self, token, hidden, context, features, keys):
        return self.model.step(token, hidden, context, features, keys)


def _load(source) -> tuple[Captioner, Tokenizer, dict, FactCoder | None]:
    """A checkpoint directory, ``(model, tokenizer)`` or ``(model, tokenizer, coder)`` (fact captioners)."""
    if isinstance(source, (str, os.PathLike)):
        model, tokenizer, card = load_captioner(source)
        coder = load_fact_coder(source, card) if model.config.input == "facts" else None
        return model, tokenizer, card, coder
    if isinstance(source, tuple) and len(source) in (2, 3):
        model, tokenizer, coder = (*source, None)[:3]
        if (model.config.input == "facts") != (coder is not None):
            raise TypeError("a fact captioner exports as (Captioner, Tokenizer, FactCoder), an image one as a pair")
        return model, tokenizer, {}, coder
    raise TypeError("export_captioner takes a checkpoint directory or a (Captioner, Tokenizer[, FactCoder]) tuple")


CLASSIFIER_CHOICES = ("int8", "fp32")


def export_captioner(ckpt_dir_or_model, out_dir: str | os.PathLike[str], verify: bool = True,
                     classifier: str | os.PathLike[str] = "int8") -> Path:
    """Export a captioner checkpoint (or ``(model, tokenizer[, coder])``) into ``out_dir``, atomically.

    The folder is built beside ``out_dir`` and renamed into place only after
    ``onnx.checker`` (full check) and, with ``verify``, the ONNX-vs-PyTorch token check pass.
    ``classifier`` (fact captioners): ``int8`` / ``fp32`` build the ImageNet classifier (about a
    minute), a folder path copies its ``encoder.onnx`` + ``classifier.npz`` (the folder's
    ``nouns.json`` must equal the checkpoint's).
    """
    model, tokenizer, card, coder = _load(ckpt_dir_or_model)
    model = model.eval()
    cfg = model.config
    out = Path(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        meta = {
            contract.VERSION: __version__,
            contract.KIND: "captioner",
            contract.CAPTIONER_CONFIG: json.dumps(cfg.to_dict()),
        }
        facts = coder is not None
        classifier_report = None
        if facts:
            _export_fact_encoder(model, tmp / FACT_ENCODER_FILE, {**meta, contract.PART: "fact_encoder"})
            coder.table.save(tmp / NOUNS_FILE)
            classifier_report = _classifier(coder.table, tmp, classifier)
        else:
            _export_encoder(model, tmp / ENCODER_FILE, {**meta, contract.PART: "encoder"})
        _export_decoder(model, tmp / DECODER_FILE, {**meta, contract.PART: "decoder_step"})
        tokenizer.save(tmp / TOKENIZER_FILE)
        config = {
            "format": FORMAT,
            "version": 1,
            "input": cfg.input,
            "image_size": 224 if facts else cfg.image_size,
            "image_layout": "uint8_nhwc_rgb",
            "max_len": cfg.max_len,
            "vocab_size": len(tokenizer),
            "vocab_sha256_16": tokenizer.digest(),
            "bos_id": tokenizer.bos_id,
            "eos_id": tokenizer.eos_id,
            "pad_id": tokenizer.pad_id,
            "encoder": ({"file": ENCODER_FILE, "inputs": ["image"], "outputs": ["head"],
                         "classifier": CLASSIFIER_FILE, "nouns": NOUNS_FILE} if facts else
                        {"file": ENCODER_FILE, "inputs": ["image"], "outputs": ENCODER_OUTPUTS}),
            **({"fact_encoder": {"file": FACT_ENCODER_FILE, "inputs": ["facts"], "outputs": ENCODER_OUTPUTS},
                "facts": coder.to_dict(), "classifier": classifier_report} if facts else {}),
            "decoder_step": {"file": DECODER_FILE, "inputs": DECODER_INPUTS, "outputs": DECODER_OUTPUTS},
            "model": cfg.to_dict(),
            "opset": OPSET,
            "stylize_rt_version": __version__,
            "checkpoint": {k: card[k] for k in ("vocab_sha256_16", "train") if k in card},
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        if verify:
            verify_captioner_export(tmp, (model, tokenizer, coder) if facts else (model, tokenizer))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; an exported model folder is for sharing
        return replace_dir(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _export(module: nn.Module, args: tuple, path: Path, inputs, outputs, axes, meta: dict[str, str]) -> None:

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), dynamo=False, opset_version=OPSET,
            input_names=inputs, output_names=outputs, dynamic_axes=axes,
        )
    graph = onnx.load(str(path))
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))


def _export_encoder(model: Captioner, path: Path, meta: dict[str, str]) -> None:
    size = model.config.image_size
    sample = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    axes = {name: {0: "batch"} for name in ["image", *ENCODER_OUTPUTS]}
    _export(_EncoderGraph(model).eval(), (sample,), path, ["image"], ENCODER_OUTPUTS, axes, meta)


def _export_fact_encoder(model: Captioner, path: Path, meta: dict[str, str]) -> None:
    sample = torch.randint(0, model.config.fact_tokens, (2, model.config.fact_slots), dtype=torch.long)
    axes = {name: {0: "batch"} for name in ["facts", *ENCODER_OUTPUTS]}
    _export(_FactEncoderGraph(model).eval(), (sample,), path, ["facts"], ENCODER_OUTPUTS, axes, meta)


def _classifier(table: NounTable, folder: Path, source: str | os.PathLike[str]) -> dict:
    """Build the fact captioner's classifier into ``folder``, or copy it from another folder."""
    if str(source) in CLASSIFIER_CHOICES:
        return build_classifier(table, folder, int8=str(source) == "int8")
    src = Path(source)
    if NounTable.load(src / NOUNS_FILE) != table:
        raise BadInputError(f"{src / NOUNS_FILE} is not this checkpoint's noun table: its classifier groups differ")
    for name in (ENCODER_FILE, CLASSIFIER_FILE):
        if not (src / name).is_file():
            raise BadInputError(f"no {name} in {src} to copy the classifier from")
        shutil.copyfile(src / name, folder / name)
    report = read_json(src / CONFIG_FILE, "exported captioner config").get("classifier") if (src / CONFIG_FILE).is_file() else None
    return {"copied_from": str(src), **(report or {})}


def _encode_sample(model: Captioner, rows: int = 2):
    """A batch the encoder accepts: random images or random fact ids."""
    if model.config.input == "facts":
        return torch.randint(0, model.config.fact_tokens, (rows, model.config.fact_slots), dtype=torch.long)
    size = model.config.image_size
    return torch.rand(rows, 3, size, size)


def _export_decoder(model: Captioner, path: Path, meta: dict[str, str]) -> None:
    with torch.no_grad():
        features, keys, hidden, context = model.encode(_encode_sample(model))
    token = torch.tensor([1, 2], dtype=torch.long)
    axes = {name: {0: "batch"} for name in [*DECODER_INPUTS, *DECODER_OUTPUTS]}
    _export(
        _DecoderStepGraph(model).eval(), (token, hidden, context, features, keys), path,
        DECODER_INPUTS, DECODER_OUTPUTS, axes, meta,
    )


@dataclass
class CaptionerVerification:
    """What ``verify_captioner`` measured; ``passed`` when the ONNX folder reproduces PyTorch."""

    images: int
    encoder_max_abs_err: float
    encoder_scaled_err: float  # max |onnx - torch| / max(1, max |torch|), per output, worst output
    token_mismatches: int
    tolerance: float
    first_mismatch: str | None = None

    @property
    def passed(self) -> bool:
        return self.encoder_scaled_err <= self.tolerance and self.token_mismatches == 0

    def lines(self) -> list[str]:
        verdict = "PASS" if self.passed else "FAIL"
        out = [
            f"captioner encoder: max abs error vs PyTorch {self.encoder_max_abs_err:.2e}, relative to the output's "
            f"range {self.encoder_scaled_err:.1e} (tolerance {self.tolerance:.0e})",
            f"captioner decode: ONNX stepwise greedy tokens == PyTorch on {self.images - self.token_mismatches}"
            f"/{self.images} held-out images: {verdict}",
        ]
        if self.first_mismatch:
            out.append(f"first difference: {self.first_mismatch}")
        return out

    def to_dict(self) -> dict:
        return {"images": self.images, "encoder_max_abs_err": self.encoder_max_abs_err,
                "encoder_scaled_err": self.encoder_scaled_err, "token_mismatches": self.token_mismatches,
                "passed": self.passed}


def verify_captioner(
    export_dir: str | os.PathLike[str],
    ckpt_dir_or_model,
    images: np.ndarray | None = None,
    scenes: int = 32,
    seed: int = 0,
    tolerance: float = 1e-5,
) -> CaptionerVerification:
    """Compare an exported folder with PyTorch (does not raise on a difference; see ``.passed``).

    ``images`` (N x S x S x 3 uint8, or N x 13 fact ids for a fact captioner) default to
    ``scenes`` held-out inputs: synthetic scenes or synthetic fact sets of the ``test`` stream,
    never drawn in training. Measures the encoder outputs' max abs error, and whether the ONNX
    stepwise greedy decode gives PyTorch's tokens on every input. The encoder error is scaled
    by each output's magnitude (features reach ~100; float32 rounding there is ~1e-5
    absolute), so ``tolerance`` means the same for small and large activations.
    """
    model, tokenizer, _, coder = _load(ckpt_dir_or_model)
    model = model.eval()
    if images is None and coder is not None:
        images = coder.encode_batch(make_facts(coder.table, scenes, seed, "test"))
    elif images is None:
        images = render_scenes(make_scenes(scenes, seed, "test"), model.config.image_size)
    # the graphs' own decode, as PyTorch's greedy; faces are not part of what is compared
    runtime = OnnxCaptioner(export_dir, constrained=False, faces=False)
    try:
        if runtime.kind != model.config.input or len(runtime.tokenizer) != len(tokenizer) or (
                coder is None and runtime.spec.image_size != model.config.image_size) or (
                coder is not None and runtime.coder.vocab != coder.vocab):
            raise BadInputError(f"{export_dir} was not exported from this checkpoint "
                                "(input kind, image size, vocabulary or fact vocabulary differ)")
        onnx_enc = runtime._encode(images)  # noqa: SLF001 - the verifier checks the raw graph outputs
        with torch.no_grad():
            x = encoder_input(model, images)
            torch_enc = [t.numpy() for t in model.encode(x)]
            torch_rows = model.greedy(x, tokenizer.bos_id, tokenizer.eos_id).tolist()
        diffs = [(float(np.abs(onnx_enc[n] - t).max()), max(1.0, float(np.abs(t).max())))
                 for n, t in zip(ENCODER_OUTPUTS, torch_enc)]
        enc_err = max(d for d, _ in diffs)
        scaled_err = max(d / scale for d, scale in diffs)
        onnx_tokens = runtime.greedy_tokens(images)
    finally:
        runtime.close()
    torch_tokens = [row[: row.index(tokenizer.eos_id)] if tokenizer.eos_id in row else row for row in torch_rows]
    mismatched = [i for i, (a, b) in enumerate(zip(onnx_tokens, torch_tokens)) if a != b]
    first = None
    if mismatched:
        i = mismatched[0]
        first = f"input {i}: ONNX {tokenizer.decode(onnx_tokens[i])!r} vs PyTorch {tokenizer.decode(torch_tokens[i])!r}"
    return CaptionerVerification(len(images), enc_err, scaled_err, len(mismatched), tolerance, first)


def verify_captioner_export(export_dir, ckpt_dir_or_model, images=None, scenes: int = 32, seed: int = 0,
                            tolerance: float = 1e-5) -> dict:
    """``verify_captioner``, raising ``VerificationError`` on any difference; returns the numbers."""
    report = verify_captioner(export_dir, ckpt_dir_or_model, images, scenes, seed, tolerance)
    if not report.passed:
        raise VerificationError("; ".join(report.lines()))
    return report.to_dict()


EMBEDDED_FILES = {
    "encoder": ENCODER_FILE,
    "decoder_step": DECODER_FILE,
    "tokenizer": TOKENIZER_FILE,
    "weights": "captioner.safetensors",
    "config": "config.json",
    "runtime_config": CONFIG_FILE,
}
FACT_FILES = {"fact_encoder": FACT_ENCODER_FILE, "nouns": NOUNS_FILE, "classifier": CLASSIFIER_FILE}


def write_embedded(ckpt_dir: str | os.PathLike[str], dest: str | os.PathLike[str], source: str,
                   classifier: str | os.PathLike[str] = "int8", extra: dict | None = None) -> Path:
    """Export ``ckpt_dir`` into ``dest`` as a shippable model folder with a ``model.json`` card.

    The folder is at once an exported captioner (what the runtime loads) and a checkpoint
    (config.json + safetensors + tokenizer.json (+ nouns.json), what ``load_captioner`` and the
    exporter load), so the shipped files can always be re-exported and re-verified. ``extra``
    goes into the card (e.g. the wall times of the stages a recipe ran).
    """
    ckpt, dest = Path(ckpt_dir), Path(dest)
    model, tokenizer, card, coder = _load(ckpt)
    facts = coder is not None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from None
    staging = Path(tempfile.mkdtemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent))
    try:
        export_start = time.perf_counter()
        folder = export_captioner((model, tokenizer, coder) if facts else (model, tokenizer), staging / "export",
                                  classifier=classifier)
        export_wall = round(time.perf_counter() - export_start, 1)
        shutil.copyfile(ckpt / "config.json", folder / "config.json")
        shutil.copyfile(ckpt / "captioner.safetensors", folder / "captioner.safetensors")
        report = card.get("report", {})
        final = report.get("gan", report.get("mle", {})).get("held_out", {})
        runtime_config = read_json(folder / CONFIG_FILE, "exported captioner config")
        description = ("casual spoken-style captions of real frames: EfficientNet-Lite0 (ImageNet, INT8) + Haar faces "
                       "+ colours recognise facts, an attention-GRU decoder trained on synthetic facts says them"
                       if facts else
                       "spoken-style captions of synthetic shape scenes (CNN encoder + attention GRU decoder)")
        model_card = {
            "name": "captioner",
            "kind": "captioner",
            "description": description,
            "files": {**EMBEDDED_FILES, **(FACT_FILES if facts else {})},
            "source": source,
            "wall_s": {**_wall_times(report), "export_s": export_wall},
            "trained_on": "this repository's CI-class machine: 2 shared CPU cores, torch CPU with 1 thread",
            "held_out_greedy": {k: final.get(k) for k in ("bleu1", "bleu2", "bleu3", "bleu4", "cider", "distinct2")},
            **({"classifier": runtime_config.get("classifier")} if facts else {}),
            **(extra or {}),
            "training_report": report,
        }
        (folder / "model.json").write_text(json.dumps(model_card, indent=2) + "\n")
        for f in folder.iterdir():
            os.chmod(f, 0o644)
        replace_dir(folder, dest)
    except OSError as exc:
        raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _wall_times(report: dict) -> dict:
    """Training wall time of this checkpoint, plus that of the checkpoint it started from (--init)."""
    own = report.get("wall_s")
    earlier = (report.get("init") or {}).get("wall_s")
    total = own + earlier if own is not None and earlier is not None else own
    return {"this_stage_s": own, "init_stage_s": earlier, "total_s": total}


def main(argv: list[str] | None = None) -> int:
    """``python -m stylize_rt.export.captioner CKPT OUT [--embedded --source CMD]``."""
    p = argparse.ArgumentParser(prog="python -m stylize_rt.export.captioner",
                                description="export a captioner checkpoint and check it against PyTorch")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--embedded", action="store_true", help="also copy weights + card and write model.json")
    p.add_argument("--source", default="", help="the reproducing command to record in model.json")
    p.add_argument("--classifier", default="int8", metavar="int8|fp32|DIR",
                   help="fact captioners: build the ImageNet classifier (int8, default, or fp32) or copy it from DIR")
    args = p.parse_args(argv)
    return run_reporting_errors(lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    if args.embedded:
        out = write_embedded(args.checkpoint, args.out, args.source, classifier=args.classifier)
    else:
        out = export_captioner(args.checkpoint, args.out, classifier=args.classifier)
    report = verify_captioner_export(out, args.checkpoint, scenes=100)
    config = read_json(Path(out) / CONFIG_FILE, "exported captioner config")
    for line in (config.get("classifier") or {}).get("lines", []):
        print(line)
    print(f"wrote {out}: ONNX stepwise decode == PyTorch decode on {report['images']} held-out inputs "
          f"(encoder max abs error {report['encoder_max_abs_err']:.1e}, relative {report['encoder_scaled_err']:.1e})")
    return 0


__all__ = [
    "export_captioner", "verify_captioner", "verify_captioner_export", "CaptionerVerification", "write_embedded",
    "VerificationError", "OPSET",
]


if __name__ == "__main__":
    sys.exit(main())
