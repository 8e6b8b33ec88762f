"""int8 and the inference token budget agree with fp32 within the stated tolerances.

Tolerances (cosine of each head's embedding to fp32's, worst row): int8 >= 0.99 on every head
(video va/vt, audio va, text vt) for tiny, tiny-ma, the trained demo model and a Base-width model
(Base inputs: 32x224x224 video, 3.2 s of 48 kHz audio; 1 layer per encoder, batch 1, to keep
this file's cost to seconds). Token budget, on the trained demo model: 0.75 keeps video >= 0.99
and audio >= 0.98; 0.5 keeps video >= 0.99 and audio >= 0.97.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model import VATT, VattConfig, load_pretrained, quantize_int8, save_pretrained, set_token_budget
from model.layers import even_subset, keep_count

DEMO = Path(__file__).resolve().parents[2] / "app" / "demo_model"


def _inputs(cfg: VattConfig, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    c = cfg.input
    return (torch.rand(batch, 3, c.num_frames, c.image_size, c.image_size, generator=g) * 2 - 1,
            torch.randn(batch, c.num_samples, generator=g) * 0.3,
            torch.randint(1, cfg.text_vocab_size, (batch, c.text_len), generator=g))


@torch.no_grad()
def _heads(model: nn.Module, x) -> dict[str, torch.Tensor]:
    v, a, t = model.encode_video(x[0]), model.encode_audio(x[1]), model.encode_text(x[2])
    return {"video.va": v["va"], "video.vt": v["vt"], "audio.va": a["va"], "text.vt": t["vt"]}


def _cosines(a: dict, b: dict) -> dict[str, float]:
    return {k: F.cosine_similarity(a[k], b[k], dim=-1).min().item() for k in a}


def _models():
    torch.manual_seed(0)
    yield "tiny", VATT(VattConfig.preset("tiny")).eval()
    yield "tiny-ma", VATT(VattConfig.preset("tiny-ma")).eval()
    yield "demo", load_pretrained(DEMO)
    base = {"num_layers": 1}
    yield "base-width", VATT(VattConfig.preset("vatt-ms-bbs", video=base, audio=base, text=base)).eval()


def test_int8_agrees_with_fp32_on_every_head() -> None:
    for name, model in _models():
        x = _inputs(model.config, 1 if name == "base-width" else 2)
        cos = _cosines(_heads(model, x), _heads(quantize_int8(copy.deepcopy(model)), x))
        assert min(cos.values()) >= 0.99, (name, cos)


def test_int8_swaps_encoder_linears_and_keeps_heads_and_t5_text_fp32(tiny_model) -> None:
    q = quantize_int8(copy.deepcopy(tiny_model))
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    assert isinstance(q.video.tx.blocks[0].attn.q, dynamic) and isinstance(q.audio.tx.blocks[1].mlp.wo, dynamic)
    assert type(q.text.tx.blocks[0].attn.q) is nn.Linear and type(q.heads.vid_to_hid) is nn.Linear


def test_load_pretrained_precision_and_keep_tokens(tiny_model, tmp_path: Path) -> None:
    path = save_pretrained(tiny_model, tmp_path / "m")
    model = load_pretrained(path, precision="int8", keep_tokens=0.5)
    assert isinstance(model.video.tx.blocks[0].attn.k, torch.ao.nn.quantized.dynamic.Linear)
    assert model.video.keep_tokens == model.audio.keep_tokens == 0.5 and not model.training
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, int8, bf16"):
        load_pretrained(path, precision="fp16")
    with pytest.raises(ValueError, match=r"keep_tokens must be in \(0, 1\]"):
        load_pretrained(path, keep_tokens=0.0)


def test_even_subset_is_even_in_space_and_time() -> None:
    half = torch.zeros(2 * 4 * 4)
    half[even_subset((2, 4, 4), 16)] = 1
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2 == 0
    assert torch.equal(half.view(2, 4, 4).bool(), torch.stack([checker, ~checker]))  # alternates in time
    grid = (8, 14, 14)
    for fraction, spread in ((0.75, 1.0), (0.5, 1.0), (0.3, 1.3)):  # max/min of per-frame, row, column counts
        keep = keep_count(1 - fraction, 8 * 14 * 14)
        idx = even_subset(grid, keep)
        assert len(idx) == keep and torch.equal(idx, idx.unique())  # sorted, no repeats
        for where in (idx // 196, idx % 196 // 14, idx % 14):  # frames, rows, columns over the clip
            counts = torch.bincount(where).float()
            assert counts.max() / counts.min() <= spread + 0.05 * (spread > 1), (fraction, counts)
    assert even_subset((400,), 200).tolist() == list(range(0, 400, 2))
    assert torch.equal(even_subset((5, 2, 2), 7), even_subset((5, 2, 2), 7))  # fixed, not random


def test_token_budget_keeps_dropTokens_count_deterministically() -> None:
    model = load_pretrained(DEMO)
    x = _inputs(model.config, 2)
    with torch.no_grad():
        full = _heads(model, x)
        n_video = model.encode_video(x[0])["tokens"].shape[1]
        set_token_budget(model, 1.0)
        assert all(torch.equal(full[k], v) for k, v in _heads(model, x).items())  # 1.0 is exactly a no-op
        for fraction, video_min, audio_min in ((0.75, 0.99, 0.98), (0.5, 0.99, 0.97)):
            set_token_budget(model, fraction)
            out, again = _heads(model, x), _heads(model, x)
            assert all(torch.equal(out[k], again[k]) for k in out)
            assert model.encode_video(x[0])["tokens"].shape[1] == keep_count(1 - fraction, n_video)
            cos = _cosines(full, out)
            assert cos["video.va"] >= video_min and cos["video.vt"] >= video_min, (fraction, cos)
            assert cos["audio.va"] >= audio_min and cos["text.vt"] == pytest.approx(1.0), (fraction, cos)
        model.train()  # training keeps DropToken's random subset; the budget is for eval only
        assert model.encode_video(x[0])["tokens"].shape[1] == keep_count(model.config.drop_token_rate, n_video)


def test_window_spec_from_input_is_the_one_mapping(tiny_config) -> None:
    from model.media import WindowSpec

    inp = tiny_config.input
    spec = WindowSpec.from_input(inp, stride=1.5)
    assert (spec.num_frames, spec.fps, spec.size, spec.sample_rate, spec.stride) == (8, 2.5, 64, 16000, 1.5)
    assert spec.duration == inp.clip_seconds and spec.num_samples == inp.num_samples
    assert WindowSpec.from_input(inp, native=True).size is None
