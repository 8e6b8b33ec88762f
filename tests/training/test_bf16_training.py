"""bf16 training (autocast on the encoders' forward; fp32 losses, master weights and Adam state)
follows fp32: 20 Adam steps (lr 1e-4) on one fixed batch from the bundled demo model (the tiny
preset, trained) give every step's total, NCE and MIL-NCE loss within 0.03 nats (~1 % of the
1.5-2.9 nat losses) of the fp32 run. Dropout and DropToken are off (eval mode) so the comparison is
the arithmetic alone; on random-init weights the clips' embeddings nearly coincide and bf16's
rounding alone moves the loss by ~0.1 (measured), so a trained model is the fair check.
"""

from __future__ import annotations

from pathlib import Path

import torch

from model import load_pretrained
from training.losses import mil_nce_loss, nce_loss, total_loss
from training.pretrain import PretrainModel, autocast_forward

DEMO = Path(__file__).resolve().parents[2] / "app" / "demo_model"
TOLERANCE = 0.03
STEPS = 20


def _losses(precision: str) -> tuple[list[tuple[float, float, float]], torch.nn.Module]:
    vatt = load_pretrained(DEMO)
    net = PretrainModel(vatt).eval()  # eval: no dropout or DropToken; gradients flow all the same
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4, eps=1e-7)
    forward = autocast_forward(net, precision, torch.device("cpu"))
    cfg, g = vatt.config, torch.Generator().manual_seed(1)
    c, b = cfg.input, 4
    batch = (torch.rand(b, 3, c.num_frames, c.image_size, c.image_size, generator=g) * 2 - 1,
             torch.randn(b, c.num_samples, generator=g) * 0.3,
             torch.randint(1, cfg.text_vocab_size, (b, 2, c.text_len), generator=g))
    out = []
    for _ in range(STEPS):
        v_va, v_vt, a_va, t_vt = forward(*batch)
        assert v_va.dtype == t_vt.dtype == torch.float32  # the losses run in fp32
        l_vt, l_va = mil_nce_loss(v_vt, t_vt), nce_loss(v_va, a_va)
        loss = total_loss(l_vt, l_va)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        out.append((loss.item(), l_vt.item(), l_va.item()))
    return out, vatt


def test_bf16_training_losses_follow_fp32_over_20_steps() -> None:
    full, full_model = _losses("fp32")
    half, half_model = _losses("bf16")
    worst = max(abs(a - b) for f, h in zip(full, half) for a, b in zip(f, h))
    assert worst <= TOLERANCE, (worst, full, half)
    assert full[-1][0] < full[0][0] - 0.5 and half[-1][0] < half[0][0] - 0.5  # both learn the batch
    params = dict(half_model.named_parameters())
    assert all(p.dtype == torch.float32 for p in params.values())  # master weights stay fp32
    assert any(not torch.equal(p, params[n]) for n, p in full_model.named_parameters())  # bf16 did run


def test_fp32_and_fp64_forward_is_left_alone() -> None:
    net = PretrainModel(load_pretrained(DEMO))
    assert autocast_forward(net, "fp32", torch.device("cpu")) is net
    assert autocast_forward(net, "fp64", torch.device("cpu")) is net
