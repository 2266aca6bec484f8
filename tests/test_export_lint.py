"""TensorRT readiness lint on hand-built graphs (each a known parser rejection) and on ours."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from stylize_rt.export.trt_lint import lint_file, lint_model, parser_check  # noqa: E402


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _image(name="x", elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, ["batch", 3, "height", "width"])


def _errors(model):
    return [f for f in lint_model(model).findings if f.level == "error"]


def test_resize_tf_crop_and_resize_is_flagged():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node(
        "Resize", ["x", "", "scales"], ["y"], name="up", mode="linear", coordinate_transformation_mode="tf_crop_and_resize"
    )
    model = _model([node], [_image()], [_image("y")], [scales])
    onnx.checker.check_model(model)  # legal ONNX, illegal for TensorRT
    errors = _errors(model)
    assert len(errors) == 1 and errors[0].node == "up" and "tf_crop_and_resize" in errors[0].message


def test_unsupported_pad_mode_and_dynamic_pad_axes_are_flagged():
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    shape = helper.make_node("Shape", ["x"], ["dims"], name="dims_of_x")
    axes = helper.make_node("Slice", ["dims", "start", "end"], ["axes"], name="axes_at_runtime")
    starts = numpy_helper.from_array(np.array([0], np.int64), "start")
    ends = numpy_helper.from_array(np.array([4], np.int64), "end")
    bad_mode = helper.make_node("Pad", ["x", "pads"], ["p"], name="pad_mode", mode="symmetric")
    pads4 = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads4")
    bad_axes = helper.make_node("Pad", ["p", "pads4", "", "axes"], ["y"], name="pad_axes", mode="reflect")
    model = _model([shape, axes, bad_mode, bad_axes], [_image()], [_image("y")], [pads, starts, ends, pads4], opset=18)
    found = {(f.node, f.level) for f in lint_model(model).findings}
    messages = " ".join(f.message for f in _errors(model))
    assert ("pad_mode", "error") in found and "'symmetric'" in messages
    assert ("pad_axes", "error") in found and "axes must be an initializer" in messages


def test_unsupported_op_opset_and_asymmetric_qdq_are_flagged():
    det = helper.make_node("Hardmax", ["x"], ["h"], name="hm")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zp = numpy_helper.from_array(np.array(3, np.int8), "zp")
    q = helper.make_node("QuantizeLinear", ["h", "s", "zp"], ["q"], name="q")
    dq = helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq")
    model = _model([det, q, dq], [_image()], [_image("y")], [scale, zp], opset=21)
    errors = _errors(model)
    assert any(f.node == "hm" for f in errors)
    assert any("opset 21" in f.message for f in errors)
    assert {f.node for f in errors if "zero point" in f.message} == {"q", "dq"}


def test_mixed_type_instance_norm_is_flagged():
    cast = helper.make_node("Cast", ["x"], ["xh"], name="to_half", to=TensorProto.FLOAT16)
    scale = numpy_helper.from_array(np.ones(3, np.float32), "scale")
    bias = numpy_helper.from_array(np.zeros(3, np.float32), "bias")
    norm = helper.make_node("InstanceNormalization", ["xh", "scale", "bias"], ["y"], name="norm16")
    model = _model([cast, norm], [_image()], [_image("y", TensorProto.FLOAT16)], [scale, bias])
    assert any(f.node == "norm16" and "all FP32 or all FP16" in f.message for f in _errors(model))


def test_our_graphs_pass_and_dynamic_dims_need_a_profile(tiny_onnx):
    for path in tiny_onnx.values():
        report = lint_file(path, run_parser=False)
        assert report.ok, report.lines()
        assert {"Pad", "Resize", "InstanceNormalization", "Conv"} <= set(report.ops)
        assert any("optimization profile" in f.message for f in report.findings if f.level == "info")
        assert report.lines()[0].startswith("TensorRT lint: ready")


@pytest.mark.tensorrt
def test_tensorrt_parser_accepts_our_graphs(tiny_onnx):
    for path in tiny_onnx.values():
        ok, errors = parser_check(path)
        assert ok, errors


def _permute_then_cast_graph() -> onnx.ModelProto:
    """uint8 NHWC -> Transpose -> Cast -> Sigmoid: the order a permute-before-cast trace gives."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.UINT8, ["batch", "height", "width", 3])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Cast", ["nchw"], ["as_float"], to=TensorProto.FLOAT, name="to_float"),
        helper.make_node("Sigmoid", ["as_float"], ["output"], name="squash"),
    ]
    graph = helper.make_graph(nodes, "permute_then_cast", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_uint8_input_must_feed_a_cast_and_export_fixes_it(tiny_generator):
    """TensorRT lets a uint8 input feed only a Cast (TensorRT#3985): lint flags it, the fix-up mends it."""
    from stylize_rt.export.onnx_export import _trace, cast_uint8_inputs_first
    from stylize_rt.export.parity import ort_session

    assert _errors(_trace(tiny_generator, "uint8_nhwc")) == []  # our wrapper casts first
    bad = _permute_then_cast_graph()
    errors = _errors(bad)
    assert [f.op for f in errors] == ["Transpose"] and "must feed a Cast" in errors[0].message
    fixed = onnx.ModelProto()
    fixed.CopyFrom(bad)
    assert cast_uint8_inputs_first(fixed) == 1
    onnx.checker.check_model(fixed, full_check=True)
    assert _errors(fixed) == []
    frames = np.random.default_rng(1).integers(0, 256, (2, 23, 35, 3), dtype=np.uint8)
    a = ort_session(bad, optimize=False).run(None, {"input": frames})[0]
    b = ort_session(fixed, optimize=False).run(None, {"input": frames})[0]
    assert np.array_equal(a, b)
