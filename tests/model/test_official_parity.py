"""Parity with the official TensorFlow VATT: tiny checkpoints written by the official code and the
outputs it computed (tests/fixtures/official, copied from ../shared/official-fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model import VATT
from model.convert.official import convert_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
TOL = 1e-4


def _fixture(name: str) -> tuple[dict, dict]:
    meta = json.loads((FIXTURES / name / "fixture.json").read_text())
    data = dict(np.load(FIXTURES / name / "fixture.npz"))
    return meta, data


@pytest.mark.parametrize("name", ["tx_fac_tiny", "ut_fac_tiny"])
def test_inferred_config_lines_up_with_the_official_config(name: str) -> None:
    meta, _ = _fixture(name)
    config, _ = convert_checkpoint(str(FIXTURES / name / "ckpt-1"), d_kv=16)
    over = meta["tiny_overrides"]
    assert (config.heads.d_va, config.heads.d_vt) == (meta["head_dims"]["d_va"], meta["head_dims"]["d_vt"])
    if config.arch == "ms":
        for ours, theirs in ((config.video, over["video_model_kwargs"]), (config.audio, over["audio_model_kwargs"]),
                             (config.text, over["text_model_kwargs"])):
            for key in ("d_model", "d_kv", "d_ff", "num_layers", "num_heads"):
                assert getattr(ours, key) == theirs[key], key
        assert config.video.temporal_buckets == over["video_model_kwargs"]["max_temporal_buckets"]
        assert config.audio.temporal_buckets == over["audio_model_kwargs"]["max_temporal_buckets"]
        assert (config.text.vocab_size, config.text.d_embedding) == (1000, 36)
    else:
        u, theirs = config.universal, over["unified_model_kwargs"]
        for key in ("d_model", "d_kv", "d_ff", "num_layers", "num_heads", "d_post_proj"):
            assert getattr(u, key) == theirs[key], key
        assert (u.video_temporal_buckets, u.video_spatial_buckets, u.audio_temporal_buckets, u.text_temporal_buckets) == (
            theirs["max_vid_temporal_buckets"], theirs["max_vid_spatial_buckets"], theirs["max_aud_temporal_buckets"],
            theirs["max_txt_temporal_buckets"])
    assert (config.input.num_frames, config.input.image_size) == tuple(meta["inputs"]["video"]["shape"][1:3])
    assert config.input.num_samples == meta["inputs"]["audio"]["shape"][1]


@pytest.mark.parametrize("name", ["tx_fac_tiny", "ut_fac_tiny"])
def test_converted_model_reproduces_official_outputs(name: str) -> None:
    _, data = _fixture(name)
    config, state = convert_checkpoint(str(FIXTURES / name / "ckpt-1"), d_kv=16)
    model = VATT(config, weight_init="skip")
    model.load_state_dict(state, strict=True)
    model.eval()
    video = torch.from_numpy(data["input/video"]).permute(0, 4, 1, 2, 3)  # [B,T,H,W,C] -> [B,C,T,H,W]
    audio = torch.from_numpy(data["input/audio"])[..., 0]  # [B,L,1] -> [B,L]
    ids = torch.from_numpy(data["input/text"]).long()
    assert np.array_equal(data["output/text/word_ids"], data["input/text"].astype(np.float32))
    with torch.no_grad():
        v, a, t = model.encode_video(video), model.encode_audio(audio), model.encode_text(ids)
    pairs = {
        "head_stack/bridge/video/toaud": v["va"], "head_stack/bridge/video/totxt": v["vt"],
        "head_stack/bridge/audio/tovid": a["va"], "head_stack/bridge/text/tovid": t["vt"],
        "video/features_pooled": v["pooled"], "audio/features_pooled": a["pooled"], "text/features_pooled": t["pooled"],
        "video/features": v["tokens"].reshape(data["output/video/features"].shape),
        "audio/features": a["tokens"], "text/features": t["tokens"],
    }
    for key, ours in pairs.items():
        ref = data[f"output/{key}"]
        assert ours.shape == ref.shape, key
        diff = float(np.abs(ours.numpy() - ref).max())
        assert diff < TOL, f"{key}: max abs diff {diff:.2e}"
