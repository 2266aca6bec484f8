"""The per-shape CUDA-graph rules (``stylize_rt.gpu.graphs.GraphCache``), without CUDA.

Capture/launch/destroy are recorded here, so the order the TensorRT and torch backends rely
on is checked exactly: plain at a new shape (and after every shape switch) -> capture on the
next call at that shape -> replay; buffer moves drop every graph; a failed capture is retried
after a back-off instead of never again; least recently used graphs go first.
"""

from __future__ import annotations

import pytest

from stylize_rt.gpu.graphs import RETRY_AFTER, GraphCache


class Recorder:
    """Capture/launch/destroy stand-ins: what a backend would do, as a list of events."""

    def __init__(self, fail: int = 0) -> None:
        self.events: list[tuple] = []
        self.fail = fail  # captures that fail before one succeeds
        self.made = 0

    def capture(self, key):
        if self.fail:
            self.fail -= 1
            self.events.append(("capture_failed", key))
            return None
        self.made += 1
        self.events.append(("capture", key))
        return (key, self.made)

    def launch(self, entry):
        self.events.append(("launch", entry))

    def destroy(self, entry):
        self.events.append(("destroy", entry))

    def cache(self, **kw) -> GraphCache:
        return GraphCache(self.capture, self.launch, self.destroy, **kw)


def run(cache: GraphCache, recorder: Recorder, key, switched: bool = False) -> str:
    if switched:
        cache.switched()
    return cache.run(key, lambda: recorder.events.append(("plain", key)))


def test_plain_then_capture_then_replay():
    r = Recorder()
    cache = r.cache()
    assert [run(cache, r, "A") for _ in range(4)] == ["plain", "captured", "replayed", "replayed"]
    assert r.events == [("plain", "A"), ("capture", "A"), ("launch", ("A", 1)), ("launch", ("A", 1)),
                        ("launch", ("A", 1))]
    assert cache.stats.to_dict() == {"plain": 1, "captured": 1, "replayed": 2, "capture_failed": 0, "dropped": 0}


def test_shape_switches_need_a_plain_run_first():
    """A -> B -> A -> B with a switch each time: each shape is captured only after a plain run since
    the last switch (as trtexec does), and once captured it replays whatever came between."""
    r = Recorder()
    cache = r.cache()
    outcomes = [run(cache, r, key, switched=True) for key in "ABABAB"]
    assert outcomes == ["plain"] * 6, "a switch before every call: never a plain run right before"
    outcomes = [run(cache, r, "A", switched=True), run(cache, r, "A"), run(cache, r, "B", switched=True),
                run(cache, r, "B"), run(cache, r, "A", switched=True), run(cache, r, "B", switched=True)]
    assert outcomes == ["plain", "captured", "plain", "captured", "replayed", "replayed"]


def test_independent_shapes_without_switches():
    """Backends with buffers per shape (torch slots) never switch: chunk keys interleave freely."""
    r = Recorder()
    cache = r.cache()
    first = [run(cache, r, k) for k in ("c0", "c1")]
    second = [run(cache, r, k) for k in ("c0", "c1")]
    assert first == ["plain", "plain"] and second == ["captured", "captured"]


def test_buffer_moves_drop_every_graph():
    r = Recorder()
    cache = r.cache()
    for key in "AABB":
        run(cache, r, key)
    assert cache.has_graph("A") and cache.has_graph("B")
    cache.drop_all()
    assert not cache.has_graph("A") and ("destroy", ("A", 1)) in r.events and ("destroy", ("B", 2)) in r.events
    assert cache.stats.dropped == 2
    assert [run(cache, r, "A") for _ in range(2)] == ["plain", "captured"]


def test_failed_capture_is_retried_after_a_back_off():
    r = Recorder(fail=2)
    cache = r.cache(retry_after=(3, 5))
    outcomes = [run(cache, r, "A") for _ in range(1 + 1 + 3 + 1 + 5 + 1 + 1)]
    assert outcomes == (["plain", "capture_failed"] + ["plain"] * 3 + ["capture_failed"] + ["plain"] * 5
                        + ["captured", "replayed"])
    # every call did its work exactly once: a plain run or a launch, never both, never neither
    work = [e for e in r.events if e[0] in ("plain", "launch")]
    assert len(work) == len(outcomes)
    assert cache.stats.capture_failed == 2
    assert tuple(sorted(RETRY_AFTER)) == RETRY_AFTER and RETRY_AFTER[-1] >= 1000


def test_a_shape_that_always_fails_keeps_being_tried():
    r = Recorder(fail=10**6)
    cache = r.cache(retry_after=(1, 2))
    outcomes = [run(cache, r, "A") for _ in range(20)]
    assert outcomes.count("capture_failed") >= 6, "failures must not disable capture for good"


def test_least_recently_used_graph_goes_first():
    r = Recorder()
    cache = r.cache(max_graphs=2)
    for key in "AABB":
        run(cache, r, key)
    run(cache, r, "A")  # A is now the most recent
    run(cache, r, "C")
    run(cache, r, "C")
    assert cache.has_graph("A") and cache.has_graph("C") and not cache.has_graph("B")
    assert ("destroy", ("B", 2)) in r.events


def test_forget_and_close_destroy_graphs():
    r = Recorder()
    cache = r.cache()
    for key in "AABB":
        run(cache, r, key)
    cache.forget("A")
    assert not cache.has_graph("A") and ("destroy", ("A", 1)) in r.events
    assert run(cache, r, "A") == "plain"
    cache.close()
    assert ("destroy", ("B", 2)) in r.events and not cache.has_graph("B")


def test_disabled_runs_plain_always():
    r = Recorder()
    cache = r.cache(enabled=False)
    assert {run(cache, r, "A") for _ in range(5)} == {"plain"}
    assert not [e for e in r.events if e[0] != "plain"]


@pytest.mark.parametrize("entry", [0, ""])
def test_only_none_means_capture_failed(entry):
    """A falsy entry (an int handle 0) is still a graph: only None means the capture failed."""
    launched = []
    cache = GraphCache(lambda key: entry, launched.append, lambda e: None)
    cache.run("A", lambda: None)
    assert cache.run("A", lambda: None) == "captured" and cache.run("A", lambda: None) == "replayed"
    assert launched == [entry, entry]
