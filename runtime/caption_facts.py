"""Facts about a frame, recognised without torch: what the fact captioner talks about.

* **Subjects**: the ImageNet classifier on the frame's centre square (7/8 of the short side,
  area-resized to 224: the usual evaluation crop, clearly better than squashing the whole frame
  on the packaged photos). ``encoder.onnx`` is its INT8 convolutional trunk (EfficientNet-Lite0,
  up to the 7x7x1280 head activations); the 1000-way layer, softmax and the sums per noun group
  run here in float (``ClassifierHead``, ``classifier.npz``): 8-bit probabilities would erase the
  small class probabilities a group adds up. Top 3 groups, and a kind word when one class holds
  most of its group.
* **Faces**: OpenCV's Haar frontal-face cascade (shipped inside the OpenCV 4.x wheel). ImageNet
  has no person class, so faces are how people get into captions.
* **Colours, brightness, layout**: HSV rules on a thumbnail; the subject's colour and position
  from the class-activation map (CAM) of the top group (the same classifier weights times the
  7x7 head activations), mapped back into the whole frame.

Faces cost 20-90 ms on a busy CPU core, so they never run in the frame path: the caption worker
(``runtime/caption_worker.py``) runs the whole captioner, faces included, in its own thread.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

from stylize_rt.caption_facts import COLOUR_NAMES, PROBABLE, Facts, NounTable, Subject
from stylize_rt.errors import BadInputError
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend

ENCODER_SIZE = 224
CROP_FRACTION = 224 / 256
COLOUR_MIN_SHARE = 0.12  # a colour must cover this share of the frame to be named
SUBJECT_COLOUR_MIN_SHARE = 0.35  # ... and this share of the CAM's weight to be the subject's colour
KIND_SHARE = 0.5  # a kind word when its class holds this share of its group's probability
ENCODER_OUTPUTS = ("head",)


def crop_box(height: int, width: int) -> tuple[int, int, int]:
    """(y0, x0, side) of the centre square the classifier sees."""
    side = max(1, round(min(height, width) * CROP_FRACTION))
    return (height - side) // 2, (width - side) // 2, side


def crop_for_encoder(image: np.ndarray, size: int = ENCODER_SIZE) -> np.ndarray:
    """HxWx3 uint8 RGB -> size x size x 3: the centre square, area-resized."""
    y, x, side = crop_box(*image.shape[:2])
    crop = image[y : y + side, x : x + side]
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=interp))


# --- colours and brightness ---------------------------------------------------------------
_HUES = ((0, 5, "red"), (5, 21, "orange"), (21, 34, "yellow"), (34, 80, "green"), (80, 95, "teal"),
         (95, 128, "blue"), (128, 148, "purple"), (148, 170, "pink"), (170, 181, "red"))


def colour_map(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW indices into ``COLOUR_NAMES`` (OpenCV HSV: hue 0-180)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    h, s, v = (hsv[..., i].astype(np.int32) for i in range(3))
    out = np.full(h.shape, COLOUR_NAMES.index("gray"), np.int32)
    chroma = (s >= 60) & (v >= 60)
    for lo, hi, name in _HUES:
        out[chroma & (h >= lo) & (h < hi)] = COLOUR_NAMES.index(name)
    brown = chroma & (h < 21) & (v < 170) & (s < 200)
    out[brown | ((h < 21) & (s >= 60) & (v >= 35) & (v < 60))] = COLOUR_NAMES.index("brown")
    grey = ~chroma & ~((h < 21) & (s >= 60) & (v >= 35))
    out[grey & (v >= 200) & (s < 40)] = COLOUR_NAMES.index("white")
    out[grey & (v < 45)] = COLOUR_NAMES.index("black")
    return out


def colour_facts(image: np.ndarray, weights: np.ndarray | None = None) -> tuple[list[str], str, bool, str | None]:
    """-> (dominant colours (<= 2), brightness word, black-and-white?, subject colour or None).

    ``weights`` (HxW, the frame's CAM) picks the subject's colour; it is named only when it
    differs from the frame's main colour (no "blue rocket" from the blue sky)."""
    small = cv2.resize(image, (64, 36) if image.shape[1] > image.shape[0] else (48, 48), interpolation=cv2.INTER_AREA)
    names = colour_map(small)
    counts = np.bincount(names.ravel(), minlength=len(COLOUR_NAMES)) / names.size
    order = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] >= COLOUR_MIN_SHARE][:2]
    colours = [COLOUR_NAMES[i] for i in order] or [COLOUR_NAMES[int(np.argmax(counts))]]
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    gray = bool(np.percentile(hsv[..., 1], 95) < 25)
    luma = float(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).mean())
    brightness = "dark" if luma < 55 else "dim" if luma < 90 else "bright" if luma > 185 else "normal"
    subject_colour = None
    if weights is not None and not gray:
        w = np.clip(cv2.resize(weights.astype(np.float32), (names.shape[1], names.shape[0]),
                               interpolation=cv2.INTER_LINEAR), 0, None)
        if w.sum() > 0:
            hist = np.bincount(names.ravel(), weights=w.ravel(), minlength=len(COLOUR_NAMES)) / w.sum()
            best = int(np.argmax(hist))
            if hist[best] >= SUBJECT_COLOUR_MIN_SHARE and COLOUR_NAMES[best] != colours[0]:
                subject_colour = COLOUR_NAMES[best]
    if gray:
        colours = [c for c in colours if c in ("black", "white", "gray")] or ["gray"]
    return colours, brightness, gray, subject_colour


