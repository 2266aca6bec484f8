"""The torch backend's fast GPU path: per-shape CUDA graphs, staged chunks, device frames.

On the CPU, the staged path (static slots per chunk shape, chunks, graph bookkeeping) runs
through a stand-in graph that replays the model on the slot's static input; CUDA-graph capture
itself is torch's and runs in the ``gpu``-marked tests below, against the eager backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from stylize_rt.errors import BadInputError
from stylize_rt.runtime.backends.torch_backend import MAX_SLOTS, TorchBackend


@pytest.fixture(scope="module")
def checkpoint(tiny_generator, tmp_path_factory):
    from stylize_rt.nets.checkpoint import save_generator

    return save_generator(tmp_path_factory.mktemp("ckpt") / "gen", tiny_generator)


@dataclass
class StandInGraph:
    """A captured graph on the CPU: replay runs the model on the slot's static inputs into a static output."""

    backend: Any
    slot: Any
    out: Any
    replays: int = 0

    @property
    def graph(self):
        return self

    def replay(self):
        self.out.copy_(self.backend.eager(*self.slot.dev_inputs))
        self.replays += 1


class StandInGraphTorchBackend(TorchBackend):
    """The torch backend with CPU stand-ins for CUDA-graph capture (a test stand-in; never shipped)."""

    fail_captures = 0
    captures: list

    def _graphs_supported(self) -> bool:
        return True

    def eager(self, *inputs):
        return self._forward(*inputs)

    def _capture(self, key):
        self.captures = getattr(self, "captures", [])
        if self.fail_captures:
            self.fail_captures -= 1
            return None
        slot = self._slots[key]
        graph = StandInGraph(self, slot, self._forward(*slot.dev_inputs).clone())
        self.captures.append((key, graph))
        return graph


