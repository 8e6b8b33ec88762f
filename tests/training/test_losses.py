"""Losses against a naive per-clip loop and against values computed by the official TF code."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from training.losses import contrastive_loss, mil_nce_loss, nce_loss, total_loss

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "official" / "losses" / "losses.npz"
TAU = 0.07


def _lse(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def naive_loss(anchor: np.ndarray, cands: np.ndarray, mask: np.ndarray) -> float:
    """Spec §4 written as loops: one shared denominator per clip, masked candidates left out."""
    a = anchor / np.linalg.norm(anchor, axis=-1, keepdims=True)
    c = cands / np.linalg.norm(cands, axis=-1, keepdims=True)
    b, p, _ = c.shape
    total, n_valid = 0.0, 0
    for i in range(b):
        if not mask[i].any():
            continue
        n_valid += 1
        denom: list[float] = []
        for j in range(b):
            for pos in range(p):
                if mask[j, pos]:
                    denom.append(float(a[i] @ c[j, pos]) / TAU)  # my video, every valid candidate
                if mask[i, pos]:
                    denom.append(float(a[j] @ c[i, pos]) / TAU)  # every video, my valid candidates
        numer = [float(a[i] @ c[i, pos]) / TAU for pos in range(p) if mask[i, pos]]
        total += _lse(denom) - _lse(numer)
    return total / n_valid if n_valid else 0.0


@pytest.mark.parametrize("p", [1, 5])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_naive_loop(p: int, masked: bool) -> None:
    gen = np.random.default_rng(7 + p + masked)
    b, d = 6, 12
    anchor = gen.normal(size=(b, d)) * 3
    cands = gen.normal(size=(b, p, d)) * 0.5
    mask = np.ones((b, p), dtype=bool)
    if masked:
        mask[1] = False  # a clip without text/audio
        mask[4, 2:] = False  # a clip with fewer captions
    got = contrastive_loss(torch.tensor(anchor), torch.tensor(cands), torch.tensor(mask)).item()
    assert got == pytest.approx(naive_loss(anchor, cands, mask), abs=1e-6)


def test_all_masked_is_zero_and_differentiable() -> None:
    video = torch.randn(4, 8, requires_grad=True)
    audio = torch.randn(4, 8)
    loss = nce_loss(video, audio, torch.zeros(4))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(video.grad == 0)


def test_masked_clip_video_is_still_a_negative() -> None:
    gen = torch.Generator().manual_seed(0)
    video, audio = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0])
    base = nce_loss(video, audio, mask)
    moved = video.clone()
    moved[2] = torch.randn(8, generator=gen)
    assert nce_loss(moved, audio, mask).item() != pytest.approx(base.item(), abs=1e-6)
    changed_audio = audio.clone()
    changed_audio[2] = torch.randn(8, generator=gen)  # a masked clip's audio is invisible
    assert nce_loss(video, changed_audio, mask).item() == pytest.approx(base.item(), abs=1e-7)


def test_caption_mask_all_ones_is_identity() -> None:
    video, text = torch.randn(3, 8), torch.randn(3, 5, 8)
    assert mil_nce_loss(video, text, torch.ones(3), torch.ones(3, 5)).item() == pytest.approx(
        mil_nce_loss(video, text).item(), abs=1e-7
    )


@pytest.mark.parametrize("case", ["basic", "masked"])
def test_official_fixture(case: str) -> None:
    z = np.load(FIXTURE)
    get = lambda k: torch.from_numpy(z[f"{case}/{k}"])  # noqa: E731
    b, p = int(z[f"{case}/meta/batch_size"]), int(z[f"{case}/meta/num_captions"])
    text = get("input/text_tovid").reshape(b, p, -1)  # clip-major rows
    vt = mil_nce_loss(get("input/video_totxt"), text, get("input/text_mask"))
    va = nce_loss(get("input/video_toaud"), get("input/audio_tovid"), get("input/audio_mask"))
    assert vt.item() == pytest.approx(float(z[f"{case}/output/vidtxt_loss"]), abs=1e-5)
    assert va.item() == pytest.approx(float(z[f"{case}/output/vidaud_loss"]), abs=1e-5)
    assert total_loss(vt, va).item() == pytest.approx(float(z[f"{case}/output/loss"]), abs=1e-5)


def test_total_keeps_divisor_when_no_text() -> None:
    video, audio, text = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 5, 8)
    vt = mil_nce_loss(video, text, torch.zeros(3))
    va = nce_loss(video, audio)
    assert total_loss(vt, va).item() == pytest.approx(va.item() / 2, abs=1e-7)


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[B, D\].*\(4, 8\)"):
        contrastive_loss(torch.randn(4, 8), torch.randn(4, 8))
