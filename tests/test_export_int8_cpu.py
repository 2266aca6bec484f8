"""export.int8_cpu: ONNX Runtime's CPU form of an INT8 graph gives the same bytes as the TensorRT form.

Run on real exports (a tiny multi-style and a tiny single-style generator, and the shipped styles6)
through ONNX Runtime sessions; a hand-made constant-pad graph checks what must not move.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from ort_profile import profiled_nodes, tail_matmul_runs  # noqa: E402

from stylize_rt import contract  # noqa: E402
from stylize_rt.export.frames import graph_feeds, sample_frames  # noqa: E402
from stylize_rt.export.int8 import calibration_set, quantize_int8  # noqa: E402
from stylize_rt.export.int8_cpu import onnxruntime_cpu_form  # noqa: E402
from stylize_rt.export.int8_cpu_ends import FAST_CONV_OUTPUTS, OUTPUT_SCALE_NAME  # noqa: E402
from stylize_rt.export.metadata import get_metadata  # noqa: E402
from stylize_rt.export.onnx_export import export_checkpoint  # noqa: E402
from stylize_rt.export.parity import ort_session  # noqa: E402
from stylize_rt.export.trt_lint import lint_model  # noqa: E402
from stylize_rt.nets.checkpoint import save_generator  # noqa: E402
from stylize_rt.nets.generator import Generator, GeneratorConfig  # noqa: E402

TINY = {"channels": [4, 8, 8], "res_blocks": 1, "stem_kernel": 3, "stem": "unshuffle", "padding": "reflect"}
SIZES = ((1, 96, 128), (2, 61, 45), (1, 17, 33))


@pytest.fixture(scope="module", params=[2, 1], ids=["two_styles", "one_style"])
def forms(request, tmp_path_factory):
    """(TensorRT-form INT8 ModelProto, its CPU form, moved count, number of styles) of a tiny real export."""
    n_styles = request.param
    root = tmp_path_factory.mktemp(f"int8_cpu_{n_styles}")
    torch.manual_seed(3)
    generator = Generator(GeneratorConfig.from_dict({**TINY, "n_styles": n_styles})).eval()
    card = {"step": 1, "styles": ["mosaic", "waves"][:n_styles]} if n_styles > 1 else {"step": 1}
    ckpt = save_generator(root / "ckpt", generator, card)
    fp32 = export_checkpoint(ckpt, root / "generator.onnx", io_layout="uint8_nhwc", precision="fp32",
                             log=lambda _m: None).path
    trt_form, _report = quantize_int8(onnx.load(str(fp32)), "uint8_nhwc", *calibration_set(None, count=4))
    cpu_form, moved = onnxruntime_cpu_form(trt_form)
    return trt_form, cpu_form, moved, n_styles


def _outputs(model, n_styles: int) -> list[np.ndarray]:
    session = ort_session(model)
    outs = []
    for i, (batch, height, width) in enumerate(SIZES):
        frames, _ = sample_frames(batch, height, width, seed=40 + i, held_out=True)
        for style in (range(n_styles) if n_styles > 1 else [None]):
            feed = graph_feeds(frames, "uint8_nhwc", n_styles, style=style)
            if n_styles > 1:
                feed["strength"][:] = 0.6
                feed["preserve_color"][:] = 1.0 if style else 0.0
            outs.append(session.run(None, feed)[0])
    return outs


def test_the_cpu_form_gives_identical_bytes(forms):
    trt_form, cpu_form, _moved, n_styles = forms
    for want, got in zip(_outputs(trt_form, n_styles), _outputs(cpu_form, n_styles)):
        np.testing.assert_array_equal(got, want)


def test_every_conv_input_quantization_moved_ahead_of_its_pads_and_upsamples(forms):
    trt_form, cpu_form, moved, _n = forms
    convs = sum(1 for n in trt_form.graph.node if n.op_type == "Conv")
    assert moved == convs  # every conv here reads through a reflect pad
    producers = {o: n for n in cpu_form.graph.node for o in n.output}
    fed_from = [producers[n.input[0]].op_type for n in cpu_form.graph.node
                if n.op_type == "QuantizeLinear" and n.input[0] in producers]
    assert "Pad" not in fed_from and "Resize" not in fed_from
    trt_producers = {o: n for n in trt_form.graph.node for o in n.output}
    before = [trt_producers[n.input[0]].op_type for n in trt_form.graph.node
              if n.op_type == "QuantizeLinear" and n.input[0] in trt_producers]
    assert before.count("Pad") == convs  # the TensorRT form quantizes right at each conv
    inits = {i.name: i for i in cpu_form.graph.initializer}
    unsigned = [n for n in cpu_form.graph.node if n.op_type == "QuantizeLinear" and n.input[1] != OUTPUT_SCALE_NAME
                and inits[n.input[2]].data_type == TensorProto.UINT8]
    # and the head's output pair, which now has the widening slice and the depth-to-space between its halves
    assert len(unsigned) == moved + 1 and all(numpy_helper.to_array(inits[n.input[2]]).min() == 128 for n in unsigned)


def test_the_style_tables_are_one_matmul(forms):
    trt_form, cpu_form, _moved, n_styles = forms
    count = sum(1 for n in trt_form.graph.node if n.op_type == "MatMul")
    fused = [n for n in cpu_form.graph.node if n.op_type == "MatMul"]
    if n_styles == 1:
        assert count == len(fused) == 0
        return
    tables = {i.name for i in trt_form.graph.initializer}
    lookups = [n for n in trt_form.graph.node if n.op_type == "MatMul" and n.input[1] in tables]
    assert len(lookups) >= 2 and count == len(lookups) + 1  # the style lookups, and the tail's colour matrix
    assert len(fused) == 1 and fused[0].input[0] == lookups[0].input[0]  # the tail's MatMul went into the If
    splits = [n for n in cpu_form.graph.node if n.op_type == "Split"]
    assert len(splits) == 1 and list(splits[0].output) == [n.output[0] for n in lookups]


def test_the_forms_say_who_reads_them_and_tensorrt_lint_tells_them_apart(forms):
    trt_form, cpu_form, _moved, _n = forms
    assert get_metadata(trt_form)[contract.INT8_TARGET] == contract.INT8_TARGET_TRT
    assert get_metadata(cpu_form)[contract.INT8_TARGET] == contract.INT8_TARGET_ORT
    assert lint_model(trt_form).ok
    assert any("zero point must be 0" in line for line in lint_model(cpu_form).lines())


def test_the_input_model_is_left_alone(forms):
    trt_form, _cpu, _moved, _n = forms
    before = trt_form.SerializeToString()
    onnxruntime_cpu_form(trt_form)
    assert trt_form.SerializeToString() == before


def test_only_the_12_output_head_widens_to_the_fast_kernels_16_with_zero_filters(forms):
    trt_form, cpu_form, _moved, _n = forms
    def conv_weights(model):
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        producers = {o: n for n in model.graph.node for o in n.output}
        return [inits[producers[n.input[1]].input[0]] for n in model.graph.node if n.op_type == "Conv"]
    before, after = conv_weights(trt_form), conv_weights(cpu_form)
    assert [w.shape[0] for w in before] == [4, 8, 8, 8, 8, 8, 4, 12]  # TINY: only the head has 12 to 15
    assert [w.shape[0] for w in after] == [4, 8, 8, 8, 8, 8, 4, FAST_CONV_OUTPUTS]
    # each half of the depth-to-space's rows (6 channels: two RGB pixels) gets two zero filters after it,
    # so its transpose moves 8-byte blocks; the slice after it drops them
    real = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]
    np.testing.assert_array_equal(after[-1][real], before[-1])
    assert not after[-1][[6, 7, 14, 15]].any()
    slices = [n for n in cpu_form.graph.node if n.op_type == "Slice" and "/widened/" in n.name]
    assert [n.name.rsplit("/", 1)[1] for n in slices] == ["Slice_rows"]
    producers = {o: n for n in cpu_form.graph.node for o in n.output}
    swap = producers[slices[0].input[0]]
    assert swap.op_type == "Transpose" and list(swap.attribute[0].ints) == [0, 1, 3, 2, 4]


def test_both_ends_move_bytes_and_run_as_lookups_at_default_controls(forms, tmp_path):
    _trt, cpu_form, _moved, n_styles = forms
    frames, _ = sample_frames(1, 61, 45, seed=8, held_out=True)
    nodes = profiled_nodes(cpu_form, graph_feeds(frames, "uint8_nhwc", n_styles, style=0 if n_styles > 1 else None),
                            tmp_path)
    ops = [e["args"]["op_name"] for e in nodes]
    assert "QLinearLeakyRelu" in ops and "QLinearSigmoid" in ops  # the input's and the output's one-table steps
    def over_frames(event) -> bool:  # not the shape arithmetic's scalars or the 3x3 colour matrix
        return any(np.prod(dims) > 64 for shape in event["args"]["output_type_shape"] for dims in shape.values())
    float_passes = [e["name"] for e in nodes if over_frames(e) and e["args"]["op_name"] in ("Cast", "Div", "Sigmoid",
                                                                                           "Round", "Clip")
                    and any("float" in shape for shape in e["args"]["output_type_shape"])]
    assert not float_passes
    transposes = [e for e in nodes if over_frames(e) and e["args"]["op_name"] == "Transpose"]
    assert len(transposes) >= 4  # the space-to-depth, the layout swaps around the norms, the depth-to-space
    for event in transposes:
        assert all("uint8" in shape for shape in event["args"]["output_type_shape"]), event["name"]


def test_the_control_tail_runs_only_where_a_frame_uses_the_controls(forms, tmp_path):
    trt_form, cpu_form, _moved, n_styles = forms
    ifs = [n for n in cpu_form.graph.node if n.op_type == "If"]
    if n_styles == 1:
        assert not ifs  # no controls, no tail
        return
    assert len(ifs) == 1
    frames, _ = sample_frames(2, 61, 45, seed=7, held_out=True)
    plain = graph_feeds(frames, "uint8_nhwc", n_styles, style=1)
    mixed = {k: v.copy() for k, v in plain.items()}
    mixed["strength"][1] = 0.5  # one frame of the batch uses a control: the whole batch takes the tail
    reference, cpu = ort_session(trt_form), ort_session(cpu_form)
    np.testing.assert_array_equal(cpu.run(None, mixed)[0], reference.run(None, mixed)[0])
    want, got = reference.run(None, plain)[0], cpu.run(None, plain)[0]
    assert np.abs(want.astype(int) - got).max() <= 1 and (want == got).mean() >= 0.99  # float rounding only
    assert tail_matmul_runs(cpu_form, plain, tmp_path) == 0
    assert tail_matmul_runs(cpu_form, mixed, tmp_path) == 1


def _pad_q_graph(mode: str) -> onnx.ModelProto:
    """x -> Pad(mode) -> Q -> DQ -> y, symmetric int8: the smallest pattern the rewrite looks at."""
    inits = [
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array(0.02, np.float32), "scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zero"),
    ]
    pad_inputs = ["x", "pads"]
    if mode == "constant":
        inits.append(numpy_helper.from_array(np.array(0.3, np.float32), "fill"))
        pad_inputs.append("fill")
    nodes = [
        helper.make_node("Pad", pad_inputs, ["padded"], mode=mode),
        helper.make_node("QuantizeLinear", ["padded", "scale", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "pad_q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 7, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("mode, moves", [("reflect", 1), ("edge", 1), ("constant", 0)])
def test_only_pads_that_copy_values_move(mode, moves):
    model = _pad_q_graph(mode)
    rewritten, moved = onnxruntime_cpu_form(model)
    assert moved == moves
    x = np.random.default_rng(0).uniform(-3, 3, (1, 2, 5, 6)).astype(np.float32)
    want = ort_session(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(ort_session(rewritten).run(None, {"x": x})[0], want)


def test_the_shipped_cpu_path_is_this_form_and_a_tensorrt_build_refuses_it_in_one_line(tmp_path):
    from stylize_rt.models import get_model

    int8 = get_model("styles6").directory / contract.CHECKPOINT_ONNX_INT8
    meta = get_metadata(onnx.load(str(int8)))
    assert meta[contract.INT8_TARGET] == contract.INT8_TARGET_ORT
    assert json.loads(meta[contract.INT8_QUALITY])["passed"]
    result = subprocess.run([sys.executable, "-m", "stylize_rt", "build-engine", str(int8), "-o",
                             str(tmp_path / "gen.plan"), "--precision", "int8"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ONNX Runtime CPU form" in lines[0] and "--precision int8" in lines[0], result.stderr
    assert not (tmp_path / "gen.plan").exists()


def test_export_cli_writes_the_cpu_form_on_request(tmp_path):
    torch.manual_seed(5)
    ckpt = save_generator(tmp_path / "ckpt", Generator(GeneratorConfig.from_dict({**TINY, "n_styles": 1})).eval(),
                          {"step": 1})
    out = tmp_path / "gen_int8.onnx"
    result = subprocess.run([sys.executable, "-m", "stylize_rt", "export", "generator", str(ckpt), "-o", str(out),
                             "--precision", "int8", "--int8-target", "onnxruntime"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "ONNX Runtime CPU form, 8 quantizations moved" in result.stdout
    assert "tensorrt lint: skipped" in result.stdout
    assert get_metadata(onnx.load(str(out)))[contract.INT8_TARGET] == contract.INT8_TARGET_ORT


def test_the_refusals_advice_works_an_embedded_name_exports_the_tensorrt_form(tmp_path):
    out = tmp_path / "gen8.onnx"
    result = subprocess.run([sys.executable, "-m", "stylize_rt", "export", "generator", "styles6", "-o", str(out),
                             "--precision", "int8"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out))
    assert get_metadata(model)[contract.INT8_TARGET] == contract.INT8_TARGET_TRT and lint_model(model).ok


def test_relus_read_only_by_a_quantization_become_a_clamp_on_its_bytes(forms):
    trt_form, cpu_form, _moved, _n = forms
    before = [n for n in trt_form.graph.node if n.op_type == "Relu"]
    left = [n for n in cpu_form.graph.node if n.op_type == "Relu"]
    clamps = [n for n in cpu_form.graph.node if n.op_type == "Clip" and n.name.endswith("/as_Clip")]
    assert clamps and len(clamps) + len(left) == len(before)
    readers = {}
    for node in cpu_form.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.op_type)
    assert all(set(readers[n.output[0]]) != {"QuantizeLinear"} for n in left)  # e.g. the residual's input
    inits = {i.name: i for i in cpu_form.graph.initializer}
    producers = {o: n for n in cpu_form.graph.node for o in n.output}
    for clip in clamps:  # at the quantization's own zero point, on its 8-bit output
        q = producers[clip.input[0]]
        assert q.op_type == "QuantizeLinear" and clip.input[1] == q.input[2]
        assert inits[q.input[2]].data_type == TensorProto.UINT8
