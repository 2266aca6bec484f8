"""Optimization-profile shapes: presets, --min/--opt/--max parsing, layouts, range checks."""

from __future__ import annotations

import pytest

from stylize_rt.engines.shapes import (
    InputInfo,
    check_shape,
    parse_batch,
    parse_frame_size,
    parse_shape_arg,
    read_onnx_info,
    resolve_profile,
)
from stylize_rt.errors import BadInputError

NHWC = InputInfo("input", "uint8", (None, None, None, 3))
NCHW = InputInfo("input", "float32", (None, 3, None, None))


def test_presets_and_sizes():
    assert parse_frame_size("720p") == (1280, 720)
    assert parse_frame_size("1080P") == (1920, 1080)
    assert parse_frame_size("4k") == (3840, 2160)
    assert parse_frame_size("641x359") == (641, 359)
    for bad in ("720", "hd", "0x10", "12x", "1x2x3"):
        with pytest.raises(BadInputError):
            parse_frame_size(bad)


def test_single_preset_is_a_fixed_profile_in_each_layout():
    nhwc = resolve_profile([NHWC], ["720p"])["input"]
    assert nhwc.min == nhwc.opt == nhwc.max == (1, 720, 1280, 3)
    nchw = resolve_profile([NCHW], ["720p"])["input"]
    assert nchw.min == nchw.opt == nchw.max == (1, 3, 720, 1280)


def test_preset_range_tunes_for_the_largest():
    p = resolve_profile([NHWC], ["1080p", "480p"], batch="1:2:4")["input"]
    assert p.min == (1, 480, 854, 3)
    assert p.opt == (2, 1080, 1920, 3)
    assert p.max == (4, 1080, 1920, 3)


def test_default_profile_covers_what_users_feed():
    """``auto`` builds the default profile: it must take the frames the CPU path takes (issue 12, item 17)."""
    p = resolve_profile([NHWC])["input"]
    assert (p.min, p.opt, p.max) == ((1, 16, 16, 3), (1, 720, 1280, 3), (1, 1920, 1920, 3))
    for width, height in [(512, 512), (1080, 1920), (1920, 1080), (640, 360), (256, 256), (16, 16), (1280, 720)]:
        check_shape(resolve_profile([NHWC]), "input", (1, height, width, 3))
        check_shape(resolve_profile([NCHW]), "input", (1, 3, height, width))
    with pytest.raises(BadInputError, match="outside the engine's profile"):
        check_shape(resolve_profile([NHWC]), "input", (1, 2160, 3840, 3))


def test_explicit_shapes_override_presets_and_accept_trtexec_syntax():
    p = resolve_profile([NCHW], ["720p"], min_shape="input:1x3x16x16", max_shape="2048x2048")["input"]
    assert p.min == (1, 3, 16, 16) and p.opt == (1, 3, 720, 1280) and p.max == (1, 3, 2048, 2048)
    assert parse_shape_arg("1x720x1280x3", ["input"]) == {"input": (1, 720, 1280, 3)}
    assert parse_shape_arg("720p", ["input"]) == {"input": (1280, 720)}


def test_one_explicit_end_stretches_the_defaults():
    p = resolve_profile([NHWC], min_shape="1440p")["input"]
    assert p.min == p.opt == (1, 1440, 2560, 3) and p.max == (1, 1920, 2560, 3)
    p = resolve_profile([NHWC], max_shape="480p")["input"]
    assert p.min == (1, 16, 16, 3) and p.opt == p.max == (1, 480, 854, 3)
    p = resolve_profile([NHWC], opt_shape="4k")["input"]
    assert p.min == (1, 16, 16, 3) and p.opt == p.max == (1, 2160, 3840, 3)


def test_bad_shapes_are_one_line_errors():
    with pytest.raises(BadInputError, match="no input 'x'"):
        parse_shape_arg("x:1x3x8x8", ["input"])
    with pytest.raises(BadInputError, match="NAME:SHAPE"):
        parse_shape_arg("1x3x8x8", ["a", "b"])
    with pytest.raises(BadInputError, match="min <= opt <= max"):
        resolve_profile([NHWC], min_shape="1080p", max_shape="720p")
    with pytest.raises(BadInputError, match="rank"):
        resolve_profile([NHWC], min_shape="1x3x8")
    with pytest.raises(BadInputError, match="fixed"):
        resolve_profile([NHWC], min_shape="1x720x1280x4", opt_shape="720p", max_shape="720p")
    with pytest.raises(BadInputError):
        parse_batch("4:2")
    assert parse_batch("1:8") == (1, 8, 8) and parse_batch(3) == (3, 3, 3)


def test_static_inputs_need_no_profile_and_fixed_dims_are_kept():
    static = InputInfo("input", "float32", (1, 3, 256, 256))
    assert resolve_profile([static]).inputs == ()
    fixed_batch = InputInfo("input", "uint8", (1, None, None, 3))
    assert resolve_profile([fixed_batch], ["720p"])["input"].max == (1, 720, 1280, 3)
    with pytest.raises(BadInputError, match="fixed dimension"):
        resolve_profile([fixed_batch], ["720p"], batch="2")


def test_check_shape_names_the_fix():
    profile = resolve_profile([NHWC], ["360p", "720p"])
    check_shape(profile, "input", (1, 500, 700, 3))
    with pytest.raises(BadInputError, match=r"outside the engine's profile.*--max 1x1080x1920x3"):
        check_shape(profile, "input", (1, 1080, 1920, 3))


def test_read_onnx_info_both_layouts(tiny_onnx):
    info = read_onnx_info(tiny_onnx["uint8_nhwc"])
    assert info.inputs[0].name == "input" and info.inputs[0].dtype == "uint8"
    assert info.inputs[0].layout == "nhwc" and info.metadata["stylize_rt.io_layout"] == "uint8_nhwc"
    nchw = read_onnx_info(tiny_onnx["float32_nchw"]).inputs[0]
    assert nchw.layout == "nchw" and nchw.shape[1] == 3 and nchw.shape[2] is None


def test_read_onnx_info_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf" * 10)
    with pytest.raises(BadInputError, match="cannot read ONNX"):
        read_onnx_info(bad)
    with pytest.raises(BadInputError, match="not found"):
        read_onnx_info(tmp_path / "missing.onnx")
