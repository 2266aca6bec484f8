"""What the small benchmark commands share: measure, print, write the JSON; and a one-off model probe."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, TypeVar

from stylize_rt.errors import run_reporting_errors
from stylize_rt.fileio import write_atomic
from stylize_rt.models import DEFAULT_GENERATOR, resolve_model
from stylize_rt.runtime.backends.base import Backend
from stylize_rt.runtime.backends.registry import open_backend

T = TypeVar("T")


def model_parser(module: str, doc: str, model_help: str = "model") -> argparse.ArgumentParser:
    """A benchmark command's parser with the options they all take: --model, --backend, --precision,
    --threads, --json-out (add the command's own after)."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_GENERATOR, help=f"{model_help} (default: the embedded default)")
    p.add_argument("--backend", default="onnxruntime", help="backend name (default onnxruntime)")
    p.add_argument("--precision", default="fp32", help="backend precision (default fp32)")
    p.add_argument("--threads", type=int, default=2, help="backend CPU threads (default 2)")
    p.add_argument("--json-out", help="write the result as JSON here")
    return p


def run_command(measure: Callable[[], dict], render: Callable[[dict], str], json_out: str | None) -> int:
    """Measure, print ``render(result)``, write the result to ``json_out`` (atomically) when given;
    every error a one-line message and its exit status (``errors.run_reporting_errors``)."""

    def go() -> int:
        result = measure()
        print(render(result))
        if json_out:
            write_atomic(Path(json_out), (json.dumps(result, indent=2) + "\n").encode())
        return 0

    return run_reporting_errors(go)


def probe_model(model: str, read: Callable[[Backend], T], backend: str = "onnxruntime") -> T:
    """``read`` applied to ``model`` opened on ``backend`` (1 thread), closed again: what a recipe asks
    of a model before deciding which benchmarks fit it."""
    opened = open_backend(resolve_model(model), backend, threads=1)
    try:
        return read(opened)
    finally:
        opened.close()


__all__ = ["model_parser", "run_command", "probe_model"]
