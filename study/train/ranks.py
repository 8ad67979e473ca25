"""Where a Ray Train worker runs (rank, world size, device) and the collectives the loop needs.

Every collective here is called by every rank the same number of times: an uneven call would hang
DDP (and ``ray.train.report``, which is a barrier too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RankContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def rank_context(session) -> RankContext:
    """This worker's rank and device (its Ray-assigned GPU, else the CPU); ``session`` is a
    `study.train.session` session."""
    rank, world, local_rank = session.world()
    if session.in_trial:  # a CPU trial in its own process: Ray leaves every GPU visible to it
        return RankContext(rank, world, torch.device("cpu"))
    if torch.cuda.is_available():
        try:
            import ray.train.torch

            device = ray.train.torch.get_device()
        except Exception:  # local mode: no Ray-assigned GPU
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return RankContext(rank, world, device)


def all_ranks(ctx: RankContext, flag: bool) -> bool:
    """True when ``flag`` holds on every rank (one tiny all-reduce under DDP)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def mean_over_ranks(ctx: RankContext, values: Mapping[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks (identity on one rank)."""
    if not ctx.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], device=ctx.device, dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}
