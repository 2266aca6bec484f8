"""Subcommands of the runtime stage: ``run`` (the default), ``demo`` and ``models``.

Both ``run`` and ``demo`` describe their run as a ``RunConfig`` and go through
``session.open_run``; nothing here imports torch.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path

from stylize_rt.errors import EXIT_SKIPPED, BadInputError
from stylize_rt.models import DEFAULT_GENERATOR, MODELS_DIR, list_models
from stylize_rt.runtime.backends.onnxruntime import describe_providers, provider_report
from stylize_rt.runtime.codecs import HWACCELS, EncodeOptions
from stylize_rt.runtime.demo import print_result, run_demo
from stylize_rt.runtime.pipeline import PipelineConfig
from stylize_rt.runtime.session import ModelChoice, RunConfig, StyleChoice, describe_model, open_run
from stylize_rt.runtime.sources import DEFAULT_RECONNECTS, DEFAULT_TIMEOUT_S
from stylize_rt.sizes import check_texture_scale, parse_size

EXIT_CODES = ("exit codes: 0 ok, 1 error, 2 bad input or missing dependency, 3 output error, "
              "4 done but some inputs skipped (named on stderr), 130 interrupted")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands to ``stylize-rt``."""
    _register_run(subparsers)
    _register_demo(subparsers)
    _register_models(subparsers)


# -- run --------------------------------------------------------------------------------
def _add_model_options(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--engine", metavar="MODEL",
                       help="model file: .onnx (and .plan / checkpoints where those backends are installed), "
                       "an embedded model name, or triton://HOST:PORT/NAME (a model served by Triton); "
                       "default: the embedded default style")
    model.add_argument("--backend", default="auto", help="backend that runs the model (default: by file type)")
    model.add_argument("--threads", type=int, default=0, help="CPU threads for the model (0: the backend's default)")
    precision = model.add_mutually_exclusive_group()
    precision.add_argument("--precision", choices=("auto", "fp32", "fp16", "int8"),
                           help="auto (default): a model folder's INT8 graph on CPU where it met its quality floor, "
                           "FP16 engines on GPUs; fp32/fp16 where the backend has the choice; int8: the folder's "
                           "INT8 graph")
    precision.add_argument("--fp16", dest="precision", action="store_const", const="fp16", help="= --precision fp16")
    precision.add_argument("--fp32", dest="precision", action="store_const", const="fp32", help="= --precision fp32")
    model.add_argument("--layout", choices=("nhwc", "nchw"),
                       help="the model's tensor layout (default: from its metadata, else from its graph)")
    model.add_argument("--input-range", choices=("0-255", "0-1", "-1-1"),
                       help="the model's pixel value range (default: from its metadata, else probed); "
                       "write --input-range=-1-1 for -1..1")


def add_style_options(parser: argparse.ArgumentParser, timeline: bool = True) -> None:
    """The ``style`` option group (``run``; ``batch`` without the timeline, which follows one video's clock)."""
    style = parser.add_argument_group("style (a multi-style model's styles; strength and colour work on any model)")
    pick = style.add_mutually_exclusive_group()
    pick.add_argument("--style", metavar="NAME|INDEX", help="which style (stylize-rt models lists them)")
    pick.add_argument("--mix", metavar="A=W,B=W", help='a blend of styles, e.g. "mosaic=0.7,waves=0.3"')
    if timeline:
        pick.add_argument("--style-timeline", metavar="A@S,B@S",
                          help='styles over time, blending between keyframes: "mosaic@0,waves@4" (seconds of the video)')
    style.add_argument("--strength", type=float, default=1.0, help="0 = the input, 1 = full style (default 1)")
    style.add_argument("--preserve-color", action="store_true", help="keep the input's colours, take the style's texture")
    style.add_argument("--texture-scale", type=float, default=1.0, metavar="S",
                       help="draw the style's texture S times larger (1 to 16, default 1): the model runs on the frame "
                       "shrunk by S, about S*S times less work, and its change goes back onto the full-size frame; "
                       "for large photos and for 1280x720 at full frame rate on a CPU")


