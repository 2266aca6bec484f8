"""Data-parallel training with torch's own launcher and DistributedDataParallel.

``torchrun --nproc-per-node N -m stylize_rt.training generator ...`` starts N processes;
each builds the same models (same seed; DDP also broadcasts rank 0's weights), and:

- **the distributed sampler**: every rank draws the step's whole global batch from the
  step's seed (``--batch`` is the global batch) and trains on its own contiguous 1/N slice.
  The union of the slices is exactly the single-process batch, which is what makes a run's
  loss curve match single-process training at the same global batch, and a checkpoint
  resumable at any world size (the step number alone decides the data);
- gradients are averaged by DDP (gloo on CPU, NCCL on CUDA, ``cuda:LOCAL_RANK`` per process);
  batch-level normalizers (the content loss's) and the logged losses are averaged across
  ranks, so rank 0 logs the global batch's numbers;
- rank 0 alone writes checkpoints, previews, ``train.jsonl`` and the progress bar; the
  checkpoint is the single-process format (the unwrapped modules' weights);
- a Ctrl-C on any rank stops every rank after the same step.

With ``--stability > 0`` the noise/shift draws differ per rank (seeded by step and rank), so
such runs match single-process training in distribution, not bit for bit.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn

from stylize_rt.errors import BadInputError

TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistEnv | None:
    """The torchrun job this process belongs to (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``), or None alone."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        return DistEnv(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError):
        raise BadInputError("RANK/WORLD_SIZE/LOCAL_RANK are not integers: start distributed runs with torchrun") from None


def init(env: DistEnv | None, device: str) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA); a no-op alone or when already joined."""
    if env is None or torch_dist.is_initialized():
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    torch_dist.init_process_group(backend, timeout=TIMEOUT)


def close(env: DistEnv | None) -> None:
    if env is not None and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def device_name(name: str, env: DistEnv | None) -> str:
    """``cuda`` means this process's own GPU (``cuda:LOCAL_RANK``) in a distributed run."""
    if env is not None and name == "cuda":
        return f"cuda:{env.local_rank}"
    return name


def check_batch(batch: int, env: DistEnv | None) -> None:
    if env is not None and batch % env.world_size:
        raise BadInputError(f"--batch {batch} (the global batch) does not split evenly over {env.world_size} "
                            "processes: use a multiple of --nproc-per-node")


def shard(batch: np.ndarray, env: DistEnv | None) -> np.ndarray:
    """This rank's contiguous slice of the global batch (all of it alone)."""
    if env is None:
        return batch
    per = len(batch) // env.world_size
    return batch[env.rank * per:(env.rank + 1) * per]


def wrap(module: nn.Module, env: DistEnv | None, device: torch.device) -> nn.Module:
    """``module`` under DDP in a distributed run (the module itself alone)."""
    if env is None:
        return module
    ids = [device.index if device.index is not None else env.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def global_mean(value: torch.Tensor, env: DistEnv | None) -> torch.Tensor:
    """The mean over ranks of a per-rank mean (equal shards: the global batch's mean); no gradient."""
    if env is None:
        return value
    out = value.detach().clone()
    torch_dist.all_reduce(out)
    return out / env.world_size


def mean_logs(logs: dict[str, float], env: DistEnv | None, device: torch.device) -> dict[str, float]:
    """Each logged loss averaged over ranks (every rank logs the same keys)."""
    if env is None:
        return logs
    keys = list(logs)  # the same order on every rank: train_step builds the dict the same way
    values = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=device)
    torch_dist.all_reduce(values)
    return {k: float(v) / env.world_size for k, v in zip(keys, values.tolist())}


def any_rank(flag: bool, env: DistEnv | None) -> bool:
    """True on every rank when ``flag`` is true on any (so all ranks stop after the same step)."""
    if env is None:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32)
    if torch_dist.get_backend() == "nccl":
        value = value.cuda()
    torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX)
    return bool(value.item())


def rank_generator(generator: torch.Generator, seed: int, step: int, env: DistEnv | None) -> torch.Generator:
    """The step's per-sample noise generator, distinct per rank (the same one alone)."""
    if env is None or env.rank == 0:
        return generator
    mixed = int(np.random.default_rng([seed, step, env.rank]).integers(0, 2**62))
    return torch.Generator().manual_seed(mixed)


def barrier(env: DistEnv | None) -> None:
    if env is not None and torch_dist.is_initialized():
        torch_dist.barrier()


__all__ = ["DistEnv", "any_rank", "barrier", "check_batch", "close", "device_name", "from_environment",
           "global_mean", "init", "mean_logs", "rank_generator", "shard", "wrap"]
