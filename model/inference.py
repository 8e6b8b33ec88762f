"""Inference-only speed options: an int8 model and a token budget.

Both change the numbers a model gives, within stated tolerances (tests/model/test_inference.py):
* ``precision="int8"``: the Linear layers of the video and audio Transformer encoders (and of
  MA's shared one) are dynamically quantised: int8 weights per output channel, activations
  quantised per batch, PyTorch's x86/fbgemm kernels. Patch projections, position tables, norms
  and the small FAC heads stay fp32: they cost little and set the embeddings' geometry. The MS
  T5 text encoder stays fp32 too: its unscaled attention turns int8 error in q and k into
  peaked softmax errors (cosine 0.84 on random-init Base text), and 16 text tokens are ~1 % of
  a clip's cost. CPU only (the quantised kernels have no CUDA form).
* ``keep_tokens``: the fraction of video/audio tokens kept in eval mode (``layers.even_subset``):
  attention is quadratic in tokens, so 0.5 roughly halves or better the encoder's cost.
"""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import torch
from torch import nn

from .layers import Transformer
from .text_encoder import TextBackbone

__all__ = ["PRECISIONS", "Precision", "quantize_int8", "set_token_budget", "prepare_for_inference"]

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "int8")


def _quantized_engine() -> str:
    engines = torch.backends.quantized.supported_engines
    for engine in ("x86", "fbgemm", "qnnpack"):  # x86 = fbgemm + onednn, the fast one on Intel/AMD
        if engine in engines:
            return engine
    raise RuntimeError(f"this PyTorch build has no int8 engine (supported: {engines}); use precision='fp32'")


@torch.no_grad()
def quantize_int8(model: nn.Module) -> nn.Module:
    """Swap, in place, every Linear inside a Transformer encoder for a dynamic int8 one; returns `model`."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("int8 inference runs on the CPU only; load the model with map_location='cpu'")
    torch.backends.quantized.engine = _quantized_engine()
    text = {id(m) for t in model.modules() if isinstance(t, TextBackbone) for m in t.modules()}
    encoders = [m for m in model.modules() if isinstance(m, Transformer) and id(m) not in text]
    with warnings.catch_warnings():  # torch 2.13 announces eager quantisation's move to torchao
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        for encoder in encoders:
            quantize_dynamic(encoder, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    log.info("quantised the Linear layers of %d encoders to int8 (%s engine)", len(encoders),
             torch.backends.quantized.engine)
    return model


def set_token_budget(model: nn.Module, fraction: float) -> nn.Module:
    """Keep `fraction` (0 < f <= 1) of video/audio tokens in eval mode, as a fixed even subset."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"keep_tokens must be in (0, 1], got {fraction}")
    for module in model.modules():
        if hasattr(module, "keep_tokens"):
            module.keep_tokens = float(fraction)
    return model


def prepare_for_inference(model: nn.Module, *, precision: str = "fp32", keep_tokens: float = 1.0) -> nn.Module:
    """Eval mode, then the precision and the token budget; what `load_pretrained` applies."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    model.eval()
    set_token_budget(model, keep_tokens)
    if precision == "int8":
        quantize_int8(model)
    return model
