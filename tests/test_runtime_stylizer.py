"""Stylizer on models we did not export: conventions inferred from the graph, probed, or set by flags."""

from __future__ import annotations

import numpy as np
import pytest

from stylize_rt.errors import BadInputError
from stylize_rt.runtime.backends import OnnxRuntimeBackend
from stylize_rt.runtime.stylizer import Stylizer

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def _save(tmp_path, name, nodes, in_shape, out_shape, initializers=(), inputs=None, elem=TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes, name,
        inputs or [helper.make_tensor_value_info("x", elem, in_shape)],
        [helper.make_tensor_value_info("y", elem, out_shape)],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _const(name, value):
    return helper.make_tensor(name, TensorProto.FLOAT, [], [value])


def invert_255_fixed_224(tmp_path):
    """Like the model zoo's fast-neural-style: float NCHW, 0..255, fixed 1x3x224x224."""
    return _save(tmp_path, "invert255", [helper.make_node("Sub", ["c255", "x"], ["y"])],
                 [1, 3, 224, 224], [1, 3, 224, 224], [_const("c255", 255.0)])


def negate_signed(tmp_path):
    """A tanh-style generator: float NCHW in -1..1 out -1..1 (here y = -x), dynamic size."""
    return _save(tmp_path, "negate", [helper.make_node("Neg", ["x"], ["y"])],
                 ["n", 3, "h", "w"], ["n", 3, "h", "w"])


def identity_unit_nhwc(tmp_path):
    return _save(tmp_path, "unit_nhwc", [helper.make_node("Identity", ["x"], ["y"])],
                 ["n", "h", "w", 3], ["n", "h", "w", 3])


def test_fixed_224_model_in_0_255_is_probed_and_resized_back(tmp_path, frames):
    stylizer = Stylizer(OnnxRuntimeBackend(invert_255_fixed_224(tmp_path), threads=1))
    c = stylizer.convention
    assert (c.order, c.value_range, c.fixed_hw, c.fixed_batch, c.source) == ("nchw", "0-255", (224, 224), 1, "probe")
    out = stylizer.stylize_batch(frames)  # batch of 3 through a batch-1 model, 41x57 through 224x224
    assert out.shape == frames.shape
    # Inverted, up to the blur of two resizes.
    err = np.abs(out.astype(int) - (255 - frames.astype(int)))
    assert np.median(err) < 12


def test_signed_range_model_is_probed(tmp_path, frames):
    stylizer = Stylizer(OnnxRuntimeBackend(negate_signed(tmp_path), threads=1))
    assert stylizer.convention.value_range == "-1-1"
    out = stylizer(frames[0])
    assert np.abs(out.astype(int) - (255 - frames[0].astype(int))).max() <= 1


def test_unit_range_nhwc_model_from_graph(tmp_path, frames):
    stylizer = Stylizer(OnnxRuntimeBackend(identity_unit_nhwc(tmp_path), threads=1))
    assert (stylizer.convention.order, stylizer.convention.value_range) == ("nhwc", "0-1")
    assert np.abs(stylizer(frames[1]).astype(int) - frames[1].astype(int)).max() <= 1


def test_flags_override_inference(tmp_path, frames):
    path = negate_signed(tmp_path)
    stylizer = Stylizer(OnnxRuntimeBackend(path, threads=1), input_range="0-255")
    assert stylizer.convention.value_range == "0-255" and stylizer.convention.source == "flags"
    assert stylizer(frames[0]).max() == 0  # -x in 0..255 clips to black: the flag was obeyed
    with pytest.raises(BadInputError, match="input-range"):
        Stylizer(OnnxRuntimeBackend(path, threads=1), input_range="0-2")


def test_our_metadata_wins(tiny_onnx):
    stylizer = Stylizer(OnnxRuntimeBackend(tiny_onnx["float32_nchw"], threads=1))
    assert stylizer.convention.source == "metadata" and stylizer.convention.value_range == "0-1"
    assert stylizer.layout == "float32_nchw"


def test_not_an_image_model_is_a_clear_error(tmp_path):
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 3, "h", "w"]) for n in ("a", "b")]
    path = tmp_path / "two.onnx"
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    with pytest.raises(BadInputError, match="not an image-to-image model"):
        Stylizer(OnnxRuntimeBackend(path, threads=1))


def test_bad_frames_are_clear_errors(tiny_onnx):
    stylizer = Stylizer(OnnxRuntimeBackend(tiny_onnx["uint8_nhwc"], threads=1))
    with pytest.raises(BadInputError, match="uint8"):
        stylizer(np.zeros((20, 20, 3), np.float32))
    with pytest.raises(BadInputError):
        stylizer(np.zeros((20, 20), np.uint8))


def test_device_frames_need_a_device_backend(tiny_onnx, frames):
    """Host-only backends refuse device frames with a clear error instead of copying silently."""
    from stylize_rt.runtime.backends import OnnxRuntimeBackend
    from stylize_rt.runtime.stylizer import Stylizer

    stylizer = Stylizer(OnnxRuntimeBackend(tiny_onnx["uint8_nhwc"], threads=1))
    with pytest.raises(BadInputError, match="needs a GPU provider"):  # ORT on the CPU provider
        stylizer.stylize_device(frames)
    stylizer.close()
    nchw = Stylizer(OnnxRuntimeBackend(tiny_onnx["float32_nchw"], threads=1))
    with pytest.raises(BadInputError, match="need a uint8 NHWC"):  # would need device-side conversion
        nchw.stylize_device(frames)
    nchw.close()


def test_multi_style_graphs_are_warmed_up_at_open_and_token_models_are_not():
    from stylize_rt import contract
    from stylize_rt.models import get_model

    styles6 = get_model("styles6").directory / contract.CHECKPOINT_ONNX
    warmed = OnnxRuntimeBackend(styles6, threads=1, warmup=2, warmup_shape=(64, 96))
    cold = OnnxRuntimeBackend(styles6, threads=1, warmup=0)
    decoder = OnnxRuntimeBackend(get_model("captioner").directory / contract.CAPTIONER_DECODER_FILE, threads=1)
    try:
        assert warmed.warmup_seconds > 0.0 and cold.warmup_seconds == 0.0
        assert decoder.warmup_seconds == 0.0  # token inputs: nothing meaningful to warm up with
    finally:
        for be in (warmed, cold, decoder):
            be.close()


def test_stack_frames_batches_one_contiguous_frame_without_a_copy():
    from stylize_rt.runtime.frames import stack_frames

    frame = np.zeros((4, 5, 3), np.uint8)
    one = stack_frames([frame])
    assert one.shape == (1, 4, 5, 3) and np.shares_memory(one, frame)
    strided = np.zeros((4, 10, 3), np.uint8)[:, ::2]
    copied = stack_frames([strided])
    assert copied.flags.c_contiguous and not np.shares_memory(copied, strided)
    two = stack_frames([frame, frame + 1])
    assert two.shape == (2, 4, 5, 3) and (two[1] == 1).all() and not np.shares_memory(two, frame)
