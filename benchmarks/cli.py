"""``stylize-rt bench``: latency/throughput over backends, sizes, batches and precisions.

This module turns arguments into configurations (which backends this machine can run,
which model file serves each precision, and why the rest are skipped), hands them to
the harness and writes the outputs. torch is imported only when a torch backend is
requested; an ONNX-only run needs onnxruntime (and onnx for the FLOP count).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from stylize_rt import contract
from stylize_rt.benchmarks import compare as cmp
from stylize_rt.benchmarks import environment, harness, report
from stylize_rt.benchmarks.environment import cpu_has
from stylize_rt.benchmarks.harness import Skipped, Variant
from stylize_rt.benchmarks.peak import measure_sgemm_peak
from stylize_rt.benchmarks.peers import PEERS, build_peer, peer_unavailable
from stylize_rt.errors import BadInputError, MissingDependencyError, OutputError, StylizeError, first_line
from stylize_rt.fileio import read_json
from stylize_rt.gpu.devices import gpu_state
from stylize_rt.models import DEFAULT_GENERATOR, get_model, resolve_model
from stylize_rt.runtime.backends import registry
from stylize_rt.runtime.backends.onnxruntime import describe_providers, provider_report
from stylize_rt.sizes import PRESETS
from stylize_rt.sizes import parse_sizes as parse_frame_sizes

DEFAULT_SIZES = "256,512,720p,1080p"
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
DEFAULT_ENGINE = DEFAULT_GENERATOR


@dataclass
class ModelSource:
    """The files one ``--engine`` argument provides, by what can run them."""

    label: str
    onnx: Path | None = None  # fp32 ONNX (any IO layout)
    checkpoint: Path | None = None  # generator checkpoint directory (torch backend)
    plan: Path | None = None  # TensorRT engine
    variants: dict[str, Path] = field(default_factory=dict)  # "onnx_int8", "onnx_fp16", ... -> file
    url: str | None = None  # a model on a Triton server (triton://HOST:PORT/NAME)
    url_precision: str = "fp32"  # what the served model computes in (its config's stylize_rt.precision)


# ---------------------------------------------------------------------------------------
# Arguments


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``256,512x288,720p`` -> [(h, w), ...] (the harness's order); a bare N is N x N."""
    return [(h, w) for w, h in parse_frame_sizes(text, "--sizes")]


def parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BadInputError(f"bad {what} {text!r}: expected comma-separated positive integers") from None
    if not values or any(v < 1 for v in values):
        raise BadInputError(f"bad {what} {text!r}: expected comma-separated positive integers")
    return values


