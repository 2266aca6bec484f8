"""Multi-style generators end to end (issue 13 items 2 and 4): a tiny conditional-instance-norm model is
trained for a few steps, exported with the control inputs, and its real graph runs in ONNX Runtime,
through the Stylizer and through the CLI; a style is added to it through `stylize-rt train style`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from stylize_rt import contract  # noqa: E402
from stylize_rt.engines.shapes import read_onnx_info, resolve_profile  # noqa: E402
from stylize_rt.export.frames import control_feeds, graph_feeds  # noqa: E402
from stylize_rt.export.onnx_export import export_checkpoint, export_generator  # noqa: E402
from stylize_rt.export.parity import ort_session, torch_reference  # noqa: E402
from stylize_rt.export.trt_lint import lint_file  # noqa: E402
from stylize_rt.imageio import read_image, write_image  # noqa: E402
from stylize_rt.nets.checkpoint import load_generator  # noqa: E402
from stylize_rt.nets.generator import CondInstanceNorm, Generator, GeneratorConfig  # noqa: E402
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from stylize_rt.runtime.backends.registry import cpu_form_current  # noqa: E402
from stylize_rt.runtime.style_controls import StyleControls, apply_controls  # noqa: E402
from stylize_rt.runtime.stylizer import Stylizer  # noqa: E402
from stylize_rt.training.trainer import TrainConfig, Trainer  # noqa: E402

STYLES = ("mosaic", "waves", "hatching")
TINY = dict(channels=(4, 8, 8), res_blocks=1, size=48, batch=3, style_size=128, steps=4, perception="random",
            preview_every=0, checkpoint_every=0, log_every=2, progress=False, stability=1.0, stability_shift=2)


def photo(h=45, w=67, seed=0) -> np.ndarray:
    """Photo-like (smooth, moderately saturated) with an edge, so chroma and edges mean something."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grey = 70 + 100 * (xx / w) + 10 * seed
    tint = np.stack([30 * np.sin(yy / 7), 20 * np.cos(xx / 9), -25 * np.sin((xx + yy) / 11)], -1)
    img = grey[..., None] + tint
    img[h // 3 : h // 2, w // 4 : w // 2] = (200, 60, 40)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A trained tiny 3-style checkpoint folder with its exported multi-style graph inside."""
    root = tmp_path_factory.mktemp("multi_style")
    torch.set_num_threads(1)
    config = TrainConfig(styles=STYLES, multi_style=True, style_stability=(1.0, 1.0, 2.0), out=str(root / "run"), **TINY)
    result = Trainer(config).run()
    folder = root / "model"
    shutil.copytree(result.checkpoint, folder)
    for extra in ("discriminator.safetensors", "training_state.pt"):
        (folder / extra).unlink()
    export_checkpoint(folder, folder / contract.CHECKPOINT_ONNX, log=lambda _m: None)
    return folder


def session_run(path, frames, **controls):
    feeds = {contract.INPUT_IMAGE: frames, **controls}
    return ort_session(path).run(None, feeds)[0]


def test_trained_card_and_graph_contract(model):
    card = json.loads((model / contract.CHECKPOINT_CARD).read_text())
    assert card["generator"]["n_styles"] == 3 and card["styles"] == list(STYLES)
    assert card["train"]["multi_style"] and card["perception"] == "random"
    info = read_onnx_info(model / contract.CHECKPOINT_ONNX)
    assert [i.name for i in info.inputs] == [contract.INPUT_IMAGE, *contract.CONTROL_INPUTS]
    shapes = {i.name: i.shape for i in info.inputs}
    assert shapes["style"] == (None, 3) and shapes["strength"] == (None,) and shapes["preserve_color"] == (None,)
    assert json.loads(info.metadata[contract.STYLES]) == list(STYLES)
    assert json.loads(info.metadata[contract.VERIFIED])["passed"]


def test_plain_single_style_layout_is_unchanged():
    """n_styles=1 keeps the affine InstanceNorm keys, so old checkpoints load as they are."""
    keys = set(Generator(GeneratorConfig()).state_dict())
    assert "stem.norm.weight" in keys and "res.0.norm1.bias" in keys and not any(".scale" in k for k in keys)
    assert GeneratorConfig.from_dict({"channels": [16, 32, 32]}).n_styles == 1


def test_parity_of_the_multi_input_graph_in_ort_and_torch(model):
    generator, _ = load_generator(model)
    frames = np.stack([photo(seed=i) for i in range(5)])
    controls = control_feeds(5, 3, seed=4)  # blends, strengths 0..1, colour kept on some frames
    want = torch_reference(generator, frames, "uint8_nhwc", controls)
    got = session_run(model / contract.CHECKPOINT_ONNX, frames, **controls)
    assert got.dtype == np.uint8 and got.shape == frames.shape
    assert np.mean(np.abs(want.astype(int) - got.astype(int)) <= 1) >= 0.999


def test_one_hot_equals_an_equivalent_single_style_model(model, tmp_path):
    """Style k of the multi-style graph == a plain generator whose affine norms hold row k."""
    generator, _ = load_generator(model)
    k = 1
    plain = Generator(GeneratorConfig.from_dict({**generator.config.to_dict(), "n_styles": 1})).eval()
    state = {}
    for key, value in generator.state_dict().items():
        if key.endswith(".scale"):
            state[key[: -len(".scale")] + ".weight"] = value[k]
        elif key.endswith(".shift"):
            state[key[: -len(".shift")] + ".bias"] = value[k]
        else:
            state[key] = value
    plain.load_state_dict(state)
    single = export_generator(plain, tmp_path / "single.onnx", io_layout="uint8_nhwc")
    frames = np.stack([photo(), photo(seed=2)])
    multi = session_run(model / contract.CHECKPOINT_ONNX, frames, **control_feeds(2, 3, style=k))
    alone = ort_session(single).run(None, {"input": frames})[0]
    assert np.mean(np.abs(multi.astype(int) - alone.astype(int)) <= 1) >= 0.999


def test_blends_move_monotonically_from_one_style_to_the_other(model):
    stylizer = Stylizer(OnnxRuntimeBackend(model / contract.CHECKPOINT_ONNX, threads=1))
    assert stylizer.styles == list(STYLES)
    image = photo()
    a, b = stylizer(image, StyleControls((1, 0, 0))).astype(float), stylizer(image, StyleControls((0, 1, 0))).astype(float)
    assert np.abs(a - b).mean() > 0.5  # the two styles differ
    to_a, to_b = [], []
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        out = stylizer(image, StyleControls((1 - t, t, 0))).astype(float)
        to_a.append(np.abs(out - a).mean())
        to_b.append(np.abs(out - b).mean())
    assert all(x <= y + 0.05 for x, y in zip(to_a, to_a[1:])), to_a  # moves away from A ...
    assert all(x >= y - 0.05 for x, y in zip(to_b, to_b[1:])), to_b  # ... and towards B


def test_strength_zero_is_exact_and_the_graph_agrees_with_the_host_arithmetic(model):
    path = model / contract.CHECKPOINT_ONNX
    frames = np.stack([photo(seed=i) for i in range(3)])
    style = np.tile(np.float32([[0.2, 0.5, 0.3]]), (3, 1))
    zero = session_run(path, frames, style=style, strength=np.zeros(3, np.float32),
                       preserve_color=np.float32([0, 1, 0]))
    assert np.array_equal(zero, frames)
    full = session_run(path, frames, style=style, strength=np.ones(3, np.float32), preserve_color=np.zeros(3, np.float32))
    strength, keep = np.float32([0.3, 0.7, 1.0]), np.float32([1, 0, 1])
    got = session_run(path, frames, style=style, strength=strength, preserve_color=keep)
    host = apply_controls(frames, full, strength, keep.astype(bool))
    assert np.abs(got.astype(int) - host.astype(int)).max() <= 1


def ycc_chroma(rgb: np.ndarray) -> np.ndarray:
    m = np.array([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
    return rgb.astype(np.float32) @ m.T


def test_preserve_color_keeps_the_inputs_chroma(model):
    stylizer = Stylizer(OnnxRuntimeBackend(model / contract.CHECKPOINT_ONNX, threads=1))
    image = photo()
    styled = stylizer(image, StyleControls((0, 0, 1)))
    kept = stylizer(image, StyleControls((0, 0, 1), preserve_color=True))
    inside = (kept > 2).all(-1) & (kept < 253).all(-1)  # clipped pixels cannot keep their chroma
    assert inside.mean() > 0.5
    err_kept = np.abs(ycc_chroma(kept) - ycc_chroma(image))[inside]
    err_styled = np.abs(ycc_chroma(styled) - ycc_chroma(image))[inside]
    assert np.percentile(err_kept, 99) <= 1.5 and err_kept.mean() < err_styled.mean()


def run_cli(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "stylize_rt", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def test_cli_controls_on_the_exported_graph(model, tmp_path):
    src = tmp_path / "in.png"
    write_image(src, photo())
    outs = {}
    for name, flags in {"zero": ["--strength", "0"], "hatching": ["--style", "hatching"],
                        "mix": ["--mix", "mosaic=0.5,waves=0.5"], "keep": ["--style", "2", "--preserve-color"]}.items():
        out = tmp_path / f"{name}.png"
        proc = run_cli("run", "--engine", model / contract.CHECKPOINT_ONNX, "--input", src, "--output", out,
                       "--no-progress", *flags)
        assert proc.returncode == 0, proc.stderr
        outs[name] = read_image(out)
    image = read_image(src)
    assert np.array_equal(outs["zero"], image)
    stylizer = Stylizer(OnnxRuntimeBackend(model / contract.CHECKPOINT_ONNX, threads=1))
    assert np.array_equal(outs["hatching"], stylizer(image, StyleControls((0, 0, 1))))
    assert np.array_equal(outs["mix"], stylizer(image, StyleControls((0.5, 0.5, 0))))
    assert np.abs(ycc_chroma(outs["keep"]) - ycc_chroma(image)).mean() < \
        np.abs(ycc_chroma(outs["hatching"]) - ycc_chroma(image)).mean()


def test_bench_times_the_multi_style_graph_beside_a_plain_network_of_its_widths(model, tmp_path):
    """`bench --peer plain`: the same widths as a single-style network in turns with the model (the
    "what the style inputs cost" table of the CPU matrix)."""
    from stylize_rt.recipes.cpu_matrix import style_input_rows

    out = tmp_path / "bench.json"
    proc = run_cli("bench", "--engine", model, "--backends", "onnxruntime", "--precision", "fp32", "--sizes", "64x48",
                   "--iters", "3", "--warmup", "1", "--threads", "1", "--no-peak", "--peer", "plain", "--json", out)
    assert proc.returncode == 0, proc.stderr
    from stylize_rt.benchmarks.harness import BenchRecord

    records = [BenchRecord.from_dict(r) for r in json.loads(out.read_text())["records"]]
    assert {r.network for r in records if r.mode == "model"} == {"model", "plain"}
    table = style_input_rows(records)
    assert table[2].startswith("| 64x48 |") and float(table[2].split("|")[-2]) > 0


def test_tensorrt_lint_and_profile_cover_the_control_inputs(model, tmp_path):
    path = model / contract.CHECKPOINT_ONNX
    report = lint_file(path, run_parser=False)
    assert report.ok and set(report.dynamic_inputs) == {contract.INPUT_IMAGE, *contract.CONTROL_INPUTS}
    profile = resolve_profile(read_onnx_info(path).inputs, shapes=["640x360", "720p"], batch="1:2:4")
    assert profile["input"].min == (1, 360, 640, 3) and profile["input"].max == (4, 720, 1280, 3)
    assert (profile["style"].min, profile["style"].opt, profile["style"].max) == ((1, 3), (2, 3), (4, 3))
    assert (profile["strength"].min, profile["strength"].max) == ((1,), (4,))
    assert profile["preserve_color"].opt == (2,)
    # a graph whose style input lost its fixed width is caught before a build
    import onnx

    graph = onnx.load(str(path))
    dim = next(i for i in graph.graph.input if i.name == "style").type.tensor_type.shape.dim[1]
    dim.dim_param = "n_styles"
    bad = tmp_path / "bad.onnx"
    onnx.save(graph, str(bad))
    assert any("fixed n_styles" in f.message for f in lint_file(bad, run_parser=False).errors)


def test_adding_a_style_trains_only_its_norm_rows(model, tmp_path):
    """In process: the new row starts at the mean of the others and is the only thing that moves."""
    generator, card = load_generator(model)
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    index = generator.add_style()
    assert index == 3 and torch.equal(generator.stem.norm.scale[3], before["stem.norm.scale"].mean(0))
    config = TrainConfig(**{**TINY, "styles": (*STYLES, "tartan"), "multi_style": True, "train_styles": (3,),
                            "norm_only": True, "steps": 2, "out": str(tmp_path / "run"), "lr_g": 1e-2})
    Trainer(config, generator=generator).run()
    moved = False
    for key, value in generator.state_dict().items():
        if key.endswith((".scale", ".shift")):
            assert torch.equal(value[:3], before[key]), key
            moved |= not torch.equal(value[3], before[key].mean(0))
        else:
            assert torch.equal(value, before[key]), key
    assert moved


@pytest.mark.slow
def test_add_style_end_to_end(model, tmp_path):
    """`stylize-rt train style`: only the new norm rows train, the old styles' outputs stay bit-identical,
    the folder is rebuilt atomically and a duplicate name is refused."""
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    frames = np.stack([photo(), photo(seed=3)])
    before = {s: session_run(folder / contract.CHECKPOINT_ONNX, frames, **control_feeds(2, 3, style=s)) for s in range(3)}
    new_style = tmp_path / "plaid.png"
    write_image(new_style, np.kron(np.indices((8, 8)).sum(0) % 2, np.ones((16, 16))).astype(np.uint8)[..., None]
                .repeat(3, -1) * np.uint8([200, 30, 60]))
    proc = run_cli("train", "style", new_style, "--to", folder, "--name", "plaid", "--steps", "3", "--size", "48",
                   "--batch", "2", "--no-progress", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert "added style 'plaid' as style 3 of 4" in proc.stdout and "edge correlation" in proc.stdout
    card = json.loads((folder / contract.CHECKPOINT_CARD).read_text())
    assert card["styles"] == [*STYLES, "plaid"] and card["generator"]["n_styles"] == 4
    assert card["added_styles"][0]["trained_parameters"] == 2 * (4 + 8 + 8 + 8 + 8 + 8 + 4)
    assert "edge_corr_min" in card["added_styles"][0]["quality"]
    path = folder / contract.CHECKPOINT_ONNX
    assert json.loads(read_onnx_info(path).metadata[contract.STYLES])[-1] == "plaid"
    for s in range(3):
        assert np.array_equal(session_run(path, frames, **control_feeds(2, 4, style=s)), before[s]), s
    assert cpu_form_current(folder / contract.CHECKPOINT_ONNX_CPU, path)  # remade: the 4-style graph's, not a stale one
    generator, _ = load_generator(folder)
    assert all(m.scale.shape[0] == 4 for m in generator.modules() if isinstance(m, CondInstanceNorm))
    assert not list(tmp_path.glob(".model.add-*"))  # no work folder left behind
    listing = sorted(p.name for p in folder.iterdir())
    again = run_cli("train", "style", new_style, "--to", folder, "--name", "plaid", "--steps", "1")
    assert again.returncode == 2 and "already has a style named 'plaid'" in again.stderr
    assert sorted(p.name for p in folder.iterdir()) == listing
    single = tmp_path / "single"
    shutil.copytree(model, single)
    cfg = json.loads((single / contract.CHECKPOINT_CARD).read_text())
    cfg["generator"]["n_styles"] = 1
    (single / contract.CHECKPOINT_CARD).write_text(json.dumps(cfg))
    refused = run_cli("train", "style", new_style, "--to", single, "--name", "x", "--steps", "1")
    assert refused.returncode == 2 and "single-style model" in refused.stderr


def test_graph_feeds_match_the_contract():
    feed = graph_feeds(np.zeros((2, 16, 16, 3), np.uint8), "uint8_nhwc", 4, style=2)
    assert feed["style"].tolist() == [[0, 0, 1, 0]] * 2 and feed["strength"].tolist() == [1, 1]
    assert set(graph_feeds(np.zeros((1, 16, 16, 3), np.uint8), "uint8_nhwc")) == {"input"}


def test_conditional_norm_is_the_per_sample_scale_and_shift_of_an_instance_norm():
    """The (1, N*C, H, W) view gives each sample its own style's affine: the same numbers as a plain
    instance norm followed by that sample's scale and shift (and gradients reach every style row)."""
    torch.manual_seed(0)
    norm = CondInstanceNorm(5, 3)
    with torch.no_grad():
        norm.scale.uniform_(0.5, 2.0)
        norm.shift.uniform_(-1.0, 1.0)
    x = torch.randn(4, 5, 9, 7) * 3 + 1
    style = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0.3, 0.7, 0.0]])
    got = norm(x, style)
    want = torch.nn.functional.instance_norm(x) * (style @ norm.scale)[:, :, None, None] + (style @ norm.shift)[:, :, None, None]
    assert torch.allclose(got, want, atol=1e-5)
    got.square().sum().backward()
    assert norm.scale.grad.abs().sum(1).min() > 0 and norm.shift.grad.abs().sum(1).min() > 0


def test_exported_conditional_norms_are_single_instance_norms_with_constant_reshapes(model):
    """Every norm of the multi-style graph is one InstanceNormalization on a [1, -1, 0, 0] view (no
    full-size Mul/Add after it, no per-layer shape arithmetic), and the TensorRT lint says which
    parser path it needs instead of failing it."""
    import onnx

    from stylize_rt.export.norm_reshape import FLATTEN_SHAPE, UNFLATTEN_SHAPE

    graph = onnx.load(model / contract.CHECKPOINT_ONNX).graph
    producers = {out: node for node in graph.node for out in node.output}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    norms = [n for n in graph.node if n.op_type == "InstanceNormalization"]
    assert len(norms) == 2 * 1 + 5  # res blocks x 2 + stem, down1, down2, up1, up2
    for node in norms:
        assert producers[node.input[0]].op_type == "Reshape" and producers[node.input[0]].input[1] == FLATTEN_SHAPE
        assert [c.op_type for c in consumers[node.output[0]]] == ["Reshape"]
        assert consumers[node.output[0]][0].input[1].startswith(UNFLATTEN_SHAPE.format(""))
    assert sum(n.op_type == "Shape" for n in graph.node) < len(norms)  # none left per norm
    report = lint_file(model / contract.CHECKPOINT_ONNX, run_parser=False)
    assert report.ok
    assert sum("native instance norm" in f.message for f in report.findings if f.level == "info") == len(norms)


def test_every_conv_of_the_shipped_int8_graph_runs_quantized(tmp_path):
    """ONNX Runtime fuses each Q/DQ-wrapped conv of the embedded default's INT8 graph into a QLinearConv
    (a Shape reading a conv's quantized output once kept 11 of 12 in float: INT8 ran slower than FP32)."""
    import onnx
    import onnxruntime

    from stylize_rt.models import MODELS_DIR

    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.intra_op_num_threads = 1
    graph = MODELS_DIR / "styles6" / contract.CHECKPOINT_ONNX_INT8
    onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(tmp_path / "optimized.onnx").graph.node]
    convs = sum(n.op_type == "Conv" for n in onnx.load(graph).graph.node)
    assert ops.count("QLinearConv") == convs == 12 and "Conv" not in ops
