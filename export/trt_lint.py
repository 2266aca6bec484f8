"""TensorRT readiness without TensorRT: every node checked against the ONNX parser's support.

The tables come from onnx-tensorrt's operator support matrix (docs/operators.md; ops that
only newer parsers accept are warnings, not passes), its 10.0 header (opsets 9..20) and the
importer's attribute checks (summarised in the project's TensorRT notes):
Pad modes, Resize coordinate/nearest modes, initializer-only inputs, Q/DQ zero points,
Cast target types, opset range. A finding is an ``error`` (the parser will reject the
graph), a ``warning`` (builds, but slow or not verified) or ``info`` (what the engine
builder must provide, such as optimization profiles for dynamic dimensions).

With the ``tensorrt`` package importable, ``parser_check`` also runs the real parser.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field

import onnx
from onnx import numpy_helper

from stylize_rt import contract
from stylize_rt.errors import first_line
from stylize_rt.gpu.tensorrt import import_tensorrt

# TensorRT 10.0 parses opsets 9..20 (onnx-tensorrt docs/operators.md for 10.0).
MIN_OPSET, MAX_OPSET = 9, 20

# "Y" in onnx-tensorrt's operator support matrix (docs/operators.md).
SUPPORTED_OPS = frozenset(
    ["Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DepthToSpace", "DequantizeLinear", "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "EyeLike", "Flatten", "Floor", "Gather", "GatherElements", "GatherND", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "GRU", "HardSigmoid", "Identity", "If", "ImageScaler", "InstanceNormalization", "IsNaN", "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "Loop", "LRN", "LSTM", "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mul", "Neg", "NonMaxSuppression", "Not", "Or", "Pad", "ParametricSoftplus", "Pow", "PRelu", "QuantizeLinear", "RandomUniform", "RandomUniformLike", "Range", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "RNN", "Round", "ScaledTanh", "Scan", "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape", "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Tile", "TopK", "Transpose", "Unsqueeze", "Upsample", "Where", "Xor"]
)
# Listed as unsupported in older matrices, added by newer parsers: flagged as warnings, to be
# confirmed by the real parser (``parser_check``) rather than assumed either way.
NEWER_OPS = frozenset(
    ["Gelu", "GridSample", "GroupNormalization", "HardSwish", "IsInf", "LayerNormalization", "Mod", "NonZero", "OneHot", "Reciprocal", "RoiAlign", "Shrink", "Trilu", "RandomNormal", "RandomNormalLike"]
)
# Explicitly "N" in the support matrix: the parser rejects these.
UNSUPPORTED_OPS = frozenset(
    ["Bernoulli", "BitShift", "Compress", "ConcatFromSequence", "ConvInteger", "Det", "DynamicQuantizeLinear", "Hardmax", "MatMulInteger", "MaxRoiPool", "MaxUnpool", "MeanVarianceNormalization", "Multinomial", "NegativeLogLikelihoodLoss", "QLinearConv", "QLinearMatMul", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength", "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringNormalizer", "TfIdfVectorizer", "Unique"]
)
PAD_MODES = ("constant", "reflect", "edge", "wrap")
RESIZE_COORD_MODES = ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners")
RESIZE_MODES = ("nearest", "linear", "cubic")
RESIZE_NEAREST_MODES = ("floor", "ceil", "round_prefer_floor", "round_prefer_ceil")
# ONNX TensorProto data types TensorRT has: FLOAT, UINT8, INT8, INT32, INT64, BOOL, FLOAT16, DOUBLE(cast down), BFLOAT16.
TRT_TYPES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 16: "BFLOAT16"}
CAST_TARGETS = {1: "FLOAT", 10: "FLOAT16", 16: "BFLOAT16", 6: "INT32", 7: "INT64", 2: "UINT8", 9: "BOOL", 3: "INT8"}
# Inputs that must be constant (initializer / Constant / folded DequantizeLinear of constants).
CONSTANT_INPUTS = {
    "Conv": {1: "weights W"},
    "ConvTranspose": {1: "weights W"},
    "Pad": {3: "axes"},
    "Slice": {3: "axes"},
    "Squeeze": {1: "axes"},
    "Unsqueeze": {1: "axes"},
    "TopK": {1: "K"},
    "CumSum": {1: "axis"},
}


@dataclass
class Finding:
    level: str  # "error" | "warning" | "info"
    node: str
    op: str
    message: str

    def line(self) -> str:
        where = f"{self.node} ({self.op})" if self.node else "graph"
        return f"  {self.level:7} {where}: {self.message}"


@dataclass
class LintReport:
    ops: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    dynamic_inputs: dict[str, list[str]] = field(default_factory=dict)
    parser: str = "not run (tensorrt is not installed)"

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(self.ops.items()))
        verdict = "ready" if self.ok else f"NOT ready ({len(self.errors)} errors)"
        out = [f"TensorRT lint: {verdict}; ops: {ops}"]
        out += [f.line() for f in self.findings]
        out.append(f"  TensorRT parser: {self.parser}")
        return out


def _attr(node, name: str, default):
    for attribute in node.attribute:
        if attribute.name == name:
            value = onnx.helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def lint(model) -> LintReport:
    """Check an ONNX ``ModelProto`` for what TensorRT's ONNX parser supports."""
    report = LintReport()
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        report.findings.append(Finding("error", "", "", f"opset {opset} outside TensorRT 10's {MIN_OPSET}..{MAX_OPSET}"))
    for domain in {o.domain for o in model.opset_import} - {"", "ai.onnx"}:
        report.findings.append(Finding("warning", "", "", f"custom domain {domain!r}: needs a TensorRT plugin"))

    constants = {i.name for i in graph.initializer}
    producers = {}
    for node in graph.node:
        for out in node.output:
            producers[out] = node
    for node in graph.node:
        if node.op_type == "Constant":
            constants.update(node.output)

    def is_constant(name: str, depth: int = 0) -> bool:
        if name in constants:
            return True
        node = producers.get(name)
        # TensorRT folds DequantizeLinear / Cast / Identity of constants (QDQ weights, FP16 casts).
        if node is None or depth > 4 or node.op_type not in ("DequantizeLinear", "QuantizeLinear", "Cast", "Identity"):
            return False
        return all(is_constant(i, depth + 1) for i in node.input if i)

    for value in list(graph.input) + list(graph.output):
        elem = value.type.tensor_type.elem_type
        if elem not in TRT_TYPES:
            report.findings.append(Finding("error", "", "", f"IO tensor {value.name} has ONNX type {elem}, not a TensorRT type"))
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            report.dynamic_inputs[value.name] = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    _check_uint8_io(graph, producers, report)
    check_control_inputs(graph, report)
    for name, dims in report.dynamic_inputs.items():
        report.findings.append(
            Finding("info", "", "", f"input {name} has dynamic dims {dims}: the engine needs an optimization profile (min/opt/max)")
        )

    for node in graph.node:
        op = node.op_type
        report.ops[op] = report.ops.get(op, 0) + 1
        name = node.name or f"<unnamed {op}>"
        if node.domain not in ("", "ai.onnx"):
            continue
        if op in UNSUPPORTED_OPS:
            report.findings.append(Finding("error", name, op, "not supported by the TensorRT ONNX parser"))
            continue
        if op in NEWER_OPS:
            report.findings.append(Finding("warning", name, op, "only newer TensorRT parsers support it; confirm with the parser"))
        elif op not in SUPPORTED_OPS:
            report.findings.append(Finding("error", name, op, "not in TensorRT's ONNX operator support matrix"))
            continue
        for index, what in CONSTANT_INPUTS.get(op, {}).items():
            if len(node.input) > index and node.input[index] and not is_constant(node.input[index]):
                report.findings.append(Finding("error", name, op, f"{what} must be an initializer (is computed at run time)"))
        if op == "InstanceNormalization" and not all(is_constant(i) for i in node.input[1:3]):
            report.findings.append(Finding("info", name, op, NATIVE_INSTANCE_NORM))
        _check_attributes(node, name, report)
    return report