def parse_choices(text: str, allowed, what: str) -> list[str]:
    values = [v.strip().lower() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise BadInputError(f"unknown {what} {', '.join(unknown) or repr(text)} (choose from {', '.join(allowed)})")
    return list(dict.fromkeys(values))


# ---------------------------------------------------------------------------------------
# Variants and what this machine can run


def variants() -> dict[str, Variant]:
    return {
        "onnxruntime": Variant("onnxruntime", "onnxruntime", "cpu", {"providers": ["CPUExecutionProvider"]}),
        "onnxruntime-cuda": Variant("onnxruntime-cuda", "onnxruntime", "cuda", {"providers": ["CUDAExecutionProvider"]}),
        "onnxruntime-tensorrt": Variant("onnxruntime-tensorrt", "onnxruntime", "cuda",
                                        {"providers": ["TensorrtExecutionProvider"]}, precision_option=True),
        "torch": Variant("torch", "torch", "cpu", {"device": "cpu"}, precision_option=True),
        # The torch CUDA path: CUDA graphs per shape, side-stream copies; -eager without graphs, -compile with Inductor.
        "torch-cuda": Variant("torch-cuda", "torch", "cuda", {"device": "cuda", "timing": True}, precision_option=True),
        "torch-cuda-eager": Variant("torch-cuda-eager", "torch", "cuda",
                                    {"device": "cuda", "timing": True, "cuda_graph": False}, precision_option=True),
        "torch-cuda-compile": Variant("torch-cuda-compile", "torch", "cuda",
                                      {"device": "cuda", "timing": True, "compile": True}, precision_option=True),
        "torch-compile": Variant("torch-compile", "torch", "cpu", {"device": "cpu", "compile": True},
                                 precision_option=True),
        "tensorrt": Variant("tensorrt", "tensorrt", "cuda", {"timing": True}),
        # A served model: latency includes the transport (client -> server -> client).
        "triton": Variant("triton", "triton", "server"),
    }


def variant_unavailable(name: str) -> str | None:
    """Why this machine cannot run the variant at all (the backend table's answer), or None."""
    variant = variants().get(name)
    if variant is None:
        return f"unknown backend {name!r}"
    return registry.unavailable(variant.backend, **variant.options)


def precision_unsupported(variant: str, precision: str) -> str | None:
    """Why a variant has no path for ``precision`` (on this machine), or None."""
    if variant == "onnxruntime":
        if precision in ("fp16", "bf16"):
            return f"ONNX Runtime's CPU execution provider has no fast {precision.upper()} conv kernels"
        return None
    if variant.startswith("onnxruntime-"):
        return "ONNX Runtime GPU runs fp32/fp16 here" if precision in ("bf16", "int8") else None
    if variant.startswith("torch-cuda"):
        return "the torch backend has no INT8 path" if precision == "int8" else None
    if variant.startswith("torch"):
        if precision == "fp16":
            return "no fast FP16 conv kernels on CPU; use bf16"
        if precision == "int8":
            return "the torch backend has no INT8 path; onnxruntime int8 is the quantized CPU path"
        if precision == "bf16" and not (cpu_has("avx512_bf16") or cpu_has("amx_bf16")):
            return "this CPU has neither AVX512-BF16 nor AMX: BF16 would be emulated, slower than FP32"
        return None
    if variant == "tensorrt":
        return "TensorRT builds fp32/fp16/int8 engines, not bf16 here" if precision == "bf16" else None
    return None


# ---------------------------------------------------------------------------------------
# Models


def resolve_engine(engine: str | None) -> ModelSource:
    """``--engine``: a file (.onnx/.plan/.engine), a checkpoint directory, an embedded model name, or a
    served model's ``triton://`` URL."""
    if engine is not None and registry.is_triton_url(engine):
        return _served_source(engine)
    path = resolve_model(engine or DEFAULT_ENGINE)
    if path.is_dir():
        source = _directory_source(path)
        if engine is None or not Path(engine).exists():
            source.label = engine or DEFAULT_ENGINE  # tables name an embedded model by its name
        return source
    if path.suffix == ".onnx":
        kind = onnx_precision(path)
        if kind == "fp32":
            return ModelSource(label=str(path), onnx=path)
        return ModelSource(label=str(path), variants={f"onnx_{kind}": path})
    if path.suffix in (".plan", ".engine"):
        return ModelSource(label=str(path), plan=path)
    raise BadInputError(f"cannot benchmark {path.name!r}: expected .onnx, .plan/.engine or a checkpoint directory")


def _served_source(url: str) -> ModelSource:
    """A served model: ask the server once what it is (a server that is down fails here, in one line)."""
    backend = registry.open_backend(url, warmup=0)
    try:
        precision = backend.metadata.get(contract.PRECISION) or "fp32"
    finally:
        backend.close()
    return ModelSource(label=url, url=url, url_precision=precision)


def _directory_source(path: Path) -> ModelSource:
    """A checkpoint directory, plus whatever exports sit beside it (as the embedded models ship)."""
    source = ModelSource(label=str(path))
    if (path / "config.json").is_file():
        source.checkpoint = path
    for file in sorted(path.glob("*.onnx")):
        kind = onnx_precision(file)
        if kind == "fp32" and source.onnx is None:
            source.onnx = file
        elif kind != "fp32":
            source.variants.setdefault(f"onnx_{kind}", file)
    plans = sorted([*path.glob("*.plan"), *path.glob("*.engine")])
    source.plan = plans[0] if plans else None
    if source.checkpoint is None and source.onnx is None and not source.variants and source.plan is None:
        raise BadInputError(f"{path} holds no checkpoint (config.json), .onnx or TensorRT engine")
    return source


def onnx_precision(path: Path) -> str:
    """fp32, fp16 or int8, from the graph (QDQ nodes, float16 weights); fp32 when onnx is absent."""
    try:
        import onnx  # the [export] extra; without it every graph counts as fp32
    except ImportError:
        return "fp32"
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and friends
        raise BadInputError(f"cannot read ONNX model {path}: {first_line(exc)}") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get(contract.PRECISION) in PRECISIONS:
        return meta[contract.PRECISION]
    ops = {n.op_type for n in model.graph.node}
    if ops & {"DequantizeLinear", "QLinearConv", "ConvInteger"}:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


class ModelFiles:
    """Which file serves (variant, precision); derived files (INT8/FP16 ONNX) are made once."""

    def __init__(self, source: ModelSource, workdir: Path) -> None:
        self.source = source
        self.workdir = workdir
        self._made: dict[str, Path | str] = {}

    def for_config(self, variant: str, precision: str) -> tuple[Path | None, str | None]:
        """(model file, None) or (None, reason it is skipped)."""
        src = self.source
        if variant == "triton" or src.url:
            if variant != "triton":
                return None, f"{src.label} is a served model: only the triton backend runs it"
            if src.url is None:
                return None, "the triton backend times served models: --engine triton://HOST:PORT/NAME"
            if precision != src.url_precision:
                return None, f"the served model computes in {src.url_precision}"
            return src.url, None
        if variant.startswith("torch"):
            if src.checkpoint is None:
                return None, f"the torch backend needs a checkpoint directory; {src.label} has none"
            return src.checkpoint, None
        if variant == "tensorrt" and src.plan is not None:
            return src.plan, None  # a built engine: its precision was fixed when it was built
        if precision == "fp32":
            return (src.onnx, None) if src.onnx else (None, f"{src.label} has no fp32 ONNX model")
        for role, file in src.variants.items():
            if precision in role:
                return file, None
        return self._derive(precision)

    def _derive(self, precision: str) -> tuple[Path | None, str | None]:
        if precision in self._made:
            made = self._made[precision]
            return (made, None) if isinstance(made, Path) else (None, made)
        result = self._make(precision)
        self._made[precision] = result if isinstance(result, Path) else result
        return (result, None) if isinstance(result, Path) else (None, result)

    def _make(self, precision: str) -> Path | str:
        """INT8: quantize the fp32 ONNX with the export stage's static QDQ path; else say why not."""
        if precision != "int8":
            return (f"no {precision} ONNX for {self.source.label}: make one with "
                    f"'stylize-rt export --precision {precision}' and pass it with --engine")
        if self.source.onnx is None:
            return "no fp32 ONNX to quantize"
        if importlib.util.find_spec("stylize_rt.export.int8") is None or importlib.util.find_spec("onnx") is None:
            return f"no int8 ONNX for {self.source.label} and this install cannot quantize (needs stylize-rt[export])"
        import onnx  # the [export] extra, found above

        from stylize_rt.export.int8 import calibration_set, quantize_int8  # likewise

        fp32 = onnx.load(str(self.source.onnx))
        layout = {p.key: p.value for p in fp32.metadata_props}.get(contract.IO_LAYOUT)
        if layout not in contract.IO_LAYOUTS:
            return f"{self.source.label} carries no stylize_rt.io_layout metadata; quantize it with stylize-rt export"
        print(f"bench: quantizing {self.source.onnx.name} to INT8 (static QDQ) ...", file=sys.stderr, flush=True)
        frames, where = calibration_set(None)
        logging.disable(logging.WARNING)  # ORT's quantizer logs advice to the root logger
        try:
            int8, _ = quantize_int8(fp32, layout, frames, where, target=contract.INT8_TARGET_ORT)  # ORT runs it
        except (ValueError, RuntimeError) as exc:
            return f"INT8 quantization failed: {exc}"
        finally:
            logging.disable(logging.NOTSET)
        out = self.workdir / f"{self.source.onnx.stem}_int8.onnx"
        onnx.save(int8, str(out))
        return out


# ---------------------------------------------------------------------------------------
# The command


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``stylize-rt bench``."""
    p = subparsers.add_parser(
        "bench",
        help="measure latency/throughput over backends, sizes, batches and precisions",
        description="Model-only (and with --pipeline, end-to-end) latency of a generator: warm-up, then a "
        "fixed count or time budget; min/mean/p50/p90/p99/max/std, frames/s, megapixels/s, GFLOP/s and "
        "its fraction of this machine's measured SGEMM peak. Configurations this machine cannot run are "
        "listed with the reason. Exit 1 when a configuration fails its output check or --compare finds "
        "a regression.",
    )
    p.add_argument("--engine", metavar="MODEL", help="ONNX file, TensorRT engine, checkpoint directory, "
                   f"embedded model name (default: {DEFAULT_ENGINE}) or triton://HOST:PORT/NAME (a served model: "
                   "latency includes the transport)")
    p.add_argument("--backends", default="auto", help="comma list of " + ", ".join(
        ["onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "torch", "torch-cuda", "torch-cuda-eager",
         "torch-cuda-compile", "torch-compile", "tensorrt", "triton"])
        + " (default auto: every one this machine and model can run, except the -compile and -eager variants; "
        "triton for a triton:// --engine)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"comma list of N, WxH, {', '.join(PRESETS)} "
                   f"(default {DEFAULT_SIZES})")
    p.add_argument("--batch", default="1", help="comma list of batch sizes (default 1)")
    p.add_argument("--precision", default=",".join(PRECISIONS), help="comma list of fp32, fp16, bf16, int8 "
                   "(default: all; combinations a backend or this machine lacks are skipped with the reason)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--iters", type=int, help="timed iterations per configuration")
    budget.add_argument("--seconds", type=float, help="time budget per configuration (default 3; at least "
                        f"{harness.MIN_TIMED_ITERS} iterations either way)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: the backend's default)")
    p.add_argument("--pipeline", action="store_true", help="also time source -> runtime -> sink per configuration")
    p.add_argument("--transcode", nargs="?", const="all", metavar="SIZES",
                   help="also time decode -> stylize -> encode of an H.264 clip in memory (software libx264 both ways, "
                   "the codec's share of the time shown): what a file-to-file run gets; at every --sizes, or at "
                   "the comma list SIZES of them")
    p.add_argument("--peer", type=_peer_list, metavar="NAME[,NAME]", help="also time reference networks "
                   f"({', '.join(sorted(PEERS))}; random weights) in ONNX "
                   "Runtime and PyTorch eager FP32, in turns with the model: johnson2016 = Johnson et al.'s "
                   "fast style transfer network (9x9 stem, 32/64/128 channels, 5 residual blocks); plain = the "
                   "model's own widths as a single-style network (what a multi-style model's style inputs cost)")
    p.add_argument("--layout", choices=("nhwc", "nchw"),
                   help="the model's tensor layout, for models without stylize-rt metadata (default: probed)")
    p.add_argument("--input-range", choices=("0-255", "0-1", "-1-1"),
                   help="the model's pixel value range, likewise (write --input-range=-1-1 for -1..1)")
    p.add_argument("--captioner", nargs="?", const="embedded", metavar="DIR",
                   help="also time a captioner: encoder, per-token decoder step, whole captions "
                   "(an exported captioner folder; without DIR the embedded one); a fact captioner also times "
                   "face detection, which runs only in the caption worker")
    p.add_argument("--caption-overlay", action="store_true",
                   help="with --captioner: also run the stream runner with and without the caption overlay "
                   "(the embedded mosaic generator at 640x360, a caption a second) and report the frame-rate ratio")
    p.add_argument("--no-peak", action="store_true", help="skip measuring the SGEMM peak (no %% peak column)")
    p.add_argument("--json", metavar="PATH", help="write the result document (environment + records)")
    p.add_argument("--markdown", metavar="PATH", help="write a Markdown report")
    p.add_argument("--plot", metavar="PATH", help="write a PNG plot of latency vs resolution")
    p.add_argument("--history", metavar="PATH", help="append this run as one JSON line (e.g. benchmarks/results/history.jsonl)")
    p.add_argument("--compare", metavar="BASELINE.json", help="flag regressions beyond run-to-run noise vs this result")
    p.add_argument("--noise-k", type=float, default=3.0, help="regression threshold in noise units (default 3)")
    p.add_argument("--noise-floor", type=float, default=0.05, help="smallest change flagged (default 0.05 = 5%%)")
    p.set_defaults(handler=run_bench)


def _validate(args) -> None:
    if args.iters is not None and args.iters < 1:
        raise BadInputError("--iters must be at least 1")
    if args.seconds is not None and args.seconds <= 0:
        raise BadInputError("--seconds must be positive")
    if args.warmup < 0:
        raise BadInputError("--warmup must be 0 or more")
    if args.threads < 0:
        raise BadInputError("--threads must be 0 or more")
    if args.compare and not Path(args.compare).is_file():
        raise BadInputError(f"baseline not found: {args.compare}")
    transcode_sizes(args)


def transcode_sizes(args) -> set[tuple[int, int]]:
    """The (height, width) sizes that get a transcode row (``--transcode [SIZES]``; none without it)."""
    if not args.transcode:
        return set()
    sizes = set(parse_sizes(args.sizes))
    if args.transcode == "all":
        return sizes
    wanted = parse_sizes(args.transcode)
    missing = [f"{w}x{h}" for h, w in wanted if (h, w) not in sizes]
    if missing:
        raise BadInputError(f"--transcode {', '.join(missing)}: not among --sizes {args.sizes}")
    return set(wanted)


def reproduce_command(args, variant: str, precision: str, height: int, width: int, batch: int) -> str:
    parts = ["stylize-rt", "bench"]
    if args.engine:
        parts += ["--engine", args.engine]
    parts += ["--backends", variant, "--precision", precision, "--sizes", f"{width}x{height}", "--batch", str(batch)]
    parts += ["--iters", str(args.iters)] if args.iters is not None else ["--seconds", f"{args.seconds or 3:g}"]
    if args.warmup != 3:
        parts += ["--warmup", str(args.warmup)]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.pipeline:
        parts.append("--pipeline")
    if args.transcode and (height, width) in transcode_sizes(args):
        parts.append("--transcode")
    for flag in ("layout", "input_range"):
        if getattr(args, flag):
            parts.append(f"--{flag.replace('_', '-')}={getattr(args, flag)}")
    return shlex.join(parts)


def command_of(args) -> str:
    """The whole run as one ``stylize-rt bench`` command line (what the JSON records)."""
    parts = ["stylize-rt", "bench"]
    for flag in ("engine", "backends", "sizes", "batch", "precision", "iters", "seconds", "warmup", "threads",
                 "peer", "layout", "input_range", "json", "markdown", "plot", "history", "compare"):
        value = getattr(args, flag)
        if value is not None:
            name = "--" + flag.replace("_", "-")
            parts += [f"{name}={value}"] if str(value).startswith("-") else [name, str(value)]
    parts += [f"--{flag.replace('_', '-')}" for flag in ("pipeline", "no_peak") if getattr(args, flag)]
    if args.transcode:
        parts += ["--transcode"] + ([] if args.transcode == "all" else [args.transcode])
    if args.captioner:
        parts += ["--captioner"] + ([] if args.captioner == "embedded" else [args.captioner])
    return shlex.join(parts)


def _check_outputs_writable(args) -> None:
    """Fail before minutes of measuring, not after: output folders must be writable, matplotlib present."""
    for flag in ("json", "markdown", "plot", "history"):
        value = getattr(args, flag)
        if value is None:
            continue
        parent = Path(value).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write --{flag} {value}: {exc.strerror or exc}") from None
        if not os.access(parent, os.W_OK) or Path(value).is_dir():
            raise OutputError(f"cannot write --{flag} {value}: not a writable file location")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise MissingDependencyError("--plot needs matplotlib: pip install 'stylize-rt[bench]'")


def plan_configs(names: list[str], precisions: list[str], skipped: list) -> list[tuple[str, str]]:
    """(variant, precision) pairs this machine can run; the rest go to ``skipped`` with the reason."""
    plan = []
    for name in names:
        reason = variant_unavailable(name)
        if reason:
            skipped.append(Skipped(name, ",".join(precisions), reason))
            continue
        for precision in precisions:
            reason = precision_unsupported(name, precision)
            if reason:
                skipped.append(Skipped(name, precision, reason))
            else:
                plan.append((name, precision))
    return plan


PEER_VARIANTS = ("onnxruntime", "torch")  # a peer row: ONNX Runtime and PyTorch eager, FP32


def _peer_list(text: str) -> str:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEERS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown peer {', '.join(unknown) or text!r} (choose from {', '.join(sorted(PEERS))})")
    return ",".join(dict.fromkeys(names))


def peer_sources(args, workdir: Path, skipped: list, source: ModelSource) -> list[tuple[str, ModelSource]]:
    """(network, files) of each ``--peer``, built in the bench's temporary folder."""
    if not args.peer:
        return []
    out = []
    for name in args.peer.split(","):
        reason = peer_unavailable()
        model_config = None
        if reason is None and PEERS[name] is None:  # a peer derived from the model (plain: its widths, one style)
            card = Path(source.checkpoint) / contract.CHECKPOINT_CARD if source.checkpoint else None
            if card is None or not card.is_file():
                reason = "needs the model's checkpoint folder (its generator config)"
            else:
                model_config = read_json(card, "checkpoint card").get("generator")
        if reason:
            skipped.append(Skipped(name, "fp32", reason))
            continue
        print(f"bench: building the {name} peer network (random weights) ...", file=sys.stderr, flush=True)
        checkpoint, onnx_path = build_peer(name, workdir, model_config)
        out.append((name, ModelSource(label=name, onnx=onnx_path, checkpoint=checkpoint)))
    return out


def run_matrix(args, plan, source: ModelSource, sizes, batches, budget, peak, work, skipped, failed) -> list:
    """Open every planned backend once, then time all of them in turns at each size and batch.

    Peer networks (``--peer``) take their turns with the model's configurations, in ONNX Runtime
    and PyTorch eager FP32, so "x peer" ratios come from the same run.
    """
    all_variants = variants()
    records = []
    transcoded = transcode_sizes(args)
    with tempfile.TemporaryDirectory(prefix="stylize-rt-bench-") as workdir:
        networks = [("model", source, plan, work)]
        for network, peer in peer_sources(args, Path(workdir), skipped, source):
            peer_plan = [(n, p) for n, p in plan if n in PEER_VARIANTS and p == "fp32"]
            networks.append((network, peer, peer_plan, harness.WorkCounter(peer.onnx)))
        opened = []  # (network, name, precision, model, backend, work)
        try:
            for network, net_source, net_plan, net_work in networks:
                files = ModelFiles(net_source, Path(workdir))
                for name, precision in net_plan:
                    model, reason = files.for_config(name, precision)
                    if model is None:
                        skipped.append(harness.Skipped(name, precision, reason))
                        continue
                    print(f"bench: opening {name} {precision} ({getattr(model, 'name', model)})", file=sys.stderr, flush=True)
                    try:
                        backend = harness.open_variant(all_variants[name], model, precision, args.threads)
                    except StylizeError as exc:
                        skipped.append(harness.Skipped(name, precision, f"cannot open: {exc}"))
                        continue
                    opened.append((network, name, precision, model, backend, net_work))
            for height, width in sizes:
                for batch in batches:
                    print(f"bench: {width}x{height} batch {batch}: {len(opened)} configuration(s) in turns",
                          file=sys.stderr, flush=True)
                    group = []
                    for network, name, precision, model, backend, net_work in opened:
                        config = harness.BenchConfig(all_variants[name], precision, model, batch, height, width,
                                                     network, args.layout, args.input_range)
                        command = reproduce_command(args, name, precision, height, width, batch)
                        try:
                            # peers are speed references for the model alone: their end-to-end rows would
                            # add 16-frame clips of a 24x heavier net and say nothing about our runtime
                            group.append(harness.prepare(backend, config, command,
                                                         pipeline=args.pipeline and network == "model",
                                                         work=net_work,
                                                         transcode=network == "model" and (height, width) in transcoded))
                        except Exception as exc:  # noqa: BLE001 - any engine's error fails this configuration only
                            failed.append(harness.Failed(name, precision, height, width, batch, "model",
                                                         first_line(exc)))
                    try:
                        records += harness.measure_together(group, budget, None, peak["gflops"] if peak else None)
                    except Exception as exc:  # noqa: BLE001 - reported per configuration, then exit 1
                        failed += [harness.Failed(item.config.variant.name, item.config.precision, height, width,
                                                  batch, "model", first_line(exc)) for item in group]
        finally:
            for *_, backend, _work in opened:
                backend.close()
    harness.add_overheads(records)
    return records


def nothing_ran_reason(source: ModelSource, skipped: list[Skipped]) -> str:
    """One line for a run in which no configuration could run (the full list is printed above it)."""
    gpu_only = {k[len("onnx_"):] for k in source.variants} & {"fp16"}
    if gpu_only and source.onnx is None and source.checkpoint is None and source.plan is None:
        return (f"{source.label} is an FP16 graph, and FP16 graphs are for GPUs (TensorRT, ONNX Runtime's "
                "CUDA/TensorRT providers); on this machine benchmark the FP32 export (stylize-rt export "
                "--precision fp32) or the checkpoint folder")
    if not skipped:
        return "no configuration could run here (nothing requested)"
    first = skipped[0]
    more = f"; {len(skipped) - 1} more skipped, listed above" if len(skipped) > 1 else ""
    return f"no configuration could run here ({first.backend} {first.precision}: {first.reason}{more})"


def print_summary(document: dict, notes: list[str]) -> None:
    records = report.records_of(document)
    if records:
        print(report.terminal_table(records))
    if document["captioner"]:
        print(report.captioner_markdown(document["captioner"]))
    if document["sgemm_peak"]:
        print(f"SGEMM peak (measured): {document['sgemm_peak']['gflops']:.1f} GFLOP/s")
    env = document["environment"]
    if env.get("onnxruntime"):
        for line in describe_providers(env["onnxruntime"]):
            print(line)
    if env.get("gpu_state"):
        print(f"GPU at start: {environment.describe_gpu_state(env['gpu_state'])}")
    for s in document["skipped"]:
        print(f"skipped: {s['backend']} {s['precision']}: {s['reason']}")
    for f in document["failed"]:
        print(f"FAILED: {f['backend']} {f['precision']} {f['width']}x{f['height']} b{f['batch']} {f['mode']}: {f['reason']}")
    for note in notes:
        print(f"note: {note}")


def run_bench(args) -> int:
    _validate(args)
    _check_outputs_writable(args)
    sizes = parse_sizes(args.sizes)
    batches = parse_ints(args.batch, "--batch")
    precisions = parse_choices(args.precision, PRECISIONS, "precision")
    all_variants = variants()
    source = resolve_engine(args.engine)
    if args.backends == "auto" and source.url:
        names = ["triton"]
    elif args.backends == "auto":
        names = [n for n in all_variants if "compile" not in n and n not in ("torch-cuda-eager", "triton")]
    else:
        names = parse_choices(args.backends, list(all_variants), "backend")
    baseline = report.load_document(args.compare) if args.compare else None
    budget = harness.Budget(warmup=args.warmup, iters=args.iters,
                            seconds=None if args.iters is not None else (args.seconds or 3.0))

    skipped: list[harness.Skipped] = []
    failed: list[harness.Failed] = []
    plan = plan_configs(names, precisions, skipped)
    env = environment.collect(args.threads, command=command_of(args))
    if any(all_variants[n].backend == "onnxruntime" for n in names):
        env["onnxruntime"] = provider_report()  # the providers that really start, not the ones listed
    peak = None
    if not args.no_peak and any(all_variants[n].device == "cpu" for n, _ in plan):
        peak = measure_sgemm_peak(threads=args.threads).to_dict()
    work = harness.WorkCounter(source.onnx or source.checkpoint or next(iter(source.variants.values()), None))
    records = run_matrix(args, plan, source, sizes, batches, budget, peak, work, skipped, failed)

    captioner_rows = []
    if args.captioner:
        print("bench: captioner", file=sys.stderr, flush=True)
        caption_skip = None
        try:
            captioner_rows, caption_skip = harness.measure_captioner(
                budget, None if args.captioner == "embedded" else args.captioner, args.threads)
        except Exception as exc:  # noqa: BLE001 - a broken captioner fails its row, not the generator numbers
            height, width = harness.CAPTION_FRAME
            failed.append(harness.Failed("captioner", "fp32", height, width, 1, "captioner", first_line(exc)))
        if caption_skip:
            skipped.append(harness.Skipped("captioner", "fp32", caption_skip))
        elif args.caption_overlay and captioner_rows:
            print("bench: caption overlay (stream runner with and without captions)", file=sys.stderr, flush=True)
            overlay = harness.measure_caption_overlay(get_model("mosaic").path("onnx"), captioner_rows[0]["model"],
                                                      threads=max(1, args.threads))
            captioner_rows[0]["overlay"] = overlay
    env["load_average_end"] = environment.load_average()
    env["gpu_state_end"] = gpu_state()
    document = report.build_document(env, peak, records, skipped, failed, captioner_rows)
    notes = [work.error] if work.error else []
    if notes:
        document["notes"] = notes

    print_summary(document, notes)
    if args.json:
        report.write_json(document, args.json)
    if args.markdown:
        report.write_markdown(document, args.markdown)
    if args.plot and records:
        report.write_plot(records, args.plot, title=report.plot_title(document))
    if args.history:
        report.append_history(document, args.history)

    if not records and not failed and not captioner_rows:
        raise MissingDependencyError(nothing_ran_reason(source, skipped))
    if failed:
        raise StylizeError(f"{len(failed)} configuration(s) failed: {failed[0].reason}")
    if baseline is not None:
        comparisons = cmp.compare(report.records_of(baseline), records, k=args.noise_k, floor=args.noise_floor)
        print(cmp.comparison_table(comparisons))
        bad = cmp.regressions(comparisons)
        if bad:
            worst = max(bad, key=lambda c: c.change)
            raise StylizeError(f"{len(bad)} regression(s) vs {args.compare}; worst {worst.label()} "
                               f"{100 * worst.change:+.1f}% (threshold ±{100 * worst.threshold:.1f}%)")
    return 0
