"""Weight initialisation rules, one home for every model class (VATT, BackboneClassifier): they only
walk modules and parameter names, so any module built from the backbones takes them."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["init_weights"]


@torch.no_grad()
def init_weights(model: nn.Module, mode: str = "default") -> None:
    """Initialise like the official Keras defaults: glorot-uniform kernels, zero biases,
    truncated-normal(d^-0.5) position tables, glorot-normal AGG tokens, N(0, 1) T5 bias table."""
    if mode != "default":
        raise ValueError(f"unknown weight_init {mode!r}; use 'default' or 'skip'")
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv3d)):
            fan_in = module.weight[0].numel()
            fan_out = module.weight.shape[0] * module.weight[0, 0].numel() if module.weight.dim() > 2 else module.weight.shape[0]
            bound = (6.0 / (fan_in + fan_out)) ** 0.5
            nn.init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.uniform_(module.weight, -0.05, 0.05)
    for name, p in model.named_parameters():
        if ".pos." in f".{name}" and name.endswith(".embeddings"):
            nn.init.trunc_normal_(p, std=p.shape[1] ** -0.5, a=-2 * p.shape[1] ** -0.5, b=2 * p.shape[1] ** -0.5)
        elif "agg_embedding" in name:
            nn.init.normal_(p, std=(2.0 / (1 + p.shape[0])) ** 0.5)
        elif name.endswith("relative_bias.embeddings"):
            nn.init.normal_(p, std=1.0)
