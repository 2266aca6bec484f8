"""``Captioner``: spoken-style captions for frames, from an exported ONNX folder, without torch.

Two kinds of folder, told apart by ``captioner.json``'s ``"input"``:

**facts** (the embedded default)::

    encoder.onnx        image uint8 [B, 224, 224, 3] RGB -> head [B, 49, 1280]
                        (EfficientNet-Lite0 ImageNet classifier's trunk, INT8)
    classifier.npz      its 1000-way layer (probabilities and class-activation maps, in float)
    nouns.json          ImageNet class -> speakable noun group
    fact_encoder.onnx   facts int64 [B, 13] -> features, keys, hidden, context
    decoder_step.onnx   token, hidden, context, features, keys -> logits, hidden_out, context_out, attention

A frame becomes ``Facts`` (``runtime.caption_facts``: subject nouns with their confidence, faces,
colours, brightness, layout), the facts become 13 fact-token ids, and the decoder says them.

**image** (the synthetic shape-scene model, or one trained on COCO captions)::

    encoder.onnx        image uint8 [B, S, S, 3] RGB -> features, keys, hidden, context
    decoder_step.onnx   as above

Both have ``tokenizer.json`` and ``captioner.json``. The decoding loop runs here in numpy
(``runtime.caption_decode``: greedy, beam search, nucleus sampling, all with the rules that keep
captions from looping or coming out empty), so the same graphs serve ONNX Runtime and TensorRT.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stylize_rt.caption_facts import P_EDGES, SLOTS, FactCoder, Facts, NounTable
from stylize_rt.contract import CAPTIONER_CLASSIFIER_FILE as CLASSIFIER_FILE
from stylize_rt.contract import CAPTIONER_CONFIG_FILE as CONFIG_FILE
from stylize_rt.contract import CAPTIONER_DECODER_FILE as DECODER_FILE
from stylize_rt.contract import CAPTIONER_ENCODER_FILE as ENCODER_FILE
from stylize_rt.contract import CAPTIONER_FACT_ENCODER_FILE as FACT_ENCODER_FILE
from stylize_rt.contract import CAPTIONER_FORMAT as FORMAT
from stylize_rt.contract import CAPTIONER_NOUNS_FILE as NOUNS_FILE
from stylize_rt.contract import CAPTIONER_TOKENIZER_FILE as TOKENIZER_FILE
from stylize_rt.errors import BadInputError
from stylize_rt.fileio import read_json
from stylize_rt.models import get_model, list_models
from stylize_rt.runtime import caption_decode
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
from stylize_rt.runtime.caption_decode import DecodeRules
from stylize_rt.runtime.caption_facts import FactExtractor
from stylize_rt.tokenizer import Tokenizer


def as_rgb_frame(frame: np.ndarray) -> np.ndarray:
    """Check one frame (HxWx3 uint8 RGB; gray HxW and RGBA are converted) or raise ``BadInputError``."""
    if not isinstance(frame, np.ndarray):
        raise BadInputError(f"expected a numpy image, got {type(frame).__name__}")
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise BadInputError(f"expected an HxWx3 RGB frame, got shape {tuple(frame.shape)}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise BadInputError(f"zero-size image: shape {tuple(frame.shape)}")
    if frame.dtype != np.uint8:
        raise BadInputError(f"expected a uint8 frame, got {frame.dtype}")
    return np.ascontiguousarray(frame[..., :3])


@dataclass
class CaptionerSpec:
    """What ``captioner.json`` says about the graphs."""

    image_size: int
    max_len: int
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    vocab_digest: str | None = None
    input: str = "image"  # "image" or "facts"
    facts: dict | None = None  # facts: {"slots", "vocab", "p_edges"}

    @classmethod
    def load(cls, path: Path) -> "CaptionerSpec":
        data = read_json(path, "exported captioner config")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BadInputError(f"{path} is not a stylize-rt captioner config")
        try:
            keys = ("image_size", "max_len", "vocab_size", "bos_id", "eos_id", "pad_id")
            digest = data.get("vocab_sha256_16")
            spec = cls(**{k: int(data[k]) for k in keys}, vocab_digest=str(digest) if digest else None,
                       input=str(data.get("input", "image")), facts=data.get("facts"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"corrupt {path}: {exc}") from None
        if spec.input not in ("image", "facts"):
            raise BadInputError(f"corrupt {path}: unknown input {spec.input!r}")
        if spec.input == "facts" and not (isinstance(spec.facts, dict) and isinstance(spec.facts.get("vocab"), list)):
            raise BadInputError(f"corrupt {path}: a fact captioner without its fact vocabulary")
        if spec.input == "facts" and list(spec.facts.get("slots", [])) != list(SLOTS):
            raise BadInputError(f"{path}: fact slots {spec.facts.get('slots')} are not this version's {list(SLOTS)}")
        return spec


class Captioner:
    """Loads an exported captioner folder and captions frames (greedy, beam search or sampling)."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        threads: int = 1,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        no_repeat_ngram: int = 3,
        constrained: bool = True,
        faces: bool = True,
        seed: int | None = None,
        graphs: tuple[Any, ...] | None = None,
    ) -> None:
        """``no_repeat_ngram``: no word n-gram of this length occurs twice in a caption (0: off).
        ``constrained=False`` decodes with no rule at all (the raw graphs, for parity checks against
        PyTorch). ``faces``: look for faces (fact captioners; costs 20-90 ms a frame). ``seed``:
        the random stream of sampled captions. ``graphs``: backends already open elsewhere (a
        Triton server's models), (encoder, decoder step), or (classifier, fact encoder, decoder
        step) for a fact captioner; then no local ONNX Runtime session is opened."""
        if model_dir is None:
            model_dir = get_model("captioner").directory
        elif not Path(model_dir).exists() and str(model_dir) in {m.name for m in list_models() if m.kind == "captioner"}:
            model_dir = get_model(str(model_dir)).directory  # an embedded captioner by name: --caption-engine captioner
        self.directory = Path(model_dir)
        if not self.directory.is_dir():
            raise BadInputError(f"captioner folder not found: {self.directory}")
        self.spec = CaptionerSpec.load(self.directory / CONFIG_FILE)
        self.tokenizer = Tokenizer.load(self.directory / TOKENIZER_FILE)
        self._check_vocabulary()
        tok = self.tokenizer
        self.rules = DecodeRules(tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id, self.spec.max_len,
                                 no_repeat_ngram=no_repeat_ngram, constrained=constrained)
        self.rng = np.random.default_rng(seed)
        self.facts: FactExtractor | None = None
        self.coder: FactCoder | None = None
        self.encoder: OnnxRuntimeBackend | None = None
        self.fact_encoder: OnnxRuntimeBackend | None = None
        self.decoder: OnnxRuntimeBackend | None = None
        if graphs is not None and len(graphs) != (3 if self.kind == "facts" else 2):
            raise BadInputError(f"a{' fact' if self.kind == 'facts' else 'n image'} captioner runs over "
                                f"{3 if self.kind == 'facts' else 2} graphs, got {len(graphs)}")
        opened = graphs is None

        def graph(index: int, file: str):
            if not opened:
                return graphs[index]
            return OnnxRuntimeBackend(self.directory / file, threads=threads, providers=providers)

        try:
            if self.kind == "facts":
                table = NounTable.load(self.directory / NOUNS_FILE)
                self.coder = FactCoder(table, self.spec.facts["vocab"], tuple(self.spec.facts.get("p_edges", P_EDGES)))
                self.facts = FactExtractor(self.directory / ENCODER_FILE, self.directory / CLASSIFIER_FILE, table,
                                           threads=threads, providers=providers, faces=faces,
                                           encoder=None if opened else graphs[0])
                self.encoder = self.facts.encoder
                self.fact_encoder = graph(1, FACT_ENCODER_FILE)
                self.decoder = graph(2, DECODER_FILE)
            else:
                self.encoder = graph(0, ENCODER_FILE)
                self.decoder = graph(1, DECODER_FILE)
            if opened:
                self._check_decoder()
        except BaseException:
            if opened:
                self.close()
            raise

    @property
    def kind(self) -> str:
        return self.spec.input

    def _check_vocabulary(self) -> None:
        if len(self.tokenizer) != self.spec.vocab_size:
            raise BadInputError(
                f"vocabulary mismatch in {self.directory}: {TOKENIZER_FILE} has {len(self.tokenizer)} tokens, "
                f"the model was exported for {self.spec.vocab_size}"
            )
        if self.spec.vocab_digest is not None and self.spec.vocab_digest != self.tokenizer.digest():
            raise BadInputError(
                f"vocabulary mismatch in {self.directory}: {TOKENIZER_FILE} is not the tokenizer the model was "
                "exported with (same size, different words)"
            )
        ids = (self.tokenizer.bos_id, self.tokenizer.eos_id, self.tokenizer.pad_id)
        if ids != (self.spec.bos_id, self.spec.eos_id, self.spec.pad_id):
            raise BadInputError(f"vocabulary mismatch in {self.directory}: special token ids differ")

    def _check_decoder(self) -> None:
        logits = next((o for o in self.decoder.outputs if o.name == "logits"), None)
        if logits is None:
            raise BadInputError(f"{self.directory / DECODER_FILE} has no 'logits' output")
        if logits.shape[-1] is not None and logits.shape[-1] != len(self.tokenizer):
            raise BadInputError(
                f"vocabulary mismatch in {self.directory}: the decoder predicts {logits.shape[-1]} tokens, "
                f"{TOKENIZER_FILE} has {len(self.tokenizer)}"
            )

    # --- public API ------------------------------------------------------------------
    def caption(self, frame_rgb_uint8: np.ndarray, beam: int = 1, length_penalty: float = 0.0,
                temperature: float = 0.0, top_p: float = 0.9) -> str:
        """One HxWx3 uint8 RGB frame (any size) -> a caption. ``temperature > 0`` samples (nucleus
        ``top_p``) instead of searching: a different casual caption each call, same rules."""
        return self.caption_batch([frame_rgb_uint8], beam, length_penalty, temperature, top_p)[0]

    def caption_batch(self, frames, beam: int = 1, length_penalty: float = 0.0,
                      temperature: float = 0.0, top_p: float = 0.9) -> list[str]:
        """Several frames (a list, or an NHWC array) -> captions; greedy runs them as one batch."""
        if beam < 1:
            raise BadInputError(f"beam width must be at least 1, got {beam}")
        return self.decode(self.preprocess(frames), beam, length_penalty, temperature, top_p)

    def describe(self, frame: np.ndarray, beam: int = 1, length_penalty: float = 0.0,
                 temperature: float = 0.0, top_p: float = 0.9) -> tuple[str, Facts | None]:
        """(caption, the facts it was made from; None for an image captioner)."""
        if self.kind != "facts":
            return self.caption(frame, beam, length_penalty, temperature, top_p), None
        facts = self.facts(as_rgb_frame(frame))
        return self.caption_facts([facts], beam, length_penalty, temperature, top_p)[0], facts

    def caption_facts(self, facts: list[Facts], beam: int = 1, length_penalty: float = 0.0,
                      temperature: float = 0.0, top_p: float = 0.9) -> list[str]:
        """Captions of fact sets recognised elsewhere (or drawn synthetically): the decoder alone."""
        if self.kind != "facts":
            raise BadInputError(f"{self.directory} is an image captioner; it cannot caption facts")
        return self.decode(self.coder.encode_batch(facts), beam, length_penalty, temperature, top_p)

    def decode(self, inputs: np.ndarray, beam: int = 1, length_penalty: float = 0.0,
               temperature: float = 0.0, top_p: float = 0.9) -> list[str]:
        """Encoder inputs (preprocessed images, or fact ids) -> captions."""
        if temperature > 0:
            rows = self.sample_tokens(inputs, temperature, top_p)
        elif beam == 1:
            rows = self.greedy_tokens(inputs)
        else:
            rows = [self.beam_tokens(x[None], beam, length_penalty) for x in inputs]
        return [self.tokenizer.decode(r) for r in rows]

    def preprocess(self, frames) -> np.ndarray:
        """Frames of any size -> the encoder's input: N x S x S x 3 uint8 (image captioners, INTER_AREA,
        the filter the COCO loader uses), or N x 13 fact ids (fact captioners: recognition runs here)."""
        checked = [as_rgb_frame(f) for f in frames]
        if not checked:
            raise BadInputError("no frames to caption")
        if self.kind == "facts":
            return self.coder.encode_batch([self.facts(f) for f in checked])
        size = self.spec.image_size
        return np.stack([f if f.shape[:2] == (size, size) else cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA)
                         for f in checked])

    # --- decoding --------------------------------------------------------------------
    def _encode(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        if self.kind == "facts":
            return self.fact_encoder.infer({"facts": inputs.astype(np.int64)})
        return self.encoder.infer({"image": inputs})

    def _step(self, token: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        out = self.decoder.infer({
            "token": token.astype(np.int64),
            "hidden": state["hidden"],
            "context": state["context"],
            "features": state["features"],
            "keys": state["keys"],
        })
        return out["logits"].astype(np.float32), dict(state, hidden=out["hidden_out"], context=out["context_out"])

    def greedy_tokens(self, inputs: np.ndarray) -> list[list[int]]:
        """Greedy decode of encoder inputs -> token ids per input (without <bos>/<eos>)."""
        return caption_decode.greedy(self._step, self._encode(inputs), len(inputs), self.rules)

    def beam_tokens(self, one: np.ndarray, beam: int, length_penalty: float = 0.0) -> list[int]:
        """Beam search for one encoder input (batch of 1) -> best token ids; beam 1 is greedy."""
        return caption_decode.beam_search(self._step, self._encode(one), beam, self.rules, length_penalty)

    def sample_tokens(self, inputs: np.ndarray, temperature: float = 0.8, top_p: float = 0.9) -> list[list[int]]:
        return caption_decode.sample(self._step, self._encode(inputs), len(inputs), self.rules, self.rng,
                                     temperature, top_p)

    def close(self) -> None:
        for backend in (self.encoder, self.fact_encoder, self.decoder):
            if backend is not None:
                backend.close()


__all__ = ["Captioner", "CaptionerSpec", "as_rgb_frame"]