# A conditional instance norm's scale/B are computed from the style input. The parser's native
# instance-norm importer (INormalizationLayer; kNATIVE_INSTANCENORM, ON by default in 10.x, the only
# path in 11.x) takes them as tensors; the legacy InstanceNormalization_TRT plugin needs initializers.
NATIVE_INSTANCE_NORM = ("scale/B computed at run time: needs the parser's native instance norm "
                        "(OnnxParserFlag.NATIVE_INSTANCENORM, the 10.x default; keep it on)")

# rank of each control input of a multi-style graph (stylize_rt.contract): style [N, n_styles], the others [N]
CONTROL_RANKS = {contract.INPUT_STYLE: 2, contract.INPUT_STRENGTH: 1, contract.INPUT_PRESERVE_COLOR: 1}


def check_control_inputs(graph, report: LintReport) -> None:
    """A multi-style graph's control inputs fit one optimization profile with the frames: float32,
    the contract's ranks, the frames' batch dimension (same name) first, and a fixed n_styles."""
    inputs = {v.name: v for v in graph.input}
    if not any(name in inputs for name in CONTROL_RANKS):
        return
    image = inputs.get(contract.INPUT_IMAGE)
    batch = image.type.tensor_type.shape.dim[0] if image is not None and image.type.tensor_type.shape.dim else None
    for name, rank in CONTROL_RANKS.items():
        value = inputs.get(name)
        if value is None:
            report.findings.append(Finding("error", "", "", f"multi-style graph lacks the control input {name!r}"))
            continue
        tensor = value.type.tensor_type
        dims = tensor.shape.dim
        if tensor.elem_type != onnx.TensorProto.FLOAT:
            report.findings.append(Finding("error", "", "", f"control input {name} must be float32"))
        if len(dims) != rank:
            report.findings.append(Finding("error", "", "", f"control input {name} has rank {len(dims)}, expected {rank}"))
            continue
        if batch is not None and (dims[0].dim_param or dims[0].dim_value) != (batch.dim_param or batch.dim_value):
            report.findings.append(Finding("error", "", "", f"control input {name}'s first dimension is not the "
                                           f"frames' batch dimension (one profile covers both)"))
        if rank == 2 and not dims[1].HasField("dim_value"):
            report.findings.append(Finding("error", "", "", f"control input {name} needs a fixed n_styles dimension"))