def _register_run(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="stylize a camera, video, image, folder, stream or raw pipe (the default command)",
        description="Stylize frames from a camera, a file, a folder, a network stream or raw frames on stdin. "
        "Examples: stylize-rt --camera 0; stylize-rt --input in.mp4 --output out.mp4; "
        "ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - | stylize-rt --input - --raw-size 1280x720 --output - | "
        "ffplay -f rawvideo -pixel_format rgb24 -video_size 1280x720 -",
        epilog=EXIT_CODES,
    )
    _add_model_options(parser)
    add_style_options(parser)
    src = parser.add_argument_group("source (one of)")
    src.add_argument("--camera", type=int, metavar="N", help="camera device index (/dev/videoN on Linux)")
    src.add_argument("--input", metavar="PATH|URL|-",
                     help="video file, image, image folder, rtsp/rtmp/udp/srt/http(s)/HLS URL, or - for raw frames on stdin")
    src.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                     help=f"seconds a network stream may send nothing before it counts as lost (default {DEFAULT_TIMEOUT_S:g})")
    src.add_argument("--reconnect", type=int, default=DEFAULT_RECONNECTS, metavar="N",
                     help=f"reopen a lost network stream up to N times with backoff (default {DEFAULT_RECONNECTS}; 0: never)")
    src.add_argument("--camera-size", metavar="WxH", help="ask the camera for this capture size")
    src.add_argument("--camera-fps", type=float, metavar="FPS", help="ask the camera for this frame rate")
    src.add_argument("--raw-size", metavar="WxH", help="frame size of raw frames on stdin (--input -)")
    src.add_argument("--pix-fmt", choices=("rgb24", "bgr24"), default="rgb24",
                     help="byte order of raw frames on stdin and stdout (default rgb24)")
    src.add_argument("--fps", type=float,
                     help="re-time video outputs to this constant rate (default: the source's own timestamps; "
                     "30 for raw input)")
    out = parser.add_argument_group("output")
    out.add_argument("--output", metavar="PATH|URL|-",
                     help="video file (.mp4 .mov .mkv .webm .ts .avi), image, folder, stream URL (udp:// srt:// "
                     "rtmp:// rtsp://), virtualcam, or - for raw frames on stdout")
    out.add_argument("--codec", metavar="CODEC",
                     help="video codec: h264 (default for .mp4 .mov .mkv .ts and streams), hevc, vp9 (.webm), av1, "
                     "mjpeg (.avi), or an FFmpeg encoder name such as libx264 or h264_nvenc")
    out.add_argument("--crf", type=float, help="constant quality (lower is better; default 23 for H.264)")
    out.add_argument("--bitrate", metavar="RATE", help="target bit rate instead of --crf, e.g. 4M or 800k")
    out.add_argument("--preset", help="encoder speed preset (H.264 default veryfast; medium gives smaller files)")
    out.add_argument("--hwaccel", choices=HWACCELS, default="auto",
                     help="NVDEC/NVENC through FFmpeg where the driver has them (auto, the default), "
                     "cuda (ask, note when it falls back), none (software only)")
    out.add_argument("--no-audio", action="store_true", help="leave the input's audio out of video outputs")
    out.add_argument("--no-display", action="store_true", help="never open a window")
    out.add_argument("--screenshot-dir", default=".", help="where the window's s key saves PNGs")
    proc = parser.add_argument_group("processing")
    size = proc.add_mutually_exclusive_group()
    size.add_argument("--size", metavar="WxH", help="processing (and output) size")
    size.add_argument("--scale", type=float, help="processing size as a factor of the source size")
    proc.add_argument("--batch", type=int, default=1, help="frames per model call for files (live sources: 1)")
    proc.add_argument("--max-frames", type=int, help="stop after this many frames")
    proc.add_argument("--no-grid-anchor", action="store_true",
                      help="videos and cameras: do not pad frames to keep the model's texture grid on the scene "
                      "as the camera moves (docs/RUNTIME.md, 'Camera shake')")
    proc.add_argument("--stats", action="store_true", help="print per-stage latency and dropped frames at exit")
    proc.add_argument("--no-progress", action="store_true", help="no progress bar for file runs")
    cap = parser.add_argument_group("captions")
    cap.add_argument("--caption-engine", metavar="DIR", help="exported captioner folder: newest caption overlaid")
    cap.add_argument("--caption-interval", type=float, default=1.0, help="seconds between captions (default 1)")
    cap.add_argument("--caption-log", metavar="PATH|-", help="also write captions as JSON lines here (- for stdout)")
    parser.set_defaults(handler=run_command)


