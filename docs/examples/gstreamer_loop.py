"""Embed the Stylizer in a GStreamer pipeline: appsink -> Stylizer -> appsrc.

Needs PyGObject with GStreamer 1.x (Debian/Ubuntu: ``apt install python3-gi gir1.2-gst-plugins-base-1.0
gstreamer1.0-plugins-good``). Example:

    python docs/examples/gstreamer_loop.py --engine gen.onnx \
        --src "v4l2src device=/dev/video0 ! videoconvert ! videoscale ! video/x-raw,width=640,height=360" \
        --sink "videoconvert ! autovideosink sync=false"

The appsink keeps one buffer and drops older ones (``max-buffers=1 drop=true``), so a
slow model never builds up latency on a live source: the same latest-frame-wins policy
as ``stylize-rt --camera``. Timestamps are carried from input to output buffers.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from stylize_rt.runtime.session import open_stylizer


def main() -> int:
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", help="model file (default: the embedded default style)")
    parser.add_argument("--src", required=True, help="GStreamer source chain producing raw video")
    parser.add_argument("--sink", required=True, help="GStreamer chain consuming raw RGB video")
    args = parser.parse_args()

    Gst.init(None)
    capture = Gst.parse_launch(
        f"{args.src} ! videoconvert ! video/x-raw,format=RGB ! "
        "appsink name=frames emit-signals=false max-buffers=1 drop=true sync=false"
    )
    output = Gst.parse_launch(f"appsrc name=styled is-live=true format=time do-timestamp=false ! {args.sink}")
    appsink = capture.get_by_name("frames")
    appsrc = output.get_by_name("styled")
    stylizer = open_stylizer(args.engine)
    capture.set_state(Gst.State.PLAYING)
    output.set_state(Gst.State.PLAYING)
    caps_set = False
    try:
        while True:
            sample = appsink.emit("try-pull-sample", Gst.SECOND)
            if sample is None:
                if appsink.get_property("eos"):
                    break
                continue
            structure = sample.get_caps().get_structure(0)
            width, height = structure.get_value("width"), structure.get_value("height")
            buffer = sample.get_buffer()
            ok, info = buffer.map(Gst.MapFlags.READ)
            if not ok:
                continue
            try:
                # Rows may be padded to 4 bytes: read with the real stride, then crop.
                stride = info.size // height
                frame = np.frombuffer(info.data, np.uint8).reshape(height, stride)[:, : width * 3]
                frame = np.ascontiguousarray(frame.reshape(height, width, 3))
            finally:
                buffer.unmap(info)
            styled = stylizer(frame)
            if not caps_set:
                appsrc.set_property("caps", Gst.Caps.from_string(
                    f"video/x-raw,format=RGB,width={width},height={height},framerate=0/1"))
                caps_set = True
            out = Gst.Buffer.new_wrapped(styled.tobytes())
            out.pts, out.dts, out.duration = buffer.pts, buffer.dts, buffer.duration
            if appsrc.emit("push-buffer", out) != Gst.FlowReturn.OK:
                break
    except KeyboardInterrupt:
        pass
    finally:
        appsrc.emit("end-of-stream")
        capture.set_state(Gst.State.NULL)
        output.set_state(Gst.State.NULL)
        stylizer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
