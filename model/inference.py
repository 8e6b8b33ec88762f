"""Inference-only speed options: a precision (fp32, int8, bf16 or auto) and a token budget.

All change the numbers a model gives, within stated tolerances (tests/model/test_inference.py):
* ``precision="int8"``: the Linear layers of the video and audio Transformer encoders (and of
  MA's shared one) are dynamically quantised: int8 weights per output channel, activations
  quantised per batch, PyTorch's x86/fbgemm kernels. Patch projections, position tables, norms
  and the small FAC heads stay fp32: they cost little and set the embeddings' geometry. The MS
  T5 text encoder stays fp32 too: its unscaled attention turns int8 error in q and k into
  peaked softmax errors (cosine 0.84 on random-init Base text), and 16 text tokens are ~1 % of
  a clip's cost. CPU only (the quantised kernels have no CUDA form).
* ``precision="bf16"``: the video and audio Transformer encoders (and MA's shared one) hold bf16
  weights and run on bf16 tokens; a hook casts their input to bf16 and their output back to fp32,
  so patch projections, position tables, pooling and the FAC heads stay fp32 and the outputs are
  fp32. Casting the weights beat autocast (no per-call weight casts; bench/encoders.py measures
  both). The MS T5 text encoder stays fp32 for the reason above (cosine 0.94 in bf16 on
  random-init Base text). Any device; fast only with bf16 matrix units (AMX, AVX-512-BF16, CUDA).
* ``precision="auto"``: resolved once at load (`resolve_precision`): bf16 where
  `model.capability` finds bf16 matrix units; else int8 where it finds int8 dot-product units
  (VNNI, AMX-INT8) and int8 holds cosine >= 0.999 on every head of this model (measured at load);
  else fp32. Speed is judged by the hardware, not timed at load: a timed choice flipped between
  processes sharing the cores (two bulk ranks chose differently), and vectors must not depend on
  the load of the moment. bench/encoders.py checks that auto's pick is not slower than fp32. The
  choice and why are kept on the model (`model.precision_choice`) for /readyz, doctor and cards.
* ``keep_tokens``: the fraction of video/audio tokens kept in eval mode (``layers.even_subset``):
  attention is quadratic in tokens, so 0.5 roughly halves or better the encoder's cost.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .capability import Capability, probe_capability
from .layers import Transformer
from .text_encoder import TextBackbone

__all__ = ["PRECISIONS", "REQUESTS", "Precision", "PrecisionChoice", "Calibration", "quantize_int8", "cast_bf16",
           "set_token_budget", "resolve_precision", "calibrate_int8", "prepare_for_inference", "MIN_COSINE"]

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8", "bf16", "auto"]
PRECISIONS: tuple[str, ...] = ("fp32", "int8", "bf16")  # what a loaded model runs in
REQUESTS: tuple[str, ...] = ("auto",) + PRECISIONS  # what a caller may ask for
MIN_COSINE = 0.999  # auto's bar: every head's cosine to fp32


@dataclass(frozen=True)
class PrecisionChoice:
    """What a model runs in, what was asked for and why (recorded by /readyz, doctor, model cards)."""

    precision: str
    requested: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"precision": self.precision, "requested": self.requested, "reason": self.reason}


@dataclass(frozen=True)
class Calibration:
    """int8 against fp32 on this model, measured at load: the worst cosine over heads and rows."""

    cosine: float


def _quantized_engine() -> str:
    engines = torch.backends.quantized.supported_engines
    for engine in ("x86", "fbgemm", "qnnpack"):  # x86 = fbgemm + onednn, the fast one on Intel/AMD
        if engine in engines:
            return engine
    raise RuntimeError(f"this PyTorch build has no int8 engine (supported: {engines}); use precision='fp32'")


@torch.no_grad()
def quantize_int8(model: nn.Module, engine: str | None = None) -> nn.Module:
    """Swap, in place, every Linear inside a Transformer encoder for a dynamic int8 one; returns `model`.
    `engine`: PyTorch's quantised engine (default: x86, which routes to fbgemm or oneDNN per op;
    bench/encoders.py compares x86, fbgemm and onednn)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("int8 inference runs on the CPU only; load the model with map_location='cpu'")
    torch.backends.quantized.engine = engine or _quantized_engine()
    encoders = _encoders(model)
    with warnings.catch_warnings():  # torch 2.13 announces eager quantisation's move to torchao
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        for encoder in encoders:
            quantize_dynamic(encoder, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    log.info("quantised the Linear layers of %d encoders to int8 (%s engine)", len(encoders),
             torch.backends.quantized.engine)
    return model


def _encoders(model: nn.Module) -> list[nn.Module]:
    """The video/audio (and MA shared) Transformer stacks: everything but the MS T5 text encoder."""
    text = {id(m) for t in model.modules() if isinstance(t, TextBackbone) for m in t.modules()}
    return [m for m in model.modules() if isinstance(m, Transformer) and id(m) not in text]


def _bf16(x: Any) -> Any:
    return x.to(torch.bfloat16) if isinstance(x, torch.Tensor) and x.is_floating_point() else x


def _to_bf16(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return tuple(_bf16(a) for a in args), {k: _bf16(v) for k, v in kwargs.items()}


def _to_fp32(_module: nn.Module, _args: tuple, _kwargs: dict, out: torch.Tensor) -> torch.Tensor:
    return out.float()


@torch.no_grad()
def cast_bf16(model: nn.Module) -> nn.Module:
    """Cast, in place, every video/audio (and MA shared) Transformer encoder to bf16, with hooks that
    feed it bf16 tokens and hand fp32 back; returns `model`. The T5 text encoder stays fp32."""
    encoders = _encoders(model)
    for encoder in encoders:
        encoder.to(torch.bfloat16)
        encoder.register_forward_pre_hook(_to_bf16, with_kwargs=True)
        encoder.register_forward_hook(_to_fp32, with_kwargs=True)
    log.info("cast %d encoders to bf16", len(encoders))
    return model


def set_token_budget(model: nn.Module, fraction: float) -> nn.Module:
    """Keep `fraction` (0 < f <= 1) of video/audio tokens in eval mode, as a fixed even subset."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"keep_tokens must be in (0, 1], got {fraction}")
    for module in model.modules():
        if hasattr(module, "keep_tokens"):
            module.keep_tokens = float(fraction)
    return model


def _probe_inputs(model: nn.Module) -> dict[str, torch.Tensor]:
    """One random window per modality at the model's own input shape (what serving feeds it)."""
    c = model.config.input
    g = torch.Generator().manual_seed(0)
    return {"video": torch.rand(1, 3, c.num_frames, c.image_size, c.image_size, generator=g) * 2 - 1,
            "audio": torch.randn(1, c.num_samples, generator=g) * 0.3,
            "text": torch.randint(1, model.config.text_vocab_size, (1, c.text_len), generator=g)}


@torch.no_grad()
def _heads(model: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{m}.{k}": v for m in ("video", "audio", "text")
            for k, v in getattr(model, f"encode_{m}")(inputs[m]).items() if k in ("va", "vt")}


def calibrate_int8(model: nn.Module) -> tuple[Calibration, nn.Module]:
    """int8 against fp32 on this model (a copy is quantised): the measurement and the int8 copy."""
    inputs = _probe_inputs(model)
    ref = _heads(model, inputs)
    quantized = quantize_int8(copy.deepcopy(model))
    got = _heads(quantized, inputs)
    cosine = min(F.cosine_similarity(ref[k], got[k], dim=-1).min().item() for k in ref)
    return Calibration(cosine=cosine), quantized


Calibrate = Callable[[nn.Module], tuple[Calibration, Any]]


def resolve_precision(model: nn.Module, requested: str, *, capability: Capability | None = None,
                      calibrate: Calibrate = calibrate_int8) -> tuple[PrecisionChoice, Any]:
    """What `requested` means on this machine for this model; returns the choice and, when auto took
    int8, the int8 model calibration already built (else None). Capability and calibration are
    injectable (tests: auto per capability)."""
    if requested not in REQUESTS:
        raise ValueError(f"precision must be one of {', '.join(REQUESTS)}, got {requested!r}")
    device = next(model.parameters()).device
    cap = capability or probe_capability(device)
    on_cuda = cap.device.startswith("cuda")
    if requested == "int8" and on_cuda:
        raise ValueError("precision int8 runs on the CPU only (quantised kernels); use bf16 or fp32 on CUDA")
    if requested != "auto":
        if requested == "bf16" and not cap.bf16_units:
            log.warning("bf16 on %s without bf16 matrix units (%s): correct but far slower than fp32",
                        cap.device, cap.torch_cpu_capability)
        return PrecisionChoice(requested, requested, "asked for"), None
    if cap.bf16_units:
        units = "CUDA bf16" if on_cuda else "CPU bf16 units: " + ", ".join(
            sorted(f for f in cap.cpu_flags if f in ("amx_bf16", "avx512_bf16")))
        return PrecisionChoice("bf16", "auto", units), None
    if on_cuda:
        return PrecisionChoice("fp32", "auto", "CUDA device without bf16"), None
    if not cap.int8_units:
        return PrecisionChoice("fp32", "auto", f"no bf16 or int8 matrix units ({cap.torch_cpu_capability})"), None
    if not all(hasattr(model, f"encode_{m}") for m in ("video", "audio", "text")) or not _encoders(model):
        return PrecisionChoice("fp32", "auto", "no bf16 units; int8 is calibrated on embedding models only"), None
    cal, quantized = calibrate(model)
    units = ", ".join(sorted(f for f in cap.cpu_flags if f in ("amx_int8", "avx512_vnni", "avx_vnni")))
    if cal.cosine >= MIN_COSINE:
        return PrecisionChoice("int8", "auto", f"no bf16 units; int8 units ({units}) and int8 cosine "
                                               f"{cal.cosine:.5f} >= {MIN_COSINE} on this model"), quantized
    return PrecisionChoice("fp32", "auto", f"no bf16 units; int8 cosine {cal.cosine:.5f} < {MIN_COSINE} "
                                           "on this model"), None


def prepare_for_inference(model: nn.Module, *, precision: str = "fp32", keep_tokens: float = 1.0,
                          capability: Capability | None = None, calibrate: Calibrate = calibrate_int8) -> nn.Module:
    """Eval mode, the token budget, then the precision (`auto` resolved here, once); what
    `load_pretrained` applies. The choice is kept as `model.precision_choice`."""
    if precision not in REQUESTS:
        raise ValueError(f"precision must be one of {', '.join(REQUESTS)}, got {precision!r}")
    model.eval()
    set_token_budget(model, keep_tokens)
    choice, ready = resolve_precision(model, precision, capability=capability, calibrate=calibrate)
    if ready is not None:
        model = ready
    elif choice.precision == "int8":
        quantize_int8(model)
    elif choice.precision == "bf16":
        cast_bf16(model)
    model.precision_choice = choice
    log.info("precision %s (asked %s: %s)", choice.precision, choice.requested, choice.reason)
    return model