def _check_uint8_io(graph, producers: dict, report: LintReport) -> None:
    """UINT8 network inputs may only feed Cast layers; UINT8 outputs must come from Cast/Identity.

    TensorRT rejects anything else, even a Transpose of the raw bytes (NVIDIA/TensorRT#3985,
    #4278): "Network-level output tensor ... has datatype UInt8 but is not produced by an
    IIdentityLayer or ICastLayer".
    """
    for value in graph.input:
        if value.type.tensor_type.elem_type != 2:
            continue
        for node in graph.node:
            if value.name in node.input and node.op_type != "Cast":
                report.findings.append(
                    Finding("error", node.name, node.op_type, f"UINT8 input {value.name} must feed a Cast directly, not {node.op_type}")
                )
    for value in graph.output:
        node = producers.get(value.name)
        if value.type.tensor_type.elem_type == 2 and node is not None and node.op_type not in ("Cast", "Identity"):
            report.findings.append(
                Finding("error", node.name, node.op_type, f"UINT8 output {value.name} must be produced by a Cast, not {node.op_type}")
            )


def _check_attributes(node, name: str, report: LintReport) -> None:
    op = node.op_type
    add = report.findings.append
    if op == "Pad":
        mode = _attr(node, "mode", "constant")
        if mode not in PAD_MODES:
            add(Finding("error", name, op, f"pad mode {mode!r} unsupported (TensorRT: {', '.join(PAD_MODES)})"))
    elif op in ("Resize", "Upsample"):
        mode = _attr(node, "mode", "nearest")
        coord = _attr(node, "coordinate_transformation_mode", "half_pixel")
        nearest = _attr(node, "nearest_mode", "round_prefer_floor")
        if mode not in RESIZE_MODES:
            add(Finding("error", name, op, f"resize mode {mode!r} unsupported"))
        if coord not in RESIZE_COORD_MODES:
            add(Finding("error", name, op, f"coordinate_transformation_mode {coord!r} unsupported (TensorRT: {', '.join(RESIZE_COORD_MODES)})"))
        if mode == "nearest" and nearest not in RESIZE_NEAREST_MODES:
            add(Finding("error", name, op, f"nearest_mode {nearest!r} unsupported"))
        if _attr(node, "antialias", 0):
            add(Finding("error", name, op, "antialias=1 unsupported"))
        if _attr(node, "exclude_outside", 0):
            add(Finding("warning", name, op, "exclude_outside=1 is not in TensorRT's documented support"))
    elif op == "Cast":
        to = _attr(node, "to", 0)
        if to not in CAST_TARGETS:
            add(Finding("error", name, op, f"cast to ONNX type {to} unsupported (TensorRT casts to {', '.join(sorted(set(CAST_TARGETS.values())))})"))
    elif op in ("Conv", "ConvTranspose", "AveragePool", "MaxPool"):
        kernel = _attr(node, "kernel_shape", None)
        if kernel is not None and len(kernel) not in (2, 3):
            add(Finding("error", name, op, f"{len(kernel)}-D {op}: TensorRT supports 2-D and 3-D only"))
        if _attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
            add(Finding("error", name, op, "unknown auto_pad"))
    elif op in ("QuantizeLinear", "DequantizeLinear"):
        # TensorRT's explicit quantization is symmetric: zero points must be 0 (checked by value below).
        pass


