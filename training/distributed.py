"""Everything training knows about launchers and process groups lives here.

``torchrun`` (one machine or many, via its rendezvous) sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; :func:`init_distributed` reads them, joins the process group (gloo on CPU, NCCL
on CUDA) and returns a :class:`DistEnv`. A plain ``python`` run is a world of one with no
process group, and every helper below is then a no-op, so the trainer has one code path.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn

__all__ = [
    "DistEnv",
    "all_gather_object",
    "all_gather_with_grad",
    "all_reduce_mean",
    "barrier",
    "broadcast_object",
    "cleanup",
    "init_distributed",
    "world_info_from_env",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: its ranks, the world size and the device it computes on."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    is_main: bool = True

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one member is active."""
        return self.world_size > 1


def world_info_from_env() -> tuple[int, int, int]:
    """``(local_rank, rank, world_size)`` from torchrun's variables, or SLURM's, else ``(0, 0, 1)``."""
    for local, glob, size in (("LOCAL_RANK", "RANK", "WORLD_SIZE"), ("SLURM_LOCALID", "SLURM_PROCID", "SLURM_NTASKS")):
        if glob in os.environ and size in os.environ:
            return int(os.environ.get(local, 0)), int(os.environ[glob]), int(os.environ[size])
    return 0, 0, 1


def init_distributed(device: str = "auto", *, timeout_s: float = 1800.0) -> DistEnv:
    """Join the process group when launched with several processes and pick the device.

    ``device`` is ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``. The
    backend follows the device: NCCL for CUDA, gloo for CPU. Each CUDA process takes the GPU of
    its local rank.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
    local_rank, rank, world_size = world_info_from_env()
    dev = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
        log.info("joined %s process group: rank %d of %d (local %d) on %s", backend, rank, world_size, local_rank, dev)
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size, device=dev, is_main=rank == 0)


def all_gather_with_grad(x: torch.Tensor, env: DistEnv | None) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, in rank order, keeping the autograd graph.

    The backward of ``torch.distributed.nn.functional.all_gather`` sends each slot's gradient
    back to the rank that produced it, summed over all ranks: rank r receives
    ``sum_s dL_s/dx_r``. This is what makes global-batch negatives exact under DDP (see
    ``training.losses``). Every rank must pass the same shape.
    """
    if env is None or not env.distributed:
        return x
    return torch.cat([_ContiguousGrad.apply(part) for part in dist_fn.all_gather(x.contiguous())], dim=0)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous.

    On gloo, ``all_gather``'s backward is an all-to-all built from ``dist.scatter`` into
    ``torch.empty_like(grad)``, which keeps a non-contiguous gradient's strides, and gloo's
    scatter ignores strides (pytorch/pytorch#192920): the gradient comes back scrambled, silently
    (seen with torch 2.13 whenever the gathered tensor is a matmul's right operand, as in the
    losses). Contiguous gradients avoid it; tests/training/test_distributed.py would catch it.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def all_reduce_mean(x: torch.Tensor, env: DistEnv | None) -> torch.Tensor:
    """Mean of a detached tensor over ranks (for logging)."""
    x = x.detach().clone()
    if env is not None and env.distributed:
        dist.all_reduce(x)
        x /= env.world_size
    return x


def barrier(env: DistEnv | None) -> None:
    """Wait for every rank (no-op for a single process)."""
    if env is not None and env.distributed:
        dist.barrier()


def broadcast_object(obj: Any, env: DistEnv | None, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank, so decisions made on rank 0 are shared."""
    if env is None or not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any, env: DistEnv | None) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list for a single process)."""
    if env is None or not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def cleanup(env: DistEnv | None = None) -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
