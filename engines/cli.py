"""Subcommands of the engines stage: ``build-engine`` and ``inspect``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stylize_rt.engines.build import BuildConfig, build_engine, resolve_build_profile
from stylize_rt.engines.load import load_engine
from stylize_rt.engines.sidecar import check_compatible, check_engine_file, format_sidecar, read_sidecar
from stylize_rt.errors import BadInputError
from stylize_rt.gpu.tensorrt import running_environment, tensorrt_available


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands to ``stylize-rt``."""
    build = subparsers.add_parser(
        "build-engine",
        help="compile an ONNX model into a TensorRT engine (+ JSON sidecar)",
        description="Compile an ONNX model into a TensorRT engine for this machine's GPU and TensorRT "
        "version, with a sidecar JSON (gen.plan.json) describing the build. Needs tensorrt, "
        "cuda-python and an NVIDIA GPU.",
        epilog="Shapes: --shapes 720p builds a fixed 1280x720 engine (fastest); --shapes 480p,1080p "
        "covers that range tuned for the largest; --min/--opt/--max take frame sizes (1280x720) or "
        "tensor shapes (1x720x1280x3, name:1x720x1280x3). Default 16x16..720p..1920x1920 (1080p in either orientation).",
    )
    build.add_argument("onnx", type=Path, help="ONNX model (from stylize-rt export)")
    build.add_argument("-o", "--output", type=Path, help="engine path (default: the ONNX path with .plan)")
    build.add_argument("--precision", choices=("fp16", "fp32", "int8", "auto"), default="fp16",
                       help="fp16 (default), fp32, int8 for an explicitly quantized (Q/DQ) ONNX, or auto: fp16 "
                       "where possible, else the graph's own precision (TensorRT 11 with an FP32 graph)")
    build.add_argument("--shapes", default="", help="frame-size presets, comma-separated: 360p,720p,1080p,4k or WxH")
    build.add_argument("--min", dest="min_shape", help="smallest input shape of the profile")
    build.add_argument("--opt", dest="opt_shape", help="shape the kernels are tuned for")
    build.add_argument("--max", dest="max_shape", help="largest input shape of the profile")
    build.add_argument("--batch", default="1", help="batch size N or MIN:OPT:MAX (default 1)")
    build.add_argument("--workspace", type=int, metavar="MIB", help="builder workspace limit in MiB")
    build.add_argument("--opt-level", type=int, default=3, metavar="0-5",
                       help="builder optimization level (default 3; 5 searches longest)")
    build.add_argument("--timing-cache", metavar="FILE", help="timing cache file, read if present and updated")
    typing_group = build.add_mutually_exclusive_group()
    typing_group.add_argument("--strongly-typed", dest="strongly_typed", action="store_true", default=None,
                              help="take every tensor type from the ONNX graph (always so on TensorRT 11)")
    typing_group.add_argument("--weakly-typed", dest="strongly_typed", action="store_false",
                              help="TensorRT 10 only: precision from builder flags (the TensorRT 10 default)")
    build.add_argument("--hardware-compatibility", choices=("none", "ampere_plus", "same_compute_capability"),
                       default="none", help="let the engine run on other GPUs (slower kernels)")
    build.add_argument("--version-compatible", action="store_true",
                       help="let later TensorRT versions of the same major run the engine")
    build.add_argument("--detailed-profiling", action="store_true", help="keep per-layer info in the engine")
    build.add_argument("--device", type=int, default=0, help="CUDA device to build for (default 0)")
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    build.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")
    build.set_defaults(handler=run_build_engine)

    inspect = subparsers.add_parser(
        "inspect",
        help="print an engine's sidecar: TensorRT version, GPU, precision, shapes, IO",
        description="Print what an engine was built with, from its sidecar JSON (works without a GPU).",
    )
    inspect.add_argument("engine", type=Path, help="engine file (its sidecar is ENGINE.json)")
    inspect.add_argument("--json", action="store_true", help="print the sidecar as JSON")
    inspect.add_argument("--layers", action="store_true",
                         help="also print TensorRT's per-layer information (needs TensorRT and a GPU; full detail "
                         "for engines built with --detailed-profiling)")
    inspect.set_defaults(handler=run_inspect)


def run_build_engine(args: argparse.Namespace) -> int:
    if not args.onnx.is_file():
        raise BadInputError(f"ONNX file not found: {args.onnx}")
    output = args.output or args.onnx.with_suffix(".plan")
    config = BuildConfig(
        precision=args.precision,
        shapes=[s for s in args.shapes.split(",") if s.strip()],
        min_shape=args.min_shape,
        opt_shape=args.opt_shape,
        max_shape=args.max_shape,
        batch=args.batch,
        workspace_mib=args.workspace,
        optimization_level=args.opt_level,
        strongly_typed=args.strongly_typed,
        hardware_compatibility=args.hardware_compatibility,
        version_compatible=args.version_compatible,
        detailed_profiling=args.detailed_profiling,
        timing_cache=args.timing_cache,
        device=args.device,
        progress=not args.no_progress,
        verbose=args.verbose,
    )
    config.validate()
    resolve_build_profile(args.onnx, config)  # shape mistakes are reported before TensorRT is needed
    sidecar = build_engine(args.onnx, output, config)
    print(format_sidecar(sidecar, output))
    print(f"wrote {output} and {output.name}.json in {sidecar.build_seconds:.1f} s")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    if not args.engine.is_file():
        raise BadInputError(f"engine file not found: {args.engine}")
    sidecar = read_sidecar(args.engine)
    if args.json:
        print(json.dumps(sidecar.to_dict(), indent=2))
    else:
        print(format_sidecar(sidecar, args.engine))
    check_engine_file(args.engine, sidecar)  # a truncated/replaced engine: one line, exit 2
    if not args.json:
        print("engine file   matches the sidecar (size and SHA-256)")
        status = _compatibility_here(sidecar, args.engine.name)
        if status:
            print(f"this machine  {status}")
    if args.layers:
        loaded = load_engine(args.engine, quiet=True)
        try:
            print(loaded.layer_information())
        finally:
            loaded.release()
    return 0


def _compatibility_here(sidecar, name: str) -> str | None:
    """Whether this machine can run the engine, when TensorRT and a GPU are here to ask."""
    if not tensorrt_available():
        return None
    try:
        warnings = check_compatible(sidecar, running_environment(), name)
    except BadInputError as exc:
        return f"cannot run it: {exc}"
    return "can run it" + (f" ({'; '.join(warnings)})" if warnings else "")


__all__ = ["register", "run_build_engine", "run_inspect"]
