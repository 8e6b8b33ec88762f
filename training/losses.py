"""VATT's pretraining losses: NCE (video–audio) and MIL-NCE (video–text), official asymmetric form.

Reproduces ``vatt/utils/train/objectives.py::AsymmetricNCE`` (the loss every pretraining
config selects), checked against values that the official code computed
(``tests/fixtures/official/losses``):

* both embeddings are L2-normalised here (model heads are not); similarity = cosine / τ,
  τ = 0.07;
* per clip i, one shared denominator holds both directions,
  ``ℓ_i = LSE({s(v_i, x_{j,l})}_{j,l} ∪ {s(v_j, x_{i,l})}_{j,l}) − LSE({s(v_i, x_{i,l})}_l)``,
  so each positive appears in it twice; NCE is the case of one positive (P = 1), MIL-NCE has
  P = 5 captions per clip;
* only the second modality is masked (audio, text): a masked clip's candidates become −1e9 in
  every denominator, its own term is zeroed and the mean is rescaled by B / #valid (0 valid → 0);
  its video stays in as a negative; NaN terms become 0;
* ``total = (w_vt·MIL-NCE + w_va·NCE) / (w_vt + w_va)``, the divisor fixed even when no text
  is valid.

Beyond the official code, ``caption_mask`` [B, P] masks single captions (a clip with fewer than
5 captions in its transcript); with it all ones the official values are unchanged.

**Global negatives under DDP.** Each rank passes its local rows. The candidates of the whole
global batch are gathered with :func:`training.distributed.all_gather_with_grad`, and rank r
returns ``L_r = (W / N) · Σ_{i ∈ rows(r)} m_i ℓ_i``, where W is the world size and N the number
of valid rows in the global batch. Proof sketch that DDP then yields the single-process gradient
of ``L = (1/N) Σ_i m_i ℓ_i`` over the global batch:

1. ``Σ_r L_r = W·L``, so the mean of the ranks' losses is L (what we log).
2. Let e_r be rank r's embeddings. The all-gather's backward returns to rank r the gradient of
   every rank's loss with respect to its slot, summed: ``g(e_r) = Σ_s ∂L_s/∂e_r = ∂(W·L)/∂e_r``
   (the local rows also reach e_r directly, which is the s = r term).
3. Rank r's parameter gradient is ``∂(W·L)/∂e_r · ∂e_r/∂θ``; DDP averages over ranks:
   ``(1/W) Σ_r ∂(W·L)/∂e_r · ∂e_r/∂θ = ∂L/∂θ``, since θ reaches L only through the e_r.

Batch statistics must also be global for exact equality (heads use BatchNorm; the trainer
converts them to synchronised BN). All ranks must have the same local batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.distributed import DistEnv, all_gather_with_grad

__all__ = ["MASK_VALUE", "TEMPERATURE", "contrastive_loss", "mil_nce_loss", "nce_loss", "total_loss"]

TEMPERATURE = 0.07
MASK_VALUE = -1e9  # official: masked logits, after dividing by the temperature


def contrastive_loss(
    anchor: torch.Tensor,
    cands: torch.Tensor,
    cand_mask: torch.Tensor | None = None,
    *,
    temperature: float = TEMPERATURE,
    env: DistEnv | None = None,
) -> torch.Tensor:
    """Asymmetric multiple-positive NCE of local anchors [B, D] against candidates [B, P, D].

    ``cand_mask`` [B, P] (1/True = valid) masks candidates; a row with no valid candidate is
    dropped from the mean. Candidates from every rank are negatives when ``env`` is distributed;
    the result is this rank's share times the world size (see the module docstring).
    """
    if anchor.dim() != 2 or cands.dim() != 3 or cands.shape[0] != anchor.shape[0] or cands.shape[2] != anchor.shape[1]:
        raise ValueError(f"expected anchor [B, D] and cands [B, P, D], got {tuple(anchor.shape)} and {tuple(cands.shape)}")
    b, p, _ = cands.shape
    if cand_mask is None:
        cand_mask = torch.ones(b, p, dtype=torch.bool, device=anchor.device)
    cand_mask = cand_mask.to(device=anchor.device).reshape(b, p).bool()
    world = env.world_size if env is not None and env.distributed else 1

    dtype = torch.promote_types(anchor.dtype, torch.float32)  # bf16 heads -> float32 loss
    a = F.normalize(anchor.to(dtype), dim=-1, eps=1e-12)  # [B, D]
    c = F.normalize(cands.to(dtype), dim=-1, eps=1e-12)  # [B, P, D]
    a_all = all_gather_with_grad(a, env)  # [G, D]
    c_all = all_gather_with_grad(c, env)  # [G, P, D]
    m_all = all_gather_with_grad(cand_mask.float(), env).bool()  # [G, P]
    g = a_all.shape[0]

    neg_value = torch.tensor(MASK_VALUE, dtype=a.dtype, device=a.device)
    # Direction 1: my anchor against every candidate of the global batch.
    rows = (a @ c_all.reshape(g * p, -1).T) / temperature  # [B, G*P]
    rows = torch.where(m_all.reshape(1, g * p), rows, neg_value)
    # Direction 2: every anchor of the global batch against my candidates.
    cols = torch.einsum("bpd,gd->bgp", c, a_all) / temperature  # [B, G, P]
    cols = torch.where(cand_mask[:, None, :], cols, neg_value).reshape(b, g * p)
    positives = torch.einsum("bd,bpd->bp", a, c) / temperature  # [B, P]
    positives = torch.where(cand_mask, positives, neg_value)

    per_row = torch.logsumexp(torch.cat([rows, cols], dim=1), dim=1) - torch.logsumexp(positives, dim=1)  # [B]
    valid = cand_mask.any(dim=1)
    per_row = torch.nan_to_num(torch.where(valid, per_row, torch.zeros_like(per_row)), nan=0.0)
    n_valid = m_all.any(dim=1).sum().to(per_row.dtype)
    # With no valid row every term is 0, so the clamp gives the official 0 without a branch.
    return per_row.sum() * (world / n_valid.clamp_min(1.0))


def nce_loss(
    video: torch.Tensor,
    audio: torch.Tensor,
    audio_mask: torch.Tensor | None = None,
    *,
    temperature: float = TEMPERATURE,
    env: DistEnv | None = None,
) -> torch.Tensor:
    """Video–audio NCE: video [B, D_va], audio [B, D_va], ``audio_mask`` [B] (1 = clip has audio)."""
    mask = None if audio_mask is None else audio_mask.reshape(-1, 1)
    return contrastive_loss(video, audio[:, None, :], mask, temperature=temperature, env=env)


def mil_nce_loss(
    video: torch.Tensor,
    text: torch.Tensor,
    text_mask: torch.Tensor | None = None,
    caption_mask: torch.Tensor | None = None,
    *,
    temperature: float = TEMPERATURE,
    env: DistEnv | None = None,
) -> torch.Tensor:
    """Video–text MIL-NCE: video [B, D_vt], text [B, P, D_vt] (P captions per clip, 5 in VATT).

    ``text_mask`` [B] flags clips with speech; ``caption_mask`` [B, P] flags real captions.
    """
    b, p = text.shape[:2]
    mask = torch.ones(b, p, dtype=torch.bool, device=text.device)
    if text_mask is not None:
        mask = mask & text_mask.to(text.device).reshape(b, 1).bool()
    if caption_mask is not None:
        mask = mask & caption_mask.to(text.device).reshape(b, p).bool()
    return contrastive_loss(video, text, mask, temperature=temperature, env=env)


def total_loss(vid_txt: torch.Tensor, vid_aud: torch.Tensor, *, w_vt: float = 1.0, w_va: float = 1.0) -> torch.Tensor:
    """Official total: the weighted mean of the two losses; the divisor ignores validity."""
    return (w_vt * vid_txt + w_va * vid_aud) / (w_vt + w_va)
