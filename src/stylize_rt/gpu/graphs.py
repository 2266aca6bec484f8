"""CUDA-graph bookkeeping per input shape, shared by the TensorRT and torch backends.

A captured graph replays a whole inference with one launch, which matters when the kernels
are short (small frames, batch 1). The rules, as trtexec and PyTorch's graph docs follow them:

* a graph is captured for a shape only after one *plain* run at that shape since the last
  shape switch or rebinding, with the stream synchronized after it: the first run after a
  switch may allocate, autotune or synchronize, none of which can be captured;
* a failed capture is not final: the shape runs plain and is tried again after a back-off
  (16, 128, 1024 more calls at that shape, then every 1024);
* at most ``max_graphs`` shapes keep a graph (least recently used goes first), and moving a
  buffer the graphs point into drops them all.

The class knows nothing about CUDA: the backend hands it ``capture``/``launch``/``destroy``
functions, so every rule is tested on machines without a GPU.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

RETRY_AFTER = (16, 128, 1024)  # calls at a shape before capture is tried again, after 1, 2, 3+ failures


@dataclass
class GraphStats:
    """What happened to calls so far: for tests, the gpu-check and benchmark notes."""

    plain: int = 0
    captured: int = 0
    replayed: int = 0
    capture_failed: int = 0
    dropped: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Failure:
    count: int = 0
    calls_left: int = 0


@dataclass
class GraphCache:
    """Decides, per call at a shape ``key``, whether to run plain, capture, or replay.

    ``capture(key)`` captures the work for ``key`` (the shape the backend is set to) without
    running it and returns an entry, or None when capture failed; ``launch(entry)`` replays
    one, ``destroy(entry)`` frees one. :meth:`run` launches a fresh entry itself, and after a
    failed capture runs the work plain, so every call computes its results exactly once.
    """

    capture: Callable[[Hashable], Any]
    launch: Callable[[Any], None]
    destroy: Callable[[Any], None]
    enabled: bool = True
    max_graphs: int = 8
    retry_after: tuple[int, ...] = RETRY_AFTER
    stats: GraphStats = field(default_factory=GraphStats)

    def __post_init__(self) -> None:
        self._graphs: OrderedDict[Hashable, Any] = OrderedDict()
        self._failures: dict[Hashable, _Failure] = {}
        self._ready: set[Hashable] = set()  # shapes that ran plain since the last switch

    # -- events the backend reports ----------------------------------------------------
    def switched(self) -> None:
        """The backend changed its shapes or bindings: the next call at any shape runs plain first.

        A backend whose shapes share one state (a TensorRT execution context) reports every
        switch; one with independent buffers per shape (the torch backend's slots) never needs to.
        """
        self._ready.clear()

    def forget(self, key: Hashable) -> None:
        """The buffers of ``key`` are gone: destroy its graph, if any."""
        entry = self._graphs.pop(key, None)
        if entry is not None:
            self.destroy(entry)
            self.stats.dropped += 1
        self._failures.pop(key, None)
        self._ready.discard(key)

    def drop_all(self) -> None:
        """Buffers the graphs point into moved: destroy every graph (failed shapes get a fresh start)."""
        for entry in self._graphs.values():
            self.destroy(entry)
        self.stats.dropped += len(self._graphs)
        self._graphs.clear()
        self._failures.clear()
        self._ready.clear()

    # -- the decision --------------------------------------------------------------------
    def has_graph(self, key: Hashable) -> bool:
        return key in self._graphs

    def run(self, key: Hashable, plain: Callable[[], None]) -> str:
        """Do the work for ``key`` one way or another; return which: plain, captured, replayed, capture_failed.

        The caller synchronizes after each call (the host path does), so a plain run here is
        the "plain enqueue and synchronize" that makes ``key`` ready for capture next time.
        """
        if not self.enabled:
            return self._plain(key, plain)
        entry = self._graphs.get(key)
        if entry is not None:
            self._graphs.move_to_end(key)
            self.launch(entry)
            self.stats.replayed += 1
            return "replayed"
        failure = self._failures.get(key)
        if failure is not None and failure.calls_left > 0:
            failure.calls_left -= 1
            return self._plain(key, plain)
        if key not in self._ready:
            return self._plain(key, plain)
        entry = self.capture(key)
        if entry is None:
            failure = self._failures.setdefault(key, _Failure())
            failure.count += 1
            failure.calls_left = self.retry_after[min(failure.count, len(self.retry_after)) - 1]
            self.stats.capture_failed += 1
            self._plain(key, plain)
            return "capture_failed"
        self._failures.pop(key, None)
        self._graphs[key] = entry
        while len(self._graphs) > self.max_graphs:
            self.destroy(self._graphs.popitem(last=False)[1])
            self.stats.dropped += 1
        self.launch(entry)
        self.stats.captured += 1
        return "captured"

    def _plain(self, key: Hashable, plain: Callable[[], None]) -> str:
        plain()
        self._ready.add(key)
        self.stats.plain += 1
        return "plain"

    def close(self) -> None:
        for entry in self._graphs.values():
            self.destroy(entry)
        self._graphs.clear()
        self._failures.clear()
        self._ready.clear()


__all__ = ["RETRY_AFTER", "GraphCache", "GraphStats"]
