"""A test stand-in for a multi-style generator graph: the graph contract of stylize_rt.contract
(inputs input/style/strength/preserve_color, metadata styles) around toy arithmetic.

Style k multiplies the frame by a fixed colour gain per channel; the blend, the strength and
the colour preservation are the same operations the real export puts in the graph. Built with
onnx.helper, run by ONNX Runtime: the runtime's controls are tested on a real session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STYLES = ["red", "blue", "grey"]
GAINS = np.array([[1.0, 0.4, 0.4], [0.4, 0.5, 1.0], [0.6, 0.6, 0.6]], np.float32)  # per style, per channel
TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)


def multi_style_stand_in(path: Path, with_controls: bool = True) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_styles = len(STYLES)
    inputs = [helper.make_tensor_value_info("input", TensorProto.UINT8, ["n", "h", "w", 3])]
    inputs += [helper.make_tensor_value_info("style", TensorProto.FLOAT, ["n", n_styles])]
    if with_controls:
        inputs += [helper.make_tensor_value_info("strength", TensorProto.FLOAT, ["n"]),
                   helper.make_tensor_value_info("preserve_color", TensorProto.FLOAT, ["n"])]
    output = helper.make_tensor_value_info("output", TensorProto.UINT8, ["n", "h", "w", 3])
    inits = [numpy_helper.from_array(GAINS, "gains"),
             numpy_helper.from_array(TO_YCC.T.copy(), "to_ycc"),
             numpy_helper.from_array(np.linalg.inv(TO_YCC).T.astype(np.float32), "from_ycc"),
             numpy_helper.from_array(np.array([1.0, 0.0, 0.0], np.float32), "luma_mask"),
             numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "vec_shape"),
             numpy_helper.from_array(np.array([0.0], np.float32), "lo"),
             numpy_helper.from_array(np.array([255.0], np.float32), "hi")]
    nodes = [
        helper.make_node("Cast", ["input"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["style", "gains"], ["gain"]),  # [n, 3]
        helper.make_node("Unsqueeze", ["gain", "axes12"], ["gain4"]),  # [n, 1, 1, 3]
        helper.make_node("Mul", ["x", "gain4"], ["styled"]),
    ]
    inits.append(numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"))
    y = "styled"
    if with_controls:
        nodes += [
            # colour: the stylized luma with the input's chroma, where preserve_color is 1
            helper.make_node("MatMul", ["x", "to_ycc"], ["ycc_in"]),
            helper.make_node("MatMul", ["styled", "to_ycc"], ["ycc_out"]),
            helper.make_node("Mul", ["ycc_out", "luma_mask"], ["y_only"]),
            helper.make_node("Sub", ["one", "luma_mask"], ["chroma_mask"]),
            helper.make_node("Mul", ["ycc_in", "chroma_mask"], ["c_only"]),
            helper.make_node("Add", ["y_only", "c_only"], ["ycc_kept"]),
            helper.make_node("MatMul", ["ycc_kept", "from_ycc"], ["kept"]),
            helper.make_node("Reshape", ["preserve_color", "vec_shape"], ["p4"]),
            helper.make_node("Sub", ["kept", "styled"], ["dk"]),
            helper.make_node("Mul", ["dk", "p4"], ["dk_p"]),
            helper.make_node("Add", ["styled", "dk_p"], ["colored"]),
            # strength: input + s * (stylized - input)
            helper.make_node("Reshape", ["strength", "vec_shape"], ["s4"]),
            helper.make_node("Sub", ["colored", "x"], ["d"]),
            helper.make_node("Mul", ["d", "s4"], ["ds"]),
            helper.make_node("Add", ["x", "ds"], ["blended"]),
        ]
        inits.append(numpy_helper.from_array(np.array([1.0], np.float32), "one"))
        y = "blended"
    nodes += [helper.make_node("Clip", [y, "lo", "hi"], ["clipped"]),
              helper.make_node("Round", ["clipped"], ["rounded"]),
              helper.make_node("Cast", ["rounded"], ["output"], to=TensorProto.UINT8)]
    graph = helper.make_graph(nodes, "multi_style_stand_in", inputs, [output], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = model.metadata_props.add()
    meta.key, meta.value = "stylize_rt.styles", '["red", "blue", "grey"]'
    meta = model.metadata_props.add()
    meta.key, meta.value = "stylize_rt.io_layout", "uint8_nhwc"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
