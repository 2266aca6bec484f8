"""``Captioner``: spoken-style captions for frames, from the exported ONNX folder, without torch.

The exported folder (``stylize-rt export captioner``) holds::

    encoder.onnx        image uint8 [B, S, S, 3] RGB -> features, keys, hidden, context
    decoder_step.onnx   token, hidden, context, features, keys -> logits, hidden_out, context_out, attention
    tokenizer.json      word-level vocabulary (runtime.tokenizer)
    captioner.json      image size, max length, special ids, tensor names

The decoding loop runs here, in numpy, so greedy and beam search need no special graph and
the same two graphs serve ONNX Runtime and TensorRT. Greedy is the default: one decoder
call per word, the cheapest thing to run beside a real-time stylizer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stylize_rt.contract import CAPTIONER_CONFIG_FILE as CONFIG_FILE
from stylize_rt.contract import CAPTIONER_DECODER_FILE as DECODER_FILE
from stylize_rt.contract import CAPTIONER_ENCODER_FILE as ENCODER_FILE
from stylize_rt.contract import CAPTIONER_FORMAT as FORMAT
from stylize_rt.contract import CAPTIONER_TOKENIZER_FILE as TOKENIZER_FILE
from stylize_rt.errors import BadInputError
from stylize_rt.fileio import read_json
from stylize_rt.models import get_model
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
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
    return frame[..., :3]


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

    @classmethod
    def load(cls, path: Path) -> "CaptionerSpec":
        data = read_json(path, "exported captioner config")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BadInputError(f"{path} is not a stylize-rt captioner config")
        try:
            keys = ("image_size", "max_len", "vocab_size", "bos_id", "eos_id", "pad_id")
            digest = data.get("vocab_sha256_16")
            return cls(**{k: int(data[k]) for k in keys}, vocab_digest=str(digest) if digest else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"corrupt {path}: {exc}") from None


class Captioner:
    """Loads an exported captioner folder and captions frames (greedy or beam search)."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        threads: int = 1,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        no_repeat_ngram: int = 3,
        constrained: bool = True,
        graphs: tuple[Any, Any] | None = None,
    ) -> None:
        """``no_repeat_ngram``: no word n-gram of this length occurs twice in a caption (0: off), so
        greedy and beam search cannot loop ("a big ball a big ball ..."). ``constrained=False``
        decodes with no rule at all (the raw graphs, for parity checks against PyTorch).
        ``graphs``: (encoder, decoder step) backends already open elsewhere (a Triton server's
        models); then no local ONNX Runtime session is opened."""
        if model_dir is None:
            model_dir = get_model("captioner").directory
        self.directory = Path(model_dir)
        if not self.directory.is_dir():
            raise BadInputError(f"captioner folder not found: {self.directory}")
        self.spec = CaptionerSpec.load(self.directory / CONFIG_FILE)
        self.tokenizer = Tokenizer.load(self.directory / TOKENIZER_FILE)
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
        self.no_repeat_ngram = no_repeat_ngram
        self.constrained = constrained
        if graphs is not None:
            self.encoder, self.decoder = graphs
            return
        self.encoder = OnnxRuntimeBackend(self.directory / ENCODER_FILE, threads=threads, providers=providers)
        self.decoder = OnnxRuntimeBackend(self.directory / DECODER_FILE, threads=threads, providers=providers)
        logits = next((o for o in self.decoder.outputs if o.name == "logits"), None)
        if logits is None:
            raise BadInputError(f"{self.directory / DECODER_FILE} has no 'logits' output")
        if logits.shape[-1] is not None and logits.shape[-1] != len(self.tokenizer):
            raise BadInputError(
                f"vocabulary mismatch in {self.directory}: the decoder predicts {logits.shape[-1]} tokens, "
                f"{TOKENIZER_FILE} has {len(self.tokenizer)}"
            )

    # --- public API ------------------------------------------------------------------
    def caption(self, frame_rgb_uint8: np.ndarray, beam: int = 1, length_penalty: float = 0.0) -> str:
        """One HxWx3 uint8 RGB frame (any size) -> a caption."""
        return self.caption_batch([frame_rgb_uint8], beam, length_penalty)[0]

    def caption_batch(self, frames, beam: int = 1, length_penalty: float = 0.0) -> list[str]:
        """Several frames (a list, or an NHWC array) -> captions; greedy runs them as one batch."""
        if beam < 1:
            raise BadInputError(f"beam width must be at least 1, got {beam}")
        images = self.preprocess(frames)
        if beam == 1:
            return [self.tokenizer.decode(t) for t in self.greedy_tokens(images)]
        return [self.tokenizer.decode(self.beam_tokens(img[None], beam, length_penalty)) for img in images]

    def preprocess(self, frames) -> np.ndarray:
        """Frames of any size -> N x S x S x 3 uint8 (INTER_AREA: the same filter the COCO loader uses)."""
        size = self.spec.image_size
        out = []
        for frame in frames:
            frame = as_rgb_frame(frame)
            if frame.shape[:2] != (size, size):
                frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
            out.append(np.ascontiguousarray(frame))
        if not out:
            raise BadInputError("no frames to caption")
        return np.stack(out)

    # --- decoding --------------------------------------------------------------------
    def _encode(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.encoder.infer({"image": images})

    def _step(self, token: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        out = self.decoder.infer({
            "token": token.astype(np.int64),
            "hidden": state["hidden"],
            "context": state["context"],
            "features": state["features"],
            "keys": state["keys"],
        })
        new_state = dict(state, hidden=out["hidden_out"], context=out["context_out"])
        return out["logits"].astype(np.float32), new_state

    def _mask(self, logits: np.ndarray, prefixes: list[list[int]]) -> np.ndarray:
        """``logits`` [rows, vocab] with the tokens no caption may take next set to -inf: <bos> and
        <pad> always, <eos> before the first word (no empty captions), and any word that would
        repeat an n-gram of its row's prefix."""
        if not self.constrained:
            return logits
        logits = logits.copy()
        logits[:, [self.spec.bos_id, self.spec.pad_id]] = -np.inf
        n = self.no_repeat_ngram
        for row, prefix in enumerate(prefixes):
            if not prefix:
                logits[row, self.spec.eos_id] = -np.inf
            if n and len(prefix) >= n:
                head = tuple(prefix[-(n - 1):]) if n > 1 else ()
                banned = [prefix[i + n - 1] for i in range(len(prefix) - n + 1) if tuple(prefix[i : i + n - 1]) == head]
                logits[row, banned] = -np.inf
        return logits

    def greedy_tokens(self, images: np.ndarray) -> list[list[int]]:
        """Greedy decode of preprocessed images -> token ids per image (without <bos>/<eos>)."""
        state = self._encode(images)
        n = len(images)
        token = np.full(n, self.spec.bos_id, np.int64)
        done = np.zeros(n, bool)
        result: list[list[int]] = [[] for _ in range(n)]
        for _ in range(self.spec.max_len):
            logits, state = self._step(token, state)
            token = self._mask(logits, result).argmax(axis=1)
            for i in np.flatnonzero(~done):
                if token[i] == self.spec.eos_id:
                    done[i] = True
                else:
                    result[i].append(int(token[i]))
            if done.all():
                break
        return result

    def beam_tokens(self, image: np.ndarray, beam: int, length_penalty: float = 0.0) -> list[int]:
        """Beam search for one preprocessed image [1, S, S, 3] -> best token ids (without <bos>/<eos>).

        Scores are summed log-probabilities, divided by ``length ** length_penalty`` when
        ranking finished captions (0 = plain most-probable sequence). At ``beam == 1``
        the search takes exactly the greedy path.
        """
        state = self._encode(image)
        eos = self.spec.eos_id
        live_tokens: list[list[int]] = [[]]
        live_scores = np.zeros(1, np.float64)
        token = np.array([self.spec.bos_id], np.int64)
        finished: list[tuple[float, float, list[int]]] = []  # (ranking score, raw score, tokens)

        def rank(score: float, length: int) -> float:
            return score / (max(1, length) ** length_penalty) if length_penalty else score

        for t in range(self.spec.max_len):
            logits, state = self._step(token, state)
            logp = self._mask(_log_softmax(logits.astype(np.float64)), live_tokens)
            cand = (live_scores[:, None] + logp).ravel()
            order = np.argsort(-cand, kind="stable")[: 2 * beam]  # ties: lowest index, like argmax
            vocab = logp.shape[1]
            keep_rows, keep_tokens, keep_scores = [], [], []
            for flat in order:
                row, word = divmod(int(flat), vocab)
                if word == eos:
                    finished.append((rank(cand[flat], len(live_tokens[row]) + 1), cand[flat], live_tokens[row]))
                else:
                    keep_rows.append(row)
                    keep_tokens.append(word)
                    keep_scores.append(cand[flat])
                if len(keep_rows) == beam:
                    break
            if len(finished) >= beam or not keep_rows:
                break
            if t == self.spec.max_len - 1:  # out of length: the live beams end here unterminated
                finished += [(rank(s, len(live_tokens[r]) + 1), s, live_tokens[r] + [w])
                             for r, w, s in zip(keep_rows, keep_tokens, keep_scores)]
                break
            rows = np.array(keep_rows)
            live_tokens = [live_tokens[r] + [w] for r, w in zip(keep_rows, keep_tokens)]
            live_scores = np.array(keep_scores)
            token = np.array(keep_tokens, np.int64)
            state = {k: v[rows] for k, v in state.items()}
        best = max(finished, key=lambda f: f[0])  # max keeps the first of equals: the earliest found
        return best[2]

    def close(self) -> None:
        self.encoder.close()
        self.decoder.close()


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


__all__ = ["Captioner", "CaptionerSpec", "as_rgb_frame"]
