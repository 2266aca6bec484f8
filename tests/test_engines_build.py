"""The parts of build_engine that decide things before TensorRT runs: config checks, profiles, FP32 layers."""

from __future__ import annotations

import importlib.util
import types

import pytest

from stylize_rt.contract import FP32_LAYERS, fp32_layers
from stylize_rt.engines.build import BuildConfig, build_engine, matches_node, resolve_build_profile
from stylize_rt.errors import BadInputError, MissingDependencyError

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_config_validation():
    BuildConfig().validate()
    BuildConfig(precision="auto", optimization_level=5, hardware_compatibility="ampere_plus").validate()
    for bad, match in [
        (BuildConfig(precision="bf16"), "unknown precision"),
        (BuildConfig(optimization_level=6), "0..5"),
        (BuildConfig(hardware_compatibility="turing_plus"), "hardware compatibility"),
        (BuildConfig(workspace_mib=0), "workspace"),
    ]:
        with pytest.raises(BadInputError, match=match):
            bad.validate()


def test_profiles_follow_the_onnx_layout(tiny_onnx):
    nhwc = resolve_build_profile(tiny_onnx["uint8_nhwc"], BuildConfig(shapes=["720p"], batch="1:2:4"))
    assert nhwc["input"].opt == (2, 720, 1280, 3)
    nchw = resolve_build_profile(tiny_onnx["float32_nchw"], BuildConfig(min_shape="320x240"))
    item = nchw["input"]
    assert item.min == (1, 3, 240, 320) and item.opt == (1, 3, 720, 1280) and item.max == (1, 3, 1920, 1920)


def test_fp32_layer_names_from_metadata():
    assert fp32_layers({}) == []
    names = fp32_layers({FP32_LAYERS: '["/stem/norm/InstanceNormalization", "/head/Sigmoid"]'})
    assert set(names) == {"/stem/norm/InstanceNormalization", "/head/Sigmoid"}
    for bad in ("not json", '{"a": 1}', "[1, 2]"):
        with pytest.raises(BadInputError, match=FP32_LAYERS):
            fp32_layers({FP32_LAYERS: bad})


def test_layers_match_their_onnx_node_by_exact_name():
    nodes = {"/res/res.0/norm1/InstanceNormalization", "/res/Add", "/Transpose", "/Reshape_1"}
    assert matches_node("/res/res.0/norm1/InstanceNormalization", nodes)
    # Suffixes come from one counter shared by the network: /Transpose_1 is another node's layer
    # (the full-resolution space-to-depth moves), never a helper of /Transpose.
    for other in ("/Transpose_1", "/Transpose_4", "/Reshape_2", "/Reshape_6", "/res/Add_1",
                  "/res/res.0/norm1/InstanceNormalization_2", "/res/res.0/norm2/InstanceNormalization"):
        assert not matches_node(other, nodes), other


class StandInLayer:
    """A TensorRT ILayer stand-in: a name, a type, float outputs whose precision can be pinned."""

    def __init__(self, name, kind="CONVOLUTION", dtype="float16"):
        self.name, self.type, self.num_outputs = name, kind, 1
        self._outputs = [types.SimpleNamespace(dtype=dtype)]
        self.precision = None
        self.output_types = {}

    def get_output(self, j):
        return self._outputs[j]

    def set_output_type(self, j, dtype):
        self.output_types[j] = dtype


def test_fp32_pinning_pins_only_the_named_layers():
    """TensorRT 10 weak typing: the export's FP32 list pins exactly those layers (a stand-in network)."""
    from stylize_rt.engines.build import _pin_fp32_layers

    trt = types.SimpleNamespace(float32="float32", float16="float16", LayerType=types.SimpleNamespace(CAST="CAST"))
    names = ["/Transpose", "/Transpose_1", "/Transpose_2", "/Reshape_1", "/Reshape_2", "/Reshape_6",
             "/stem/norm/InstanceNormalization", "/Cast"]
    layers = [StandInLayer(n, "CAST" if n == "/Cast" else "SHUFFLE") for n in names]
    network = types.SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i])
    pinned = _pin_fp32_layers(trt, network, {"/Transpose", "/Reshape_1", "/stem/norm/InstanceNormalization", "/Cast"})
    assert pinned == 3
    assert [layer.name for layer in layers if layer.precision == "float32"] == [
        "/Transpose", "/Reshape_1", "/stem/norm/InstanceNormalization"]
    assert all(layer.output_types == {0: "float32"} for layer in layers if layer.precision == "float32")


def test_exported_graphs_carry_fp32_layers_that_name_real_nodes(tiny_onnx):
    """What the builder pins must exist in the graph it parses (export writes the list)."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(tiny_onnx["uint8_nhwc"]))
    meta = {p.key: p.value for p in model.metadata_props}
    if FP32_LAYERS not in meta:
        pytest.skip("this export writes no stylize_rt.fp32_layers metadata")
    names = set(fp32_layers(meta))
    nodes = {n.name for n in model.graph.node}
    assert names and names <= nodes, sorted(names - nodes)[:3]
    assert any("InstanceNormalization" in n for n in names)


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here; real builds are in test_engines_tensorrt")
def test_build_without_tensorrt_writes_nothing(tiny_onnx, tmp_path):
    with pytest.raises(MissingDependencyError, match="TensorRT is not installed"):
        build_engine(tiny_onnx["uint8_nhwc"], tmp_path / "gen.plan")
    assert list(tmp_path.iterdir()) == []
