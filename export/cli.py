"""``stylize-rt export generator|cpu-form|captioner``, ``verify`` and ``export-triton``: checkpoints to verified ONNX,
verified ONNX to a Triton model repository.

Handlers import torch/onnx only when they run, so ``--help`` works in a runtime-only install.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from stylize_rt import contract
from stylize_rt.contract import CAPTIONER_ENCODER_FILE
from stylize_rt.errors import BadInputError, MissingDependencyError
from stylize_rt.export import triton as triton_export
from stylize_rt.models import resolve_model


def _need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"{' and '.join(missing)} not installed; export needs them: pip install 'stylize-rt[export]'"
        )


def _sizes(text: str) -> list[tuple[int, int, int]]:
    sizes = []
    for item in text.split(","):
        try:
            b, h, w = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected sizes like 1x16x16,2x37x53 (batch x height x width), got {item!r}") from None
        if b < 1 or h < 16 or w < 16:
            raise argparse.ArgumentTypeError(f"size {item!r}: batch >= 1 and height, width >= 16")
        sizes.append((b, h, w))
    return sizes


def _export_generator(args: argparse.Namespace) -> int:
    _need("torch", "onnx")
    from stylize_rt.export.onnx_export import export_checkpoint  # torch: checked just above

    export_checkpoint(
        resolve_model(args.checkpoint),  # a path, or an embedded model's name (its folder is a checkpoint)
        args.output,
        io_layout=args.layout,
        precision=args.precision,
        verify=not args.no_verify,
        calibration=args.calibration,
        int8_target=args.int8_target,
        calibration_method=args.calibration_method,
        min_psnr=args.min_psnr,
        log=print,
    )
    return 0


def _export_cpu_form(args: argparse.Namespace) -> int:
    _need("onnx", "onnxruntime")
    from stylize_rt.export.cpu_form import write_cpu_form

    folder = resolve_model(args.model)
    if not folder.is_dir() or not (folder / contract.CHECKPOINT_ONNX).is_file():
        raise BadInputError(f"{args.model}: expected a model folder with {contract.CHECKPOINT_ONNX}")
    output = Path(args.output) if args.output else folder / contract.CHECKPOINT_ONNX_CPU
    check = write_cpu_form(folder / contract.CHECKPOINT_ONNX, output)
    print(f"wrote {output}: within {check['max_levels']} level of {contract.CHECKPOINT_ONNX} at "
          f"{check['changed_fraction']:.1e} of the bytes (ONNX Runtime on a CPU runs it in that file's place "
          f"while {contract.CHECKPOINT_ONNX} is unchanged)")
    return 0


def _captioner_module():
    try:
        import stylize_rt.export.captioner as captioner  # torch and onnx (checked by the callers)
    except ImportError as exc:
        raise MissingDependencyError(f"captioner export is not available in this install: {exc}") from None
    return captioner


def _export_captioner(args: argparse.Namespace) -> int:
    _need("torch", "onnx")
    captioner = _captioner_module()
    # export_captioner verifies the folder before renaming it into place (unless --no-verify).
    out = captioner.export_captioner(args.checkpoint, args.output, verify=not args.no_verify,
                                     classifier=args.classifier)
    print(f"wrote {out}: encoder.onnx, decoder_step.onnx, tokenizer (opset {captioner.OPSET})")
    if not args.no_verify:
        _print_and_check_captioner(captioner, out, args.checkpoint)
    else:
        print("verification skipped (--no-verify)")
    return 0


def _print_and_check_captioner(captioner, model_dir, checkpoint) -> None:
    report = captioner.verify_captioner(model_dir, checkpoint)
    for line in report.lines():
        print(line)
    if not report.passed:
        raise captioner.VerificationError(f"{model_dir}: the ONNX captioner does not reproduce the PyTorch decode")


def _verify(args: argparse.Namespace) -> int:
    _need("torch", "onnx")
    model = Path(args.model)
    if model.is_dir():  # a captioner folder (encoder.onnx + decoder_step.onnx + tokenizer)
        if not (model / CAPTIONER_ENCODER_FILE).is_file():
            raise BadInputError(f"{model} is a folder without encoder.onnx; expected a generator .onnx or a captioner folder")
        _print_and_check_captioner(_captioner_module(), model, args.against)
        print("verified: ONNX stepwise decode gives PyTorch's tokens")
        return 0
    from stylize_rt.export.verify import verify_file  # torch and onnx: checked above

    report = verify_file(model, args.against, sizes=args.sizes, min_psnr=args.min_psnr, log=print)
    return 0 if report.passed else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` (generator, captioner) and ``verify`` to ``stylize-rt``."""
    export = subparsers.add_parser(
        "export",
        help="export a checkpoint to verified ONNX (needs torch and onnx)",
        description="Export a trained checkpoint to ONNX (opset 17, dynamic batch/height/width). Every export "
        "is checked (onnx.checker, shape inference), simplified when bit-identical, linted for TensorRT and "
        "verified against PyTorch; nothing is written unless verification passes.",
    )
    kinds = export.add_subparsers(dest="kind", metavar="MODEL", required=True)

    gen = kinds.add_parser(
        "generator",
        help="style generator -> one .onnx file",
        description="Export a generator checkpoint directory (config.json + generator.safetensors) to ONNX.",
    )
    gen.add_argument("checkpoint", metavar="CKPT",
                     help="generator checkpoint directory, or an embedded model's name (stylize-rt models)")
    gen.add_argument("-o", "--output", required=True, metavar="GEN.onnx", help="output file (written atomically)")
    gen.add_argument(
        "--layout",
        choices=("uint8_nhwc", "float32_nchw"),
        default="uint8_nhwc",
        help="IO convention: uint8 NHWC RGB frames in/out with in-graph pre/post (default), or float32 NCHW in [0, 1]",
    )
    gen.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        default="fp32",
        help="fp32; fp16 = mixed-precision graph with FP32 instance-norm islands (what a TensorRT 11 FP16 engine "
        "is built from); int8 = static QDQ quantization calibrated on sample frames",
    )
    gen.add_argument("--no-verify", action="store_true", help="skip the PyTorch-vs-ONNX Runtime parity check")
    gen.add_argument("--calibration", metavar="DIR", help="int8: folder of images to calibrate on (default: bundled photos)")
    gen.add_argument(
        "--calibration-method", choices=("minmax", "percentile", "entropy"), default="percentile",
        help="int8 range estimation (default percentile: clips rare outliers; +3 dB over minmax on the embedded mosaic)"
    )
    gen.add_argument("--min-psnr", type=float, metavar="DB", help="fp16/int8: PSNR floor vs PyTorch (defaults 40 / 20 dB)")
    gen.add_argument(
        "--int8-target", choices=contract.INT8_TARGETS, default=contract.INT8_TARGET_TRT,
        help="int8: tensorrt (default) = the Q/DQ form TensorRT and ONNX Runtime both read; onnxruntime = the "
        "CPU form, same values with pads and upsamples on 8-bit tensors (faster on CPU, not for TensorRT)"
    )
    gen.set_defaults(handler=_export_generator)

    cpu = kinds.add_parser(
        "cpu-form",
        help="a multi-style folder's generator.onnx -> generator_cpu.onnx, its faster ONNX Runtime CPU form",
        description="Write the ONNX Runtime CPU form of a model folder's FP32 generator.onnx: the control tail "
        "skipped at full strength with own colours, the style tables in one MatMul; checked against the graph "
        "on held-out frames (within 1 level) before it is written. A CPU-only ONNX Runtime then runs it for "
        "FP32, as long as generator.onnx is the file it was made from. Exit 2 for a graph without controls.",
    )
    cpu.add_argument("model", metavar="MODEL", help="model folder with generator.onnx, or an embedded model's name")
    cpu.add_argument("-o", "--output", metavar="GEN_CPU.onnx",
                     help=f"output file (default: MODEL/{contract.CHECKPOINT_ONNX_CPU}; written atomically)")
    cpu.set_defaults(handler=_export_cpu_form)

    cap = kinds.add_parser(
        "captioner",
        help="captioner -> folder with encoder.onnx, decoder_step.onnx and the tokenizer JSON",
        description="Export a captioner checkpoint to a folder; the stepwise ONNX decode is checked against PyTorch's.",
    )
    cap.add_argument("checkpoint", metavar="CKPT", help="captioner checkpoint directory")
    cap.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    cap.add_argument("--no-verify", action="store_true", help="skip the ONNX-vs-PyTorch token check")
    cap.add_argument("--classifier", default="int8", metavar="int8|fp32|DIR",
                     help="fact captioners: build the ImageNet classifier encoder.onnx as INT8 (default) or FP32 "
                     "(about a minute, checked on the packaged photos), or copy it from an exported folder DIR")
    cap.set_defaults(handler=_export_captioner)

    verify = subparsers.add_parser(
        "verify",
        help="check an exported ONNX model against its checkpoint (parity, FP16 safety, TensorRT lint)",
        description="Run an exported model in ONNX Runtime CPU and its checkpoint in PyTorch on real photos at "
        "several sizes (odd ones, batch > 1); print max abs error and PSNR; lint the graph for TensorRT. "
        "Exit 1 when parity is outside the tolerance of the model's precision.",
    )
    verify.add_argument("model", metavar="MODEL.onnx", help="exported generator (.onnx) or captioner folder")
    verify.add_argument("--against", required=True, metavar="CKPT", help="the checkpoint it was exported from")
    verify.add_argument("--sizes", type=_sizes, help="BxHxW list, e.g. 1x16x16,2x37x53 (default: 4 sizes incl. odd)")
    verify.add_argument("--min-psnr", type=float, metavar="DB", help="fp16/int8: PSNR floor (defaults 40 / 20 dB)")
    verify.set_defaults(handler=_verify)
    _register_export_triton(subparsers)


