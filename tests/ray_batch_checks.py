"""The Ray half of test_batch.py, run by it inside a network namespace that has only loopback.

Not collected on its own (no ``test_`` prefix): test_batch.py starts ``pytest`` on this file
under ``unshare --net`` (tests/netns.py), so the local Ray cluster's servers have no address
but 127.0.0.1 to bind. One ``ray.init(num_cpus=2, include_dashboard=False)`` for the module.
"""

from __future__ import annotations

import os
import signal

import pytest
from PIL import Image
from test_batch import ONE_THREAD, _frames, _images, _stamps, inputs  # noqa: F401 - the fixture, shared

from stylize_rt.runtime.batch import BatchConfig, run_batch

if os.environ.get("STYLIZE_RT_LOOPBACK_NETNS") != "1":
    pytest.skip("run by test_batch.py inside a loopback-only network namespace", allow_module_level=True)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the Ray tests need ray[data] (pip install 'stylize-rt[scale]')")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024 * 1024)
    yield ray
    ray.shutdown()


def test_ray_job_writes_what_the_local_job_writes(inputs, ray_cluster, tmp_path):  # noqa: F811 - the fixture
    local = run_batch(BatchConfig(inputs=(str(inputs),), output=str(tmp_path / "local"), model=ONE_THREAD,
                                  progress=False))
    on_ray = run_batch(BatchConfig(inputs=(str(inputs),), output=str(tmp_path / "ray"), model=ONE_THREAD,
                                   ray_address="local", actors=2, progress=False))
    assert on_ray.executor == "ray, 2 actor(s)"
    assert on_ray.count("done") == local.count("done") == 8
    assert [r.source for r in on_ray.failed] == [str(inputs / "broken.png")]
    for i in range(6):
        name = f"img{i:02d}.png"
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert _frames(tmp_path / "ray" / "clip.mp4") == 10
    assert len({r.worker for r in on_ray.results}) >= 1 and os.getpid() not in {r.worker for r in on_ray.results}


def test_ray_job_survives_a_killed_worker(ray_cluster, tmp_path):
    """SIGKILL one actor mid-job: Ray restarts it and retries its batch; finished outputs are not rewritten."""
    _images(tmp_path / "in", 24, height=96, width=128, seed=5)
    out = tmp_path / "out"
    config = BatchConfig(inputs=(str(tmp_path / "in"),), output=str(out), model=ONE_THREAD, batch=1,
                         ray_address="local", actors=2, progress=False)
    killed: dict = {}

    def kill_one(result) -> None:
        if not killed and result.status == "done":
            killed["at"] = _stamps(out)  # every output finished before the kill
            killed["pid"] = result.worker
            os.kill(result.worker, signal.SIGKILL)

    try:
        summary = run_batch(config, on_result=kill_one)
    except Exception as exc:  # noqa: BLE001 - a job Ray could not finish must resume on the next run
        print(f"first run failed ({exc}); resuming")
        summary = run_batch(config)
    assert killed, "no worker was killed"
    workers = [r.worker for r in summary.results]
    print(f"killed {killed['pid']} after {len(killed['at'])} outputs; workers: {sorted(set(workers))}")
    resumed = run_batch(config)  # whatever happened above, a rerun has nothing left to do
    assert resumed.count("done") == 0 and len(resumed.plan.done_before) == 24 and not resumed.failed
    assert not summary.failed
    after = _stamps(out)
    assert len(after) == 24
    for name, stamp in killed["at"].items():
        assert after[name] == stamp, f"{name} was rewritten after the kill"
    for name in after:
        with Image.open(out / name) as image:
            image.verify()
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))