def check_zero_points(model, report: LintReport) -> None:
    """Q/DQ zero points must be all-zero initializers (TensorRT INT8 is symmetric)."""
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2]:
            zp = inits.get(node.input[2])
            if zp is None:
                report.findings.append(Finding("error", node.name, node.op_type, "zero point must be an initializer"))
            elif numpy_helper.to_array(zp).any():
                report.findings.append(Finding("error", node.name, node.op_type, "zero point must be 0 (TensorRT INT8 is symmetric)"))


def check_dequantize_types(model, report: LintReport) -> None:
    """TensorRT dequantizes INT8 (and FP8/INT4) tensors; an INT32-encoded bias is rejected."""
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and inits[node.input[0]].data_type == 6:
            report.findings.append(
                Finding("error", node.name, node.op_type, "INT32 input (a quantized bias): TensorRT dequantizes INT8 only")
            )


def check_instance_norm_types(model, report: LintReport) -> None:
    """InstanceNormalization's input, scale and B must share one float type (all FP32 or all FP16)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    types.update({i.name: i.data_type for i in inferred.graph.initializer})
    for node in inferred.graph.node:
        if node.op_type == "InstanceNormalization":
            seen = {types.get(i) for i in node.input if i}
            if len(seen) > 1:
                report.findings.append(
                    Finding("error", node.name, node.op_type, "input, scale and B must be all FP32 or all FP16")
                )


def lint_model(model) -> LintReport:
    """All static checks of a ``ModelProto`` (ops, attributes, zero points, norm types)."""
    report = lint(model)
    check_zero_points(model, report)
    check_dequantize_types(model, report)
    check_instance_norm_types(model, report)
    return report


def parser_check(path: str | os.PathLike[str]) -> tuple[bool, list[str]]:
    """Parse the file with TensorRT's ONNX parser: ``(ok, errors)``. Needs ``tensorrt``."""
    trt = import_tensorrt()

    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(path))
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    return bool(ok) and not errors, errors


def lint_file(path: str | os.PathLike[str], run_parser: bool = True) -> LintReport:
    """Lint an ``.onnx`` file; with ``tensorrt`` importable, also run its parser."""
    report = lint_model(onnx.load(str(path)))
    if run_parser and importlib.util.find_spec("tensorrt") is not None:
        try:
            ok, errors = parser_check(path)
        except Exception as exc:  # noqa: BLE001 - no GPU / driver: report, do not fail the static lint
            report.parser = f"could not run: {first_line(exc)}"
        else:
            report.parser = "parsed OK" if ok else "FAILED: " + "; ".join(errors[:3])
            if not ok:
                report.findings.append(Finding("error", "", "", "TensorRT's parser rejected the graph"))
    return report
