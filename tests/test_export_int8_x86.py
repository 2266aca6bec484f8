"""export.int8_x86: a u8 x s8 QDQ graph rewritten so no x86 CPU saturates its integer sums, on a
tiny real quantization and on the shipped captioner classifier."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from onnx import numpy_helper  # noqa: E402
from ort_profile import profiled_nodes  # noqa: E402
from qemu_haswell import here_and_on_haswell, needs_qemu  # noqa: E402

from stylize_rt import contract  # noqa: E402
from stylize_rt.export.graph_links import int_attribute  # noqa: E402
from stylize_rt.export.int8 import WEIGHT_QMAX, quantize_qdq  # noqa: E402
from stylize_rt.export.int8_x86 import exact_on_every_x86  # noqa: E402
from stylize_rt.export.parity import ort_session  # noqa: E402
from stylize_rt.models import get_model  # noqa: E402


class _Tiny(torch.nn.Module):
    """Stem, depthwise, projection, expansion: the conv kinds of EfficientNet-Lite0."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.depthwise = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.project = torch.nn.Conv2d(8, 4, 1)
        self.expand = torch.nn.Conv2d(4, 16, 1)

    def forward(self, x):
        x = torch.nn.functional.relu6(self.stem(x))
        x = torch.nn.functional.relu6(self.depthwise(x))
        return torch.nn.functional.relu6(self.expand(self.project(x)))


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8_x86")
    torch.manual_seed(0)
    path = root / "fp32.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as export/ uses it
        torch.onnx.export(_Tiny().eval(), (torch.rand(1, 3, 16, 16),), str(path), input_names=["x"],
                          output_names=["y"], opset_version=17, dynamo=False)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(8)]
    return quantize_qdq(onnx.load(str(path)), feeds, method="minmax", tensorrt=False), feeds


def _weight_codes(model) -> dict[str, np.ndarray]:
    """conv name -> the int8 codes its weight DQ reads (float convs have none)."""
    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    out = {}
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        dq = producers.get(conv.input[1])
        if dq is not None and dq.op_type == "DequantizeLinear":
            out[conv.name] = numpy_helper.to_array(inits[dq.input[0]])
    return out


def test_dense_convs_move_onto_the_grid_or_into_float_and_depthwise_keeps_8_bits(quantized, tmp_path):
    import copy

    model, feeds = quantized
    before = _weight_codes(model)
    assert all(int(np.abs(c.astype(int)).max()) == 127 for c in before.values())  # per-channel 8-bit
    rewritten = copy.deepcopy(model)
    counts = exact_on_every_x86(rewritten, keep_float=lambda conv: "project" in conv.name)
    assert counts == {"depthwise_8bit": 1, "dense_7bit": 2, "dense_float": 1}
    after = _weight_codes(rewritten)
    assert set(after) == {n for n in before if "project" not in n}
    for name, codes in after.items():
        limit = 127 if "depthwise" in name else WEIGHT_QMAX
        assert int(np.abs(codes.astype(int)).max()) == limit, name
    onnx.checker.check_model(rewritten, full_check=True)
    # ONNX Runtime fuses the integer convs and folds the float one's Cast x scale into a float weight.
    ops = Counter(e["args"]["op_name"] for e in profiled_nodes(rewritten, feeds[0], tmp_path))
    assert ops["QLinearConv"] == 3 and ops["Conv"] == 1
    a, b = ort_session(model), ort_session(rewritten)
    y8, y = a.run(None, feeds[0])[0], b.run(None, feeds[0])[0]
    assert np.abs(y - y8).max() <= 0.05 * np.abs(y8).max()  # the same network, 7-bit steps on two convs


def test_a_conv_without_quantized_weights_is_refused(quantized):
    import copy

    model, _ = quantized
    broken = copy.deepcopy(model)
    conv = next(n for n in broken.graph.node if n.op_type == "Conv")
    broken.graph.initializer.append(numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "float_w"))
    conv.input[1] = "float_w"
    with pytest.raises(ValueError, match="no quantized weight"):
        exact_on_every_x86(broken, keep_float=lambda _c: False)


def _shipped_encoder():
    folder = get_model("captioner").directory
    return folder / contract.CAPTIONER_ENCODER_FILE, json.loads((folder / "model.json").read_text())["classifier"]


def test_the_shipped_classifier_has_no_dense_weight_beyond_the_grid():
    path, record = _shipped_encoder()
    model = onnx.load(str(path))
    groups = {n.name: int_attribute(n, "group", 1) for n in model.graph.node}
    codes = _weight_codes(model)
    dense = [c for name, c in codes.items() if groups[name] == 1]
    assert len(dense) == record["int8"]["layers"]["dense_7bit"] == 16
    assert max(int(np.abs(c.astype(int)).max()) for c in dense) <= WEIGHT_QMAX
    assert sum(1 for n in model.graph.node if n.op_type == "Conv") - len(codes) == record["int8"]["layers"]["dense_float"]
    assert record["check"]["passed"] and record["check"]["int8_same_top_group"] == 12


@pytest.mark.slow
@needs_qemu
def test_the_shipped_classifier_computes_the_same_on_an_avx2_cpu_without_vnni(tmp_path):
    """Its 8-bit dense convs moved the top-noun probabilities by up to 0.38 there (coffee 0.956 ->
    0.581) and changed the moon's noun; rewritten, the head activations match this machine's."""
    from stylize_rt.runtime.caption_facts import crop_for_encoder
    from stylize_rt.training.caption_photos import PHOTOS, load_photo

    path, _ = _shipped_encoder()
    images = np.stack([crop_for_encoder(load_photo(name)) for name in list(PHOTOS)[:2]])
    here, emulated = here_and_on_haswell(path, {"image": images}, tmp_path)
    assert np.abs(here - emulated).max() <= 1e-3 * np.abs(here).max()