# -- export-triton ------------------------------------------------------------------------
def _register_export_triton(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-triton",
        help="write a Triton Inference Server model repository for a generator or the captioner",
        description="Write REPO/NAME/config.pbtxt and REPO/NAME/1/ for a generator (.onnx -> onnxruntime_onnx, "
        "TensorRT .plan -> tensorrt_plan, or --backend python: model.py running the ONNX file through "
        "stylize-rt's ONNX Runtime backend) or a captioner folder (NAME_encoder + NAME_decoder_step + NAME, "
        "a Python-backend model running the decoding loop). Every config is parsed back with Triton's "
        "protobuf schema and checked against the model file. Serve it with tritonserver "
        "--model-repository REPO and run it with stylize-rt --engine triton://HOST:8001/NAME.",
        epilog="exit codes: 0 ok, 2 bad input or missing dependency (pip install 'stylize-rt[serve]'), "
        "3 output not writable or already there (--overwrite)",
    )
    p.add_argument("model", metavar="MODEL",
                   help="generator .onnx, TensorRT engine (with its sidecar), checkpoint folder with generator.onnx, "
                   "captioner folder, or an embedded model name (mosaic, captioner)")
    p.add_argument("--repo", required=True, metavar="DIR", help="model repository folder (created if needed)")
    p.add_argument("--name", help="model name (default: the style, or 'captioner')")
    p.add_argument("--backend", choices=triton_export.BACKENDS, default="auto",
                   help="auto (onnxruntime for .onnx, tensorrt for engines), onnxruntime, tensorrt, or python "
                   "(for servers without the ONNX Runtime/TensorRT backends)")
    p.add_argument("--max-batch", type=int, default=0, metavar="N",
                   help="Triton's max_batch_size: the model's dynamic first axis becomes Triton's batch axis "
                   "(default 0: no Triton batching)")
    p.add_argument("--instances", type=int, default=1, metavar="N", help="model instances (default 1)")
    p.add_argument("--kind", choices=triton_export.KINDS, default="auto",
                   help="instance kind (default: gpu for engines, cpu for the python backend, else Triton's choice)")
    p.add_argument("--dynamic-batching", action="store_true", help="let Triton merge requests (needs --max-batch)")
    p.add_argument("--queue-delay-us", type=int, default=0, metavar="US",
                   help="dynamic batching: how long a request may wait for others (default 0)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of each ONNX Runtime session (0: its default)")
    p.add_argument("--site-packages", action="append", default=[], metavar="DIR",
                   help="python backend: a site-packages folder holding stylize-rt for the server's Python "
                   "(repeatable; default: the server's Python must import stylize_rt itself)")
    p.add_argument("--overwrite", action="store_true", help="replace models of the same name in REPO")
    p.set_defaults(handler=_export_triton)


def _export_triton(args: argparse.Namespace) -> int:
    options = triton_export.TritonExportConfig(
        name=args.name, backend=args.backend, max_batch=args.max_batch, instances=args.instances, kind=args.kind,
        dynamic_batching=args.dynamic_batching, queue_delay_us=args.queue_delay_us, threads=args.threads,
        site_packages=tuple(args.site_packages), overwrite=args.overwrite)
    for folder in triton_export.export_triton(args.model, args.repo, options):
        print(f"wrote {folder}/config.pbtxt (checked against Triton's schema and the model)")
    return 0
