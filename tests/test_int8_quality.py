"""benchmarks.int8_quality: the floor record of an INT8 graph, per style, on a tiny real export."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from stylize_rt import contract  # noqa: E402
from stylize_rt.benchmarks.int8_quality import ship_int8  # noqa: E402
from stylize_rt.export.metadata import read_metadata  # noqa: E402
from stylize_rt.export.onnx_export import export_checkpoint  # noqa: E402
from stylize_rt.nets.checkpoint import save_generator  # noqa: E402
from stylize_rt.nets.generator import Generator, GeneratorConfig  # noqa: E402

TINY = {"channels": [4, 8, 8], "res_blocks": 1, "stem_kernel": 3, "stem": "unshuffle", "padding": "reflect",
        "n_styles": 2}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8_quality")
    torch.manual_seed(0)
    ckpt = save_generator(root / "ckpt", Generator(GeneratorConfig.from_dict(TINY)).eval(),
                          {"step": 1, "styles": ["mosaic", "waves"]})
    fp32 = export_checkpoint(ckpt, root / "generator.onnx", io_layout="uint8_nhwc", precision="fp32",
                             log=lambda _m: None).path
    return ckpt, fp32, root


def test_record_has_noise_and_anchored_shift_flicker_per_style_and_passes_only_all_three(tiny_model):
    ckpt, fp32, root = tiny_model
    lines = []
    record = ship_int8(ckpt, fp32, root / "int8.onnx", log=lines.append)
    assert set(record["per_style"]) == {"mosaic", "waves"}
    assert record["floor"] == {"psnr_db": 30.0, "flicker": 1.5, "flicker_shift": 1.5}
    for s in record["per_style"].values():
        assert s["flicker_shift"] > 0 and s["flicker_shift_fp32"] > 0
        assert s["passed"] == (s["psnr_db"] >= 30.0 and s["flicker"] <= 1.5 and s["flicker_shift"] <= 1.5)
    assert record["flicker_shift_max"] == max(s["flicker_shift"] for s in record["per_style"].values())
    assert record["passed"] == all(s["passed"] for s in record["per_style"].values())
    assert "noise /" in lines[-1] and "shift" in lines[-1]
    assert json.loads(read_metadata(root / "int8.onnx")[contract.INT8_QUALITY]) == record


def test_an_unreachable_floor_fails_and_says_so(tiny_model):
    ckpt, fp32, root = tiny_model
    lines = []
    record = ship_int8(ckpt, fp32, root / "strict.onnx", min_psnr=200.0, log=lines.append)
    assert not record["passed"] and "FAILED (auto precision keeps FP32)" in lines[-1]
    from stylize_rt.runtime.backends.registry import int8_meets_floor

    assert not int8_meets_floor(root / "strict.onnx")
