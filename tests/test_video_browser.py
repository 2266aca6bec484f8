"""The produced videos play in a real browser: headless Chromium opens them in a ``<video>``.

The test serves a page and the video on 127.0.0.1, starts Debian's ``chromium`` headless, and
the page posts back what the element saw: ``readyState``, ``duration``, whether playback
advanced, and the mean of a frame drawn onto a canvas (not black). Skips with the reason
where Chromium is not installed (``make test`` installs it where apt-get and root are).
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from test_runtime_cli import run_cli
from test_runtime_helpers import identity_onnx
from video_helpers import clip_with_audio, ffprobe, raw_clip, stream

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><body>
<video id="v" muted playsinline preload="auto" src="VIDEO"></video>
<script>
const v = document.getElementById('v');
function report(obj) { fetch('/result', {method: 'POST', body: JSON.stringify(obj)}); }
v.addEventListener('error', () => report({error: v.error ? v.error.code : -1, message: v.error ? v.error.message : ''}));
v.addEventListener('loadeddata', async () => {
  const readyState = v.readyState;
  await v.play().catch(() => null);
  await new Promise(r => setTimeout(r, 400));
  const played = v.currentTime;
  v.pause();
  v.currentTime = v.duration / 2;
  await new Promise(r => v.addEventListener('seeked', r, {once: true}));
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
  report({readyState, duration: v.duration, width: v.videoWidth, height: v.videoHeight, played,
          mean: sum / (d.length / 4 * 3)});
});
</script></body></html>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("chromium not installed (make test installs Debian's chromium where apt-get and root are available)")


def play_in_browser(video: Path, timeout_s: float = 60.0) -> dict:
    """What a ``<video>`` element in headless Chromium reports for ``video``."""
    browser = chromium()
    site = Path(tempfile.mkdtemp(prefix="stylize-rt-browser-"))
    shutil.copy(video, site / video.name)
    (site / "index.html").write_text(PAGE.replace("VIDEO", video.name))
    result: dict = {}
    done = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_POST(self):
            result.update(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={site / 'profile'}",
                             f"http://127.0.0.1:{server.server_address[1]}/index.html"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert done.wait(timeout_s), "the page never reported (Chromium did not load the video)"
    finally:
        proc.kill()
        proc.wait(10)
        server.shutdown()
        shutil.rmtree(site, ignore_errors=True)
    return result


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> Path:
    return identity_onnx(tmp_path_factory.mktemp("browser_identity") / "identity.onnx")


def _check_plays(report: dict, source: Path, width: int, height: int) -> None:
    assert "error" not in report, report
    assert report["readyState"] >= 2 and report["played"] > 0, report
    assert (report["width"], report["height"]) == (width, height)
    frame = 1 / 25
    assert abs(report["duration"] - float(ffprobe(source)["format"]["duration"])) <= frame, report
    assert report["mean"] > 20, report  # a drawn frame, not black


def test_default_mp4_plays_in_chromium(identity, tmp_path):
    src = clip_with_audio(tmp_path / "talk.mp4", seconds=2.0, size="320x240")
    out = tmp_path / "talk_styled.mp4"
    result = run_cli("--engine", identity, "--input", src, "--output", out, "--no-progress")
    assert result.returncode == 0, result.stderr.decode()
    assert stream(ffprobe(out), "audio") is not None
    _check_plays(play_in_browser(out), src, 320, 240)


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_odd_size_vp9_plays_at_its_exact_size(identity, tmp_path, suffix):
    """What the odd-size warning recommends (--codec vp9) really plays, at 321x239."""
    rng = np.random.default_rng(1)
    frames = np.clip(rng.normal(128, 40, (50, 239, 321, 3)), 0, 255).astype(np.uint8)
    src = raw_clip(tmp_path / "odd.mkv", frames)
    out = tmp_path / f"odd{suffix}"
    result = run_cli("--engine", identity, "--input", src, "--output", out, "--codec", "vp9", "--no-progress")
    assert result.returncode == 0, result.stderr.decode()
    _check_plays(play_in_browser(out), src, 321, 239)
