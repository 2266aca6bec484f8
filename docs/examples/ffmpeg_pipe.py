"""Embed the Stylizer in an ffmpeg pipe: raw rgb24 frames in on stdin, stylized frames out on stdout.

    ffmpeg -loglevel error -i in.mp4 -f rawvideo -pix_fmt rgb24 - \
      | python docs/examples/ffmpeg_pipe.py --size 1280x720 --engine gen.onnx \
      | ffmpeg -loglevel error -f rawvideo -pix_fmt rgb24 -video_size 1280x720 -framerate 30 -i - \
               -c:v libx264 -pix_fmt yuv420p out.mp4

``stylize-rt --input - --raw-size 1280x720 --output -`` does the same with threads and
back-pressure; this file shows the few lines a user needs in their own program.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from stylize_rt.runtime.session import open_stylizer
from stylize_rt.sizes import parse_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", required=True, help="frame size WxH of the raw stream")
    parser.add_argument("--engine", help="model file (default: the embedded default style)")
    args = parser.parse_args()
    width, height = parse_size(args.size)
    frame_bytes = width * height * 3
    stylizer = open_stylizer(args.engine)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        while True:
            data = stdin.read(frame_bytes)  # a full frame, or less only at the end of the stream
            if not data:
                break
            if len(data) != frame_bytes:
                print(f"error: stream ended mid-frame ({len(data)} of {frame_bytes} bytes)", file=sys.stderr)
                return 2
            frame = np.frombuffer(data, np.uint8).reshape(height, width, 3)
            stdout.write(stylizer(frame).tobytes())
        stdout.flush()
    finally:
        stylizer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
