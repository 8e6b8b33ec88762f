"""Model structure: sizes, shapes, determinism, DropToken, attention paths, gradients."""

from __future__ import annotations

import pytest
import torch

from model import VATT, VattConfig, VideoConfig
from model.layers import Attention, drop_tokens, keep_count
from model.video import VideoBackbone

# Paper Table 7, backbone parameters. What we count: the video backbone (ViT) at that size —
# voxel patch embedding, the three position tables and their LayerNorm, the AGG token and the
# Transformer with its final LayerNorm; no heads, no word tables.
PAPER_SIZES = {"small": 20.9e6, "base": 87.9e6, "medium": 155.0e6, "large": 306.1e6}
SIZES = {
    "small": dict(num_layers=6, d_model=512, num_heads=8, d_ff=2048),
    "base": dict(num_layers=12, d_model=768, num_heads=12, d_ff=3072),
    "medium": dict(num_layers=12, d_model=1024, num_heads=16, d_ff=4096),
    "large": dict(num_layers=24, d_model=1024, num_heads=16, d_ff=4096),
}


@pytest.mark.parametrize("size", list(PAPER_SIZES))
def test_backbone_parameter_count_matches_paper(size: str) -> None:
    backbone = VideoBackbone(VideoConfig(**SIZES[size]), device="meta")
    count = sum(p.numel() for p in backbone.parameters())
    assert abs(count - PAPER_SIZES[size]) / PAPER_SIZES[size] < 0.02, (size, count)


@pytest.mark.parametrize("preset,video_size", [("vatt-ms-bbs", "base"), ("vatt-ms-mbs", "medium"), ("vatt-ms-lbs", "large")])
def test_ms_presets_use_the_paper_video_size(preset: str, video_size: str) -> None:
    model = VATT(VattConfig.preset(preset), device="meta")
    count = sum(p.numel() for p in model.video.parameters())
    assert abs(count - PAPER_SIZES[video_size]) / PAPER_SIZES[video_size] < 0.02
    # audio is WaT-Base and text T5-Small in every MS preset (paper: BBS / MBS / LBS)
    assert model.config.audio.d_model == 768 and model.config.text.num_layers == 6


def test_ma_medium_shared_transformer_is_medium() -> None:
    model = VATT(VattConfig.preset("vatt-ma-medium"), device="meta")
    count = sum(p.numel() for p in model.backbone.tx.parameters()) + sum(p.numel() for p in model.backbone.video_to_patch.parameters())
    assert abs(count - PAPER_SIZES["medium"]) / PAPER_SIZES["medium"] < 0.02
    assert model.heads.vid_to_hid.in_features == 1024  # head inputs are d_post_proj wide