def frames(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def eager(checkpoint):
    be = TorchBackend(checkpoint, device="cpu", threads=1, warmup=0)
    yield be
    be.close()


def test_cpu_default_runs_plain_without_staging(checkpoint):
    be = TorchBackend(checkpoint, device="cpu", threads=1, warmup=0)
    be.infer({"input": frames((1, 24, 40, 3), 0)})
    assert be.graph_stats == {"plain": 0, "captured": 0, "replayed": 0, "capture_failed": 0, "dropped": 0}
    with pytest.raises(BadInputError, match="needs the torch backend on CUDA"):
        be.infer_device({"input": np.zeros((1, 8, 8, 3), np.uint8)})
    be.close()


def test_chunks_are_captured_after_one_plain_run_and_replay_fresh_input(checkpoint, eager):
    be = StandInGraphTorchBackend(checkpoint, device="cpu", threads=1, warmup=0, overlap_chunks=2)
    outcomes = []
    for seed in range(4):
        x = frames((3, 24, 40, 3), seed)
        got = be.infer({"input": x})["output"]
        assert np.array_equal(got, eager.infer({"input": x})["output"]), f"call {seed}: stale or wrong pixels"
        outcomes.append(dict(be.graph_stats))
    # batch 3 in 2 chunks (2 + 1 frames): two slots, each plain first, captured next, replayed after
    assert outcomes[0]["plain"] == 2 and outcomes[1]["captured"] == 2 and outcomes[3]["replayed"] == 4
    assert sorted(key[1][0] for key, _ in be.captures) == [1, 2]
    be.close()


def test_one_chunk_and_views(checkpoint, eager):
    be = StandInGraphTorchBackend(checkpoint, device="cpu", threads=1, warmup=0, overlap_chunks=1,
                                  copy_outputs=False)
    x = frames((2, 16, 16, 3), 7)
    first = be.infer({"input": x})["output"]
    second = be.infer({"input": frames((2, 16, 16, 3), 8)})["output"]
    assert np.array_equal(second, eager.infer({"input": frames((2, 16, 16, 3), 8)})["output"])
    assert np.shares_memory(first, second) or first.base is not None, "copy_outputs=False returns the static buffer"
    be.close()


def test_failed_capture_is_retried_and_slots_are_bounded(checkpoint, eager):
    be = StandInGraphTorchBackend(checkpoint, device="cpu", threads=1, warmup=0, overlap_chunks=1)
    be.fail_captures = 1
    x = frames((1, 16, 24, 3), 1)
    for _ in range(2 + 16 + 1):
        assert np.array_equal(be.infer({"input": x})["output"], eager.infer({"input": x})["output"])
    assert be.graph_stats["capture_failed"] == 1 and be.graph_stats["captured"] == 1
    for i in range(MAX_SLOTS + 1):  # more shapes than slots: the oldest slot's graph is forgotten
        shape = (1, 16, 16 + i, 3)
        be.infer({"input": frames(shape, i)})
        be.infer({"input": frames(shape, i)})
    assert be.graph_stats["dropped"] >= 1
    assert np.array_equal(be.infer({"input": x})["output"], eager.infer({"input": x})["output"])
    be.close()


def test_overlap_chunks_must_be_positive(checkpoint):
    with pytest.raises(BadInputError, match="overlap_chunks"):
        TorchBackend(checkpoint, device="cpu", overlap_chunks=0)


# -- on a GPU ----------------------------------------------------------------------------------


def _cuda_backend(checkpoint, **kw):
    return TorchBackend(checkpoint, device="cuda", threads=1, warmup=0, **kw)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_graphs_match_eager_cuda(checkpoint, precision):
    graphs = _cuda_backend(checkpoint, precision=precision, timing=True)
    plain = _cuda_backend(checkpoint, precision=precision, cuda_graph=False)
    for seed in range(4):
        x = frames((2, 72, 120, 3), seed)
        got, want = graphs.infer({"input": x})["output"], plain.infer({"input": x})["output"]
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, f"{precision} call {seed}"
    stats = graphs.graph_stats
    assert stats["captured"] >= 1 and stats["replayed"] >= 1 and stats["capture_failed"] == 0, stats
    assert plain.graph_stats["captured"] == 0
    timings = graphs.last_timings
    assert set(timings) == {"h2d_ms", "compute_ms", "d2h_ms", "host_ms"} and timings["compute_ms"] > 0
    graphs.close()
    plain.close()


@pytest.mark.gpu
def test_chunked_batches_equal_one_chunk(checkpoint):
    two = _cuda_backend(checkpoint, precision="fp16", overlap_chunks=2)
    one = _cuda_backend(checkpoint, precision="fp16", overlap_chunks=1)
    x = frames((5, 64, 96, 3), 3)
    for _ in range(3):
        assert np.abs(two.infer({"input": x})["output"].astype(int) - one.infer({"input": x})["output"].astype(int)).max() <= 1
    two.close()
    one.close()


@pytest.mark.gpu
def test_device_frames_on_the_callers_stream(checkpoint):
    import torch

    be = _cuda_backend(checkpoint, precision="fp16")
    host = frames((1, 48, 64, 3), 5)
    want = be.infer({"input": host})["output"]
    side = torch.cuda.Stream()
    x = torch.from_numpy(host).cuda()
    side.wait_stream(torch.cuda.current_stream())
    for _ in range(3):  # plain, captured, replayed: all on the caller's side stream
        y = torch.empty_like(x)
        be.infer_device({"input": x}, {"output": y}, stream=side)
        side.synchronize()
        assert np.abs(y.cpu().numpy().astype(int) - want.astype(int)).max() <= 1
    out = be.infer_device({"input": x})["output"]  # default stream, the backend's memory
    torch.cuda.synchronize()
    assert np.abs(torch.as_tensor(out, device="cuda").cpu().numpy().astype(int) - want.astype(int)).max() <= 1
    cupy = pytest.importorskip("cupy")
    c = cupy.asarray(host)
    got = be.infer_device({"input": c}, stream=cupy.cuda.Stream.null)["output"]
    cupy.cuda.Stream.null.synchronize()
    assert np.abs(cupy.asnumpy(cupy.asarray(got)).astype(int) - want.astype(int)).max() <= 1
    be.close()


@pytest.mark.gpu
def test_stylize_device_with_the_torch_backend(checkpoint):
    import torch

    from stylize_rt.runtime.stylizer import Stylizer

    stylizer = Stylizer(_cuda_backend(checkpoint, precision="fp16"))
    host = frames((1, 40, 56, 3), 9)
    want = stylizer.stylize_batch(host)
    x = torch.from_numpy(host).cuda()
    y = torch.empty_like(x)
    stylizer.stylize_device(x, out=y, stream=torch.cuda.current_stream())
    torch.cuda.synchronize()
    assert np.abs(y.cpu().numpy().astype(int) - want.astype(int)).max() <= 1
    stylizer.close()


@pytest.mark.gpu
@pytest.mark.slow
def test_torch_compile_on_cuda_is_captured_too(checkpoint):
    compiled = _cuda_backend(checkpoint, precision="fp16", compile=True)
    plain = _cuda_backend(checkpoint, precision="fp16", cuda_graph=False)
    x = frames((1, 64, 64, 3), 11)
    for _ in range(3):
        got = compiled.infer({"input": x})["output"]
    assert np.abs(got.astype(int) - plain.infer({"input": x})["output"].astype(int)).max() <= 2
    assert compiled.graph_stats["captured"] == 1 and compiled.graph_stats["replayed"] >= 1
    compiled.close()
    plain.close()