def _install_sigterm() -> None:
    """SIGTERM ends a run like Ctrl-C: stop, finalize the output, exit 130."""
    if threading.current_thread() is not threading.main_thread():
        return

    def _raise(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


def model_choice(args: argparse.Namespace) -> ModelChoice:
    """The ``model`` option group as a ``ModelChoice`` (shared by run and demo)."""
    return ModelChoice(args.engine, args.backend, args.threads, args.precision, args.layout, args.input_range)


def style_choice(args: argparse.Namespace) -> StyleChoice:
    """The ``style`` option group as a ``StyleChoice`` (shared by run and batch)."""
    return StyleChoice(args.style, args.mix, args.strength, args.preserve_color, getattr(args, "style_timeline", None),
                       check_texture_scale(args.texture_scale))


def run_config(args: argparse.Namespace) -> RunConfig:
    """``run``'s arguments, checked, as a ``RunConfig``."""
    if args.camera is not None and args.input is not None:
        raise BadInputError("give one source: --camera N or --input PATH|URL|-, not both")
    if args.batch < 1:
        raise BadInputError(f"--batch must be >= 1 (got {args.batch})")
    if args.max_frames is not None and args.max_frames < 1:
        raise BadInputError(f"--max-frames must be >= 1 (got {args.max_frames})")
    for flag, value in (("--fps", args.fps), ("--camera-fps", args.camera_fps), ("--scale", args.scale),
                        ("--timeout", args.timeout)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise BadInputError(f"{flag} must be a number above 0 (got {value:g})")
    if args.reconnect < 0:
        raise BadInputError(f"--reconnect must be >= 0 (got {args.reconnect})")
    if args.output == "-" and args.caption_log == "-":
        raise BadInputError("stdout carries the raw frames; write --caption-log to a file")
    raw_size = parse_size(args.raw_size, "--raw-size") if args.raw_size else None
    if args.input == "-" and raw_size is None:
        raise BadInputError("--input - (raw frames on stdin) needs --raw-size WxH")
    pipeline = PipelineConfig(size=parse_size(args.size) if args.size else None, scale=args.scale, batch=args.batch,
                              max_frames=args.max_frames, progress=not args.no_progress,
                              grid_anchor=not args.no_grid_anchor)
    return RunConfig(
        model=model_choice(args), style=style_choice(args), input=args.input, camera=args.camera,
        camera_size=parse_size(args.camera_size, "--camera-size") if args.camera_size else None,
        camera_fps=args.camera_fps, raw_size=raw_size, pix_fmt=args.pix_fmt, fps=args.fps, output=args.output,
        encode=EncodeOptions(args.codec, args.crf, args.bitrate, args.preset, args.hwaccel),
        audio=not args.no_audio, reconnect=args.reconnect, timeout_s=args.timeout, display=not args.no_display,
        screenshot_dir=args.screenshot_dir, pipeline=pipeline,
        caption_engine=args.caption_engine, caption_interval=args.caption_interval, caption_log=args.caption_log,
    )


def run_command(args: argparse.Namespace) -> int:
    config = run_config(args)
    _install_sigterm()
    with open_run(config) as session:
        print(f"stylize-rt: model: {describe_model(config.model, session.stylizer)}", file=sys.stderr)
        try:
            stats = session.run()
        except BaseException:
            if args.stats and session.runner is not None:  # Ctrl-C is how camera runs usually end
                print(session.runner.stats.report(), file=sys.stderr)
            raise
        live = session.source.live
        skipped = list(getattr(session.source, "skipped", []))
    if args.stats:
        print(stats.report(), file=sys.stderr)
    else:
        print(f"stylize-rt: {stats.frames_out} frames, {stats.fps:.1f} frames/s"
              + (f", {stats.dropped_capture} stale frames dropped" if live else ""), file=sys.stderr)
    if skipped:
        shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        print(f"stylize-rt: skipped {len(skipped)} unreadable input(s): {shown}", file=sys.stderr)
    if stats.skipped:
        shown = ", ".join(stats.skipped[:5]) + (f" and {len(stats.skipped) - 5} more" if len(stats.skipped) > 5 else "")
        print(f"stylize-rt: skipped {len(stats.skipped)} frame(s) the model could not process: {shown}",
              file=sys.stderr)
    if skipped or stats.skipped:
        return EXIT_SKIPPED
    return 0


# -- demo -------------------------------------------------------------------------------
def _register_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="stylize a built-in sample clip with the embedded default (what `make demo` runs)",
        description="Builds a short clip from scikit-image's sample photos (input.mp4), stylizes it through the "
        "same file-to-file pipeline as `stylize-rt run` (stylized.mp4), writes side_by_side.png and prints frames/s.",
        epilog=EXIT_CODES,
    )
    _add_model_options(parser)
    parser.add_argument("--output-dir", default="out/demo", help="where the clip, result and PNG go (default out/demo)")
    parser.add_argument("--frames", type=int, default=96, help="clip length in frames (default 96)")
    parser.add_argument("--size", default="640x360", metavar="WxH", help="clip size (default 640x360)")
    parser.add_argument("--fps", type=float, default=24.0, help="clip frame rate (default 24)")
    parser.add_argument("--batch", type=int, default=1, help="frames per model call")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    if args.frames < 1:
        raise BadInputError(f"--frames must be >= 1 (got {args.frames})")
    if not 1 <= args.batch <= 64:
        raise BadInputError(f"--batch must be in 1..64 (got {args.batch})")
    if not (math.isfinite(args.fps) and args.fps > 0):
        raise BadInputError(f"--fps must be a number above 0 (got {args.fps:g})")
    size = parse_size(args.size)
    _install_sigterm()
    result = run_demo(Path(args.output_dir), args.frames, size, args.fps, model_choice(args), args.batch,
                      progress=not args.no_progress)
    print_result(result)
    return 0


# -- models -----------------------------------------------------------------------------
def _register_models(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the embedded models and where they came from",
                                   description="List the models shipped inside the package.")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(handler=models_command)


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "missing"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def models_command(args: argparse.Namespace) -> int:
    try:
        models = [m.to_dict() for m in list_models()]
    except (ValueError, TypeError, KeyError) as exc:  # a hand-edited or half-written model.json
        raise BadInputError(f"corrupt model card under {MODELS_DIR}: {type(exc).__name__}: {exc}") from None
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print(f"no embedded models in {MODELS_DIR}")
    for m in models:
        default = "  (default)" if m["name"] == DEFAULT_GENERATOR else ""
        total = sum(f["bytes"] or 0 for f in m["files"].values())
        print(f"{m['name']}{default}  [{m['kind']}]  {_human_bytes(total)}")
        if m.get("description"):
            print(f"  {m['description']}")
        if m.get("styles"):
            print(f"  styles: {', '.join(m['styles'])}  (--style NAME, --mix, window keys 1-9)")
        width = max((len(role) for role in m["files"]), default=0)
        for role, f in m["files"].items():
            print(f"  {role:<{width}}  {_human_bytes(f['bytes']):>10}  {f['path']}")
        print(f"  source: {m['source']}")
        print()
    for line in describe_providers(provider_report()):  # what the ONNX models can actually run on here
        print(line)
    return 0