def _inputs(cfg: VattConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = cfg.input
    video = torch.rand(batch, 3, c.num_frames, c.image_size, c.image_size, generator=g) * 2 - 1
    audio = torch.rand(batch, c.num_samples, generator=g) * 2 - 1
    ids = torch.randint(1, cfg.text_vocab_size, (batch, c.text_len), generator=g)
    ids[-1, 5:] = 0
    return video, audio, ids


@pytest.mark.parametrize("preset", ["tiny", "tiny-ma"])
def test_shapes_and_eval_determinism(preset: str) -> None:
    cfg = VattConfig.preset(preset)
    model = VATT(cfg).eval()
    video, audio, ids = _inputs(cfg)
    v, a, t = model.encode_video(video), model.encode_audio(audio), model.encode_text(ids)
    assert v["va"].shape == (2, cfg.heads.d_va) and v["vt"].shape == (2, cfg.heads.d_vt)
    assert a["va"].shape == (2, cfg.heads.d_va) and "vt" not in a
    assert t["vt"].shape == (2, cfg.heads.d_vt) and "va" not in t
    grid = (cfg.input.num_frames // 4) * (cfg.input.image_size // 16) ** 2
    assert v["tokens"].shape[1] == grid and t["tokens"].shape[1] == cfg.input.text_len
    assert a["tokens"].shape[1] == cfg.input.num_samples // 128
    again = model.encode_video(video)
    assert torch.equal(v["va"], again["va"]) and torch.equal(v["vt"], again["vt"])
    assert torch.equal(t["vt"], model.encode_text(ids)["vt"])


@pytest.mark.parametrize("preset", ["tiny", "tiny-ma"])
def test_drop_token_only_in_training(preset: str) -> None:
    cfg = VattConfig.preset(preset, drop_token_rate=0.5)
    model = VATT(cfg)
    video, audio, _ = _inputs(cfg)
    n_video = (cfg.input.num_frames // 4) * (cfg.input.image_size // 16) ** 2
    table_audio = cfg.audio.temporal_buckets if cfg.arch == "ms" else cfg.universal.audio_temporal_buckets
    model.train()
    assert model.encode_video(video)["tokens"].shape[1] == keep_count(0.5, n_video) == n_video // 2
    assert model.encode_audio(audio)["tokens"].shape[1] == keep_count(0.5, table_audio) == table_audio // 2
    model.eval()
    assert model.encode_video(video)["tokens"].shape[1] == n_video
    assert model.encode_audio(audio)["tokens"].shape[1] == cfg.input.num_samples // 128


def test_drop_tokens_shares_one_permutation_across_the_batch() -> None:
    x = torch.arange(10.0)[None, :, None].repeat(3, 1, 4)  # token i holds value i in every sample
    kept = drop_tokens(x, 4, torch.Generator().manual_seed(1))
    assert kept.shape == (3, 4, 4)
    assert torch.equal(kept[0], kept[1]) and torch.equal(kept[1], kept[2])
    assert len(set(kept[0, :, 0].tolist())) == 4
    assert keep_count(0.5, 1568) == 784 and keep_count(0.5, 1200) == 600 and keep_count(0.75, 1568) == 392


def test_sdpa_and_explicit_attention_agree() -> None:
    torch.manual_seed(0)
    attn = Attention(48, 3, 16).eval()
    x = torch.randn(2, 7, 48)
    bias = torch.randn(2, 3, 7, 7)
    fused = attn(x, bias)
    attn.fused = False
    explicit = attn(x, bias)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    attn.scale = 1.0  # the T5 (unscaled) path
    explicit = attn(x, bias)
    attn.fused = True
    torch.testing.assert_close(attn(x, bias), explicit, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset", ["tiny", "tiny-ma"])
def test_backward_reaches_every_trainable_parameter(preset: str) -> None:
    cfg = VattConfig.preset(preset)
    model = VATT(cfg).train()
    video, audio, ids = _inputs(cfg)
    loss = sum(out[k].square().mean() for out in (model.encode_video(video), model.encode_audio(audio),
                                                  model.encode_text(ids)) for k in ("va", "vt") if k in out)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert no_grad == []


def test_official_presets_freeze_the_word_table() -> None:
    model = VATT(VattConfig.preset("vatt-ms-bbs"), device="meta")
    assert model.frozen_parameter_names() == ["text.embedding.weight"]
    assert VATT(VattConfig.preset("tiny")).frozen_parameter_names() == []


def test_encode_rejects_bad_inputs() -> None:
    model = VATT(VattConfig.preset("tiny")).eval()
    with pytest.raises(ValueError, match="video must be"):
        model.encode_video(torch.zeros(1, 3, 8, 64))
    with pytest.raises(ValueError, match=r"text ids must lie in \[0, 1000\)"):
        model.encode_text(torch.full((1, 16), 5000))
    with pytest.raises(ValueError, match="audio must be"):
        model.encode_audio(torch.zeros(1, 1, 16000))


def test_preset_overrides_and_round_trip() -> None:
    cfg = VattConfig.preset("tiny", video={"num_layers": 3}, drop_token_rate=0.0)
    assert cfg.video.num_layers == 3 and cfg.drop_token_rate == 0.0 and cfg.video.d_model == 64
    assert VattConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KeyError, match="unknown preset"):
        VattConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown video config keys"):
        VattConfig.preset("tiny", video={"depth": 3})
