"""The torch backend on a multi-style checkpoint: the embedded ``styles6`` folder run by PyTorch
against its shipped ``generator.onnx`` in ONNX Runtime (issue 13 item 2: one contract, every backend).

The torch backend must present the same control inputs and style names as the exported graph and
compute the same pixels: within 1 uint8 level of ONNX Runtime (max abs difference; the parity
suite's FP32 bound), strength 0 giving the input exactly. The staged CUDA path with controls is
tested on the CPU in ``test_torch_backend_graphs.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stylize_rt import contract  # noqa: E402
from stylize_rt.errors import BadInputError  # noqa: E402
from stylize_rt.imageio import read_image, write_image  # noqa: E402
from stylize_rt.models import MODELS_DIR  # noqa: E402
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from stylize_rt.runtime.backends.torch_backend import TorchBackend, cpu_has_fast_bf16  # noqa: E402
from stylize_rt.runtime.style_controls import StyleControls, one_hot, parse_mix  # noqa: E402
from stylize_rt.runtime.stylizer import Stylizer  # noqa: E402

STYLES6 = MODELS_DIR / "styles6"
NAMES = ["mosaic", "stained_glass", "brush", "hatching", "waves", "pointillism"]
N = len(NAMES)

pytestmark = pytest.mark.skipif(not (STYLES6 / contract.CHECKPOINT_ONNX).is_file(),
                                reason="the embedded styles6 model is not in this checkout")


def photo(h: int = 53, w: int = 75, seed: int = 0) -> np.ndarray:
    """Photo-like (smooth gradients, saturated patches, a little noise), odd-sized."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([60 + 150 * xx / w, 40 + 120 * yy / h, 120 + 60 * np.sin((xx + yy + 9 * seed) / 9)], -1)
    img[h // 4 : h // 2, w // 3 : 2 * w // 3] = (210, 50, 40)
    img[2 * h // 3 :, : w // 4] = (30, 90, 200)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def controls(style, strength=None, keep=None) -> dict[str, np.ndarray]:
    """Control feeds for ``len(style)`` frames; ``style``: rows of weights (or style indices)."""
    weights = np.array([np.eye(N)[s] if np.ndim(s) == 0 else s for s in style], np.float32)
    n = len(weights)
    return {contract.INPUT_STYLE: weights,
            contract.INPUT_STRENGTH: np.asarray(np.ones(n) if strength is None else strength, np.float32),
            contract.INPUT_PRESERVE_COLOR: np.asarray(np.zeros(n) if keep is None else keep, np.float32)}


@pytest.fixture(scope="module")
def backends():
    torch.set_num_threads(1)
    be_torch = TorchBackend(STYLES6, device="cpu", threads=1, warmup=0)
    be_ort = OnnxRuntimeBackend(STYLES6 / contract.CHECKPOINT_ONNX, threads=1, warmup=0)
    yield be_torch, be_ort
    be_torch.close()
    be_ort.close()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.stack([photo(seed=i) for i in range(2)])


def both(backends, feeds) -> tuple[np.ndarray, np.ndarray, int]:
    be_torch, be_ort = backends
    got, want = be_torch.infer(feeds)["output"], be_ort.infer(feeds)["output"]
    assert got.dtype == np.uint8 and got.shape == want.shape == feeds[contract.INPUT_IMAGE].shape
    return got, want, int(np.abs(got.astype(int) - want.astype(int)).max())


def test_presents_the_exported_graphs_inputs_and_style_names(backends):
    be_torch, be_ort = backends
    assert be_torch.inputs == be_ort.inputs  # names, dtypes, shapes: input, style [?, 6], strength, preserve_color
    assert [s.name for s in be_torch.inputs] == [contract.INPUT_IMAGE, *contract.CONTROL_INPUTS]
    assert be_torch.outputs == be_ort.outputs
    assert be_torch.metadata[contract.STYLES] == be_ort.metadata[contract.STYLES]
    assert be_torch.metadata[contract.IO_LAYOUT] == be_ort.metadata[contract.IO_LAYOUT] == "uint8_nhwc"
    a, b = Stylizer(be_torch), Stylizer(be_ort)
    assert a.styles == b.styles == NAMES and a.multi_style and b.multi_style


@pytest.mark.parametrize("style", range(N), ids=NAMES)
def test_each_style_matches_onnx_runtime(backends, frames, style):
    got, _, diff = both(backends, {contract.INPUT_IMAGE: frames, **controls([style, style])})
    assert diff <= 1, f"{NAMES[style]}: max abs diff {diff} vs ONNX Runtime"
    if style:  # the style input is used: every style differs from style 0
        first = backends[0].infer({contract.INPUT_IMAGE: frames, **controls([0, 0])})["output"]
        assert np.abs(got.astype(float) - first).mean() > 3.0


@pytest.mark.parametrize("case", ["mix", "strength0", "strength0.5", "preserve_color", "all"])
def test_blend_strength_and_colour_match_onnx_runtime(backends, frames, case):
    mix = np.eye(N)[0] * 0.6 + np.eye(N)[4] * 0.4  # mosaic=0.6, waves=0.4
    feeds = {"mix": controls([mix, mix]), "strength0": controls([1, 4], strength=[0, 0]),
             "strength0.5": controls([1, 4], strength=[0.5, 0.5]), "preserve_color": controls([2, 3], keep=[1, 1]),
             "all": controls([mix, 5], strength=[0.5, 0.8], keep=[1, 0])}[case]
    got, _, diff = both(backends, {contract.INPUT_IMAGE: frames, **feeds})
    assert diff <= 1, f"{case}: max abs diff {diff} vs ONNX Runtime"
    if case == "strength0":
        assert np.array_equal(got, frames), "strength 0 gives the input exactly"


def test_per_frame_controls_in_one_batch(backends):
    be_torch, _ = backends
    x = np.stack([photo(seed=i) for i in range(4)])
    feeds = {contract.INPUT_IMAGE: x, **controls([0, 4, np.full(N, 1 / N), 3], strength=[1, 0.5, 1, 0.0],
                                                 keep=[0, 1, 0, 1])}
    got, _, diff = both(backends, feeds)
    assert diff <= 1
    for i in range(4):  # a frame's result does not depend on its neighbours' controls (batched
        # convolutions may round differently: the parity suite's 1 level)
        alone = be_torch.infer({k: v[i : i + 1] for k, v in feeds.items()})["output"]
        assert np.abs(alone[0].astype(int) - got[i]).max() <= 1, f"frame {i}"
    assert np.array_equal(got[3], x[3])


def test_one_row_of_controls_is_applied_to_every_frame_as_in_onnx_runtime(backends, frames):
    got, want, diff = both(backends, {contract.INPUT_IMAGE: frames, **controls([4], strength=[0.7], keep=[1])})
    assert diff <= 1
    row = backends[0].infer({contract.INPUT_IMAGE: frames, **controls([4, 4], strength=[0.7, 0.7], keep=[1, 1])})
    assert np.array_equal(got, row["output"])


def test_stylizer_controls_match_onnx_runtime(backends):
    be_torch, be_ort = backends
    image = photo(61, 83, seed=5)
    for c in (StyleControls(one_hot(NAMES, "waves")), StyleControls(parse_mix(NAMES, "brush=0.3,hatching=0.7"), 0.6),
              StyleControls(one_hot(NAMES, 5), preserve_color=True), StyleControls(strength=0.0)):
        got, want = Stylizer(be_torch)(image, c), Stylizer(be_ort)(image, c)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, c


@pytest.mark.parametrize("name,value", [
    ("style", np.ones((2, 5), np.float32)),  # wrong number of styles
    ("style", np.ones(2, np.float32)),  # wrong rank
    ("strength", np.ones((2, 1), np.float32)),
    ("strength", np.ones(2, np.float64)),  # wrong dtype
    ("preserve_color", None),  # missing
])
def test_bad_controls_give_the_onnx_runtime_backends_one_line_error(backends, frames, name, value):
    feeds = {contract.INPUT_IMAGE: frames, **controls([0, 1])}
    if value is None:
        del feeds[name]
    else:
        feeds[name] = value
    messages = []
    for be in backends:
        with pytest.raises(BadInputError) as info:
            be.infer(feeds)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "\n" not in messages[0], messages


def test_control_rows_that_fit_no_frame_count_are_the_same_one_line_bad_input_on_every_backend(backends, frames):
    feeds = {contract.INPUT_IMAGE: frames, **controls([0, 1, 2])}  # 3 style rows for 2 frames
    for be in backends:  # torch and ONNX Runtime: the shared feed check, exit 2, before any engine runs
        with pytest.raises(BadInputError, match=r"input 'style' has 3 rows for 2 frames") as info:
            be.infer(feeds)
        assert "\n" not in str(info.value)


def test_multi_style_is_uint8_nhwc_only():
    with pytest.raises(BadInputError, match="multi-style checkpoint runs as uint8_nhwc only") as info:
        TorchBackend(STYLES6, device="cpu", threads=1, warmup=0, io_layout="float32_nchw")
    assert "\n" not in str(info.value)


def test_warm_up_runs_with_controls():
    be = TorchBackend(STYLES6, device="cpu", threads=1, warmup=1, warmup_shape=(24, 32))
    assert be.warmup_seconds > 0.0
    be.close()


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no AVX-512-BF16/AMX (bf16 would be emulated)")
def test_bf16_keeps_the_conditional_norms_in_fp32(backends, frames):
    """BF16 convolutions, FP32 norms and controls: the parity suite's reduced-precision bound
    (>= 99% of pixels within 2 levels) against ONNX Runtime's FP32 graph, on every style."""
    be = TorchBackend(STYLES6, device="cpu", threads=1, warmup=0, precision="bf16")
    feeds = {contract.INPUT_IMAGE: np.concatenate([frames] * 3), **controls(range(N), keep=[0, 1] * 3)}
    got, want = be.infer(feeds)["output"], backends[1].infer(feeds)["output"]
    diff = np.abs(got.astype(int) - want.astype(int))
    assert np.mean(diff <= 2) >= 0.99, f"{np.mean(diff <= 2):.4f} within 2 levels (max {diff.max()})"
    be.close()


def test_cli_torch_backend_draws_the_asked_style(tmp_path):
    """``stylize-rt run --backend torch --style waves``: waves (not style 0), as ONNX Runtime draws it."""
    src = tmp_path / "photo.png"
    write_image(src, photo(90, 120, seed=3))
    env = {**{k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}, "OMP_NUM_THREADS": "1"}
    outputs = {}
    for backend, style in (("torch", "waves"), ("onnxruntime", "waves"), ("torch", "mosaic")):
        out = tmp_path / f"{backend}_{style}.png"
        args = ["run", "--engine", str(STYLES6), "--backend", backend, "--fp32", "--threads", "1", "--style", style,
                "--input", str(src), "--output", str(out), "--no-progress"]
        result = subprocess.run([sys.executable, "-m", "stylize_rt", *args], capture_output=True, timeout=180, env=env,
                                stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        outputs[backend, style] = read_image(out).astype(int)
    waves, first = outputs["torch", "waves"], outputs["torch", "mosaic"]
    assert np.abs(waves - outputs["onnxruntime", "waves"]).max() <= 1
    assert np.abs(waves - first).mean() > 3.0, "--style waves drew style 0"