# --- faces --------------------------------------------------------------------------------
class FaceDetector:
    """Frontal faces with OpenCV's Haar cascade ``haarcascade_frontalface_alt2`` (OpenCV 4.x).

    Settings chosen on the packaged photos (docs/CAPTIONER.md): the frame is shrunk to a
    ``work_side`` px long side and equalised; faces must be >= ``min_face`` of the short side and
    found by ``min_neighbors`` overlapping windows. That finds the astronaut's face and nothing
    on the other 11 photos.
    """

    CASCADE = "haarcascade_frontalface_alt2.xml"

    def __init__(self, work_side: int = 240, scale: float = 1.2, min_neighbors: int = 5, min_face: float = 0.12) -> None:
        path = self.cascade_path()
        if path is None:
            raise BadInputError(f"this OpenCV ({cv2.__version__}) has no Haar cascades (OpenCV 5 dropped them); "
                                "install opencv-python-headless 4.x for faces in captions")
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise BadInputError(f"cannot load the Haar cascade {path}")
        self.work_side, self.scale, self.min_neighbors, self.min_face = work_side, scale, min_neighbors, min_face

    @classmethod
    def cascade_path(cls) -> Path | None:
        root = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if not root or not hasattr(cv2, "CascadeClassifier"):
            return None
        path = Path(root) / cls.CASCADE
        return path if path.is_file() else None

    def __call__(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Face boxes (x, y, w, h) as fractions of the frame."""
        g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        s = min(1.0, self.work_side / max(g.shape))
        g = cv2.resize(g, (max(1, round(g.shape[1] * s)), max(1, round(g.shape[0] * s))), interpolation=cv2.INTER_AREA)
        hh, ww = g.shape
        side = max(20, int(self.min_face * min(hh, ww)))
        if min(hh, ww) < side:
            return []
        found = self.cascade.detectMultiScale(cv2.equalizeHist(g), scaleFactor=self.scale,
                                              minNeighbors=self.min_neighbors, minSize=(side, side))
        return [(x / ww, y / hh, w / ww, h / hh) for x, y, w, h in (tuple(map(float, b)) for b in found)]


# --- the classifier's float tail -------------------------------------------------------------
class ClassifierHead:
    """Head activations [B, L, C] -> ImageNet probabilities [B, classes] and noun-group sums [B, G]."""

    def __init__(self, path: Path, table: NounTable) -> None:
        try:
            with np.load(path) as data:
                self.weight = data["weight"].astype(np.float32)  # [classes, channels]
                self.bias = data["bias"].astype(np.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise BadInputError(f"cannot read classifier weights {path}: {exc}") from None
        if self.weight.shape[0] != table.classes or self.bias.shape != (table.classes,):
            raise BadInputError(f"{path} has {self.weight.shape[0]} classes, the noun table {table.classes}")
        self.one_hot = table.one_hot()

    def probs(self, head: np.ndarray) -> np.ndarray:
        logits = head.mean(axis=1) @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def groups(self, probs: np.ndarray) -> np.ndarray:
        return probs @ self.one_hot


# --- the extractor --------------------------------------------------------------------------
class FactExtractor:
    """frame (HxWx3 uint8 RGB) -> ``Facts``, with the classifier graph and weights of one model folder."""

    def __init__(self, encoder_path: Path, classifier_path: Path, table: NounTable, threads: int = 1,
                 providers: tuple[str, ...] = ("CPUExecutionProvider",), faces: bool = True, encoder=None) -> None:
        """``encoder``: the classifier graph already open elsewhere (a Triton server's model)."""
        self.table = table
        if encoder is None:
            encoder = OnnxRuntimeBackend(encoder_path, threads=threads, providers=providers)
            names = [o.name for o in encoder.outputs]
            if names[: len(ENCODER_OUTPUTS)] != list(ENCODER_OUTPUTS):
                encoder.close()
                raise BadInputError(f"{encoder_path} outputs {names}, expected {list(ENCODER_OUTPUTS)}")
        self.encoder = encoder
        self.head = ClassifierHead(classifier_path, table)
        self.faces: FaceDetector | None = None
        if faces:
            if FaceDetector.cascade_path() is None:
                print(f"stylize-rt: warning: OpenCV {cv2.__version__} has no Haar cascades: captions will not "
                      "mention people (install opencv-python-headless 4.x)", file=sys.stderr)
            else:
                self.faces = FaceDetector()
        self.last_timings_ms: dict[str, float] = {}

    def classify(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The classifier's outputs for one frame (probs [classes], groups [G], head [49, C])."""
        head = self.encoder.infer({"image": crop_for_encoder(image)[None]})["head"]
        probs = self.head.probs(head)
        return {"probs": probs[0], "groups": self.head.groups(probs)[0], "head": head[0]}

    def cam(self, head: np.ndarray, probs: np.ndarray, group: int) -> np.ndarray:
        """7x7 class-activation map of a group: its 3 likeliest classes, probability-weighted."""
        members = self.table.members[group]
        top = members[np.argsort(-probs[members], kind="stable")[:3]]
        w = probs[top] / max(float(probs[top].sum()), 1e-12)
        cam = np.maximum(head @ self.head.weight[top].T, 0) @ w
        side = int(round(np.sqrt(len(cam))))
        return cam.reshape(side, side)

    def __call__(self, image: np.ndarray, faces: bool = True) -> Facts:
        t0 = time.perf_counter()
        enc = self.classify(image)
        t1 = time.perf_counter()
        probs, groups = enc["probs"], enc["groups"]
        order = np.argsort(-groups, kind="stable")[:3]
        subjects = []
        for g in order:
            members = self.table.members[int(g)]
            best = int(members[np.argmax(probs[members])])
            kind = self.table.class_kind[best] if probs[best] >= KIND_SHARE * groups[g] else None
            subjects.append(Subject(int(g), float(groups[g]), kind))
        cam = self.cam(enc["head"], probs, int(order[0]))
        h, w = image.shape[:2]
        y0, x0, side = crop_box(h, w)
        full = np.zeros((h, w), np.float32)  # the CAM lives on the centre square: place it in the frame
        full[y0 : y0 + side, x0 : x0 + side] = cv2.resize(cam.astype(np.float32), (side, side),
                                                          interpolation=cv2.INTER_LINEAR)
        colours, brightness, gray, subject_colour = colour_facts(image, full)
        t2 = time.perf_counter()
        boxes = self.faces(image) if (faces and self.faces is not None) else []
        t3 = time.perf_counter()
        if boxes:
            big = max(boxes, key=lambda b: b[2] * b[3])
            cx, closeup = big[0] + big[2] / 2, big[3] > 0.3
        elif subjects[0].prob < PROBABLE:  # no subject to place: an unsure frame has no layout to speak of
            cx, closeup = 0.5, False
        else:
            mass = full.sum(axis=0)
            cx = float((mass * (np.arange(w) + 0.5) / w).sum() / max(float(mass.sum()), 1e-12)) if mass.sum() > 0 else 0.5
            closeup = bool((cam > 0.5 * cam.max()).mean() > 0.45) if cam.max() > 0 else False
        self.last_timings_ms = {"encoder": 1e3 * (t1 - t0), "colour_layout": 1e3 * (t2 - t1), "faces": 1e3 * (t3 - t2)}
        return Facts(subjects=subjects, faces=len(boxes), colours=colours, subject_colour=subject_colour,
                     brightness=brightness, gray=gray, position="left" if cx < 0.4 else "right" if cx > 0.6 else "middle",
                     closeup=closeup)

    def close(self) -> None:
        self.encoder.close()


__all__ = ["FactExtractor", "FaceDetector", "ClassifierHead", "colour_facts", "colour_map", "crop_for_encoder", "crop_box", "ENCODER_SIZE"]
