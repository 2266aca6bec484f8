"""The torch backend's fast GPU path: per-shape CUDA graphs, staged chunks, device frames.

On the CPU, the staged path (static slots per chunk shape, chunks, graph bookkeeping) runs
through a stand-in graph that replays the model on the slot's static inputs; CUDA-graph capture
itself is torch's and runs in the ``gpu``-marked tests below, against the eager backend. A
multi-style checkpoint's controls go through the same static slots: a replayed graph must draw
the style, strength and colour flag of the call it replays for, chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from stylize_rt import contract
from stylize_rt.errors import BadInputError
from stylize_rt.runtime.backends.torch_backend import MAX_SLOTS, TorchBackend

STYLES = ["red", "blue", "grey"]


@pytest.fixture(scope="module")
def checkpoint(tiny_generator, tmp_path_factory):
    from stylize_rt.nets.checkpoint import save_generator

    return save_generator(tmp_path_factory.mktemp("ckpt") / "gen", tiny_generator)


@pytest.fixture(scope="module")
def multi_checkpoint(tmp_path_factory):
    """A tiny 3-style generator whose per-style norm scales and shifts differ (random, fixed seed)."""
    import torch
    from conftest import TINY_CONFIG

    from stylize_rt.nets.checkpoint import save_generator
    from stylize_rt.nets.generator import Generator, GeneratorConfig

    torch.manual_seed(1)
    generator = Generator(GeneratorConfig.from_dict({**TINY_CONFIG, "n_styles": len(STYLES)})).eval()
    with torch.no_grad():
        for p in generator.norm_parameters():
            p.add_(torch.randn_like(p) * 0.8)
    return save_generator(tmp_path_factory.mktemp("multi") / "gen", generator, extra={"styles": STYLES})


def controls(styles, strength=None, keep=None) -> dict[str, np.ndarray]:
    n = len(styles)
    return {contract.INPUT_STYLE: np.eye(len(STYLES), dtype=np.float32)[list(styles)],
            contract.INPUT_STRENGTH: np.asarray(np.ones(n) if strength is None else strength, np.float32),
            contract.INPUT_PRESERVE_COLOR: np.asarray(np.zeros(n) if keep is None else keep, np.float32)}


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


def test_single_style_checkpoints_take_the_frames_only(eager):
    assert [spec.name for spec in eager.inputs] == [contract.INPUT_IMAGE]
    assert contract.STYLES not in eager.metadata and eager.n_styles == 1


@pytest.fixture(scope="module")
def multi_eager(multi_checkpoint):
    be = TorchBackend(multi_checkpoint, device="cpu", threads=1, warmup=0)
    yield be
    be.close()


def test_a_replayed_graph_draws_the_new_style_on_the_next_frame(multi_checkpoint, multi_eager):
    be = StandInGraphTorchBackend(multi_checkpoint, device="cpu", threads=1, warmup=0, overlap_chunks=1)
    x = frames((1, 24, 32, 3), 3)
    seen = []
    for call, style in enumerate([0, 0, 1, 2, 1]):  # plain, captured, then replays as the style changes
        feeds = {"input": x, **controls([style], strength=[0.8], keep=[call % 2])}
        got = be.infer(feeds)["output"]
        assert np.array_equal(got, multi_eager.infer(feeds)["output"]), f"call {call}: stale controls"
        seen.append(got)
    assert be.graph_stats["captured"] == 1 and be.graph_stats["replayed"] == 3
    assert np.abs(seen[2].astype(int) - seen[1]).mean() > 1.0, "the styles look alike: the test would prove nothing"
    be.close()


def test_chunks_take_their_frames_controls(multi_checkpoint, multi_eager):
    be = StandInGraphTorchBackend(multi_checkpoint, device="cpu", threads=1, warmup=0, overlap_chunks=2)
    for seed in range(3):  # batch 3 in chunks of 2 + 1: plain, captured, replayed
        x = frames((3, 16, 24, 3), seed)
        feeds = {"input": x, **controls([seed % 3, (seed + 1) % 3, (seed + 2) % 3], strength=[1.0, 0.5, 0.0],
                                        keep=[seed % 2, 1, 0])}
        got = be.infer(feeds)["output"]
        assert np.array_equal(got, multi_eager.infer(feeds)["output"]), f"call {seed}"
        assert np.array_equal(got[2], x[2]), "strength 0 gives the input exactly"
    assert be.graph_stats["replayed"] == 2
    # one row of controls stands for every frame (as in the exported graph), chunks included
    one = be.infer({"input": x, **controls([1], strength=[0.6], keep=[1])})["output"]
    assert np.array_equal(one, multi_eager.infer({"input": x, **controls([1] * 3, strength=[0.6] * 3,
                                                                           keep=[1] * 3)})["output"])
    be.close()


def test_controls_are_checked_like_the_frames(multi_eager):
    x = frames((2, 16, 16, 3), 0)
    with pytest.raises(BadInputError, match=r"input 'style' must have shape \?x3, got 2x2"):
        multi_eager.infer({"input": x, **controls([0, 1]), "style": np.ones((2, 2), np.float32)})
    with pytest.raises(BadInputError, match=r"input 'strength' has 3 rows for 2 frames"):
        multi_eager.infer({"input": x, **controls([0, 1]), "strength": np.ones(3, np.float32)})
    with pytest.raises(BadInputError, match="missing input 'preserve_color'"):
        multi_eager.infer({"input": x, **{k: v for k, v in controls([0, 1]).items() if k != "preserve_color"}})


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


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graphs_draw_each_calls_controls(multi_checkpoint, precision):
    graphs = _cuda_backend(multi_checkpoint, precision=precision, overlap_chunks=2)
    plain = _cuda_backend(multi_checkpoint, precision=precision, cuda_graph=False)
    x = frames((3, 40, 56, 3), 2)
    for call in range(4):  # plain, captured, replayed twice, the style of every frame changing each call
        feeds = {"input": x, **controls([(call + i) % 3 for i in range(3)], strength=[1.0, 0.5, 0.0],
                                        keep=[call % 2, 1, 0])}
        got, want = graphs.infer(feeds)["output"], plain.infer(feeds)["output"]
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, f"{precision} call {call}"
        assert np.array_equal(got[2], x[2])
    assert graphs.graph_stats["replayed"] >= 2 and graphs.graph_stats["capture_failed"] == 0
    graphs.close()
    plain.close()


@pytest.mark.gpu
def test_device_frames_and_controls(multi_checkpoint):
    import torch

    be = _cuda_backend(multi_checkpoint, precision="fp32")
    host = frames((2, 32, 48, 3), 4)
    for style in range(3):  # plain, captured, replayed: a new style each time
        feeds = {"input": host, **controls([style, (style + 1) % 3], strength=[1.0, 0.7], keep=[0, 1])}
        want = be.infer(feeds)["output"]
        device = {name: torch.from_numpy(value).cuda() for name, value in feeds.items()}
        y = torch.empty_like(device["input"])
        be.infer_device(device, {"output": y})
        torch.cuda.synchronize()
        assert np.abs(y.cpu().numpy().astype(int) - want.astype(int)).max() <= 1, f"style {style}"
    assert be.graph_stats["replayed"] >= 1
    be.close()


@pytest.mark.gpu
@pytest.mark.slow
def test_torch_compile_on_cuda_takes_controls(multi_checkpoint):
    compiled = _cuda_backend(multi_checkpoint, precision="fp16", compile=True)
    plain = _cuda_backend(multi_checkpoint, precision="fp16", cuda_graph=False)
    x = frames((1, 64, 64, 3), 11)
    for style in (0, 1, 2, 0):
        feeds = {"input": x, **controls([style], strength=[0.8], keep=[style % 2])}
        got, want = compiled.infer(feeds)["output"], plain.infer(feeds)["output"]
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 2, f"style {style}"
    assert compiled.graph_stats["replayed"] >= 1
    compiled.close()
    plain.close()
