"""Cross-process BatchNorm for CPU (gloo) runs.

VATT's heads use BatchNorm, synchronised across replicas in the official code
(``SyncBatchNormalization``); without it each rank normalises by its own batch and a 2-process
run is not the 1-process run over the same global batch. ``torch.nn.SyncBatchNorm`` refuses CPU
tensors, so on CPU the BatchNorm1d modules become :class:`GlobalBatchNorm1d`, which sums
``(Σx, n)`` and then ``Σ(x − mean)²`` over ranks with an autograd-aware all-reduce (gradients flow back to every
rank, as the all-gather in the losses does). Same parameters and buffers, same state-dict names.
On CUDA, ``torch.nn.SyncBatchNorm`` is used instead.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn

__all__ = ["GlobalBatchNorm1d", "convert_sync_batchnorm"]


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over [B, C] whose training statistics cover the whole global batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        if x.dim() != 2:
            raise ValueError(f"GlobalBatchNorm1d takes [B, C], got {list(x.shape)}")
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        # Two passes (mean, then centred squares), as torch's BN, so a 2-process run matches a
        # 1-process run to float precision; E[x²] − E[x]² loses ~1e-5 to cancellation.
        first = dist_fn.all_reduce(torch.cat([xf.sum(0), xf.new_tensor([float(x.shape[0])])]))  # SUM, differentiable
        n = first[-1]
        mean = first[:-1] / n
        var = dist_fn.all_reduce((xf - mean).pow(2).sum(0)) / n  # biased, as BN normalises
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1.0), alpha=m)
                self.num_batches_tracked.add_(1)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Swap every BatchNorm1d for a synchronised one (in place where possible; returns the module)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm1d:
            new = GlobalBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats,
                                    device=child.weight.device if child.affine else None)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_sync_batchnorm(child, device)
    return module
