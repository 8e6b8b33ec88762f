"""Manifests, the clip dataset (shapes, masks, determinism, augmentation) and the global batch sampler."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from media_factory import make_video
from model import load_tokenizer
from training.data import Augment, ClipDataset, GlobalBatchSampler, ManifestError, colour_jitter, random_resized_crop, read_manifest


def _dataset(items, tokenizer_dir: Path, **kw) -> ClipDataset:
    return ClipDataset(items, num_frames=8, fps=2.5, image_size=64, sample_rate=16000, tokenizer=load_tokenizer(tokenizer_dir), **kw)


def test_sample_shapes_and_ranges(corpus: Path, tokenizer_dir: Path) -> None:
    ds = _dataset(read_manifest(corpus / "train.jsonl"), tokenizer_dir)
    s = ds[0]
    assert s["video"].shape == (3, 8, 64, 64) and s["video"].dtype == torch.float32
    assert -1.0 <= s["video"].min() and s["video"].max() <= 1.0
    assert s["audio"].shape == (51200,)
    assert s["text"].shape == (5, 16) and s["text"].dtype == torch.int64
    assert s["caption_mask"].dtype == torch.bool and s["caption_mask"][0]
    assert (s["text"][~s["caption_mask"]] == 0).all()  # missing captions are all padding
    assert s["text_mask"] == 1.0 and s["audio_mask"] == 1.0
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["video"].shape == (2, 3, 8, 64, 64) and batch["text"].shape == (2, 5, 16)


def test_randomness_is_a_function_of_seed_epoch_index(corpus: Path, tokenizer_dir: Path) -> None:
    items = read_manifest(corpus / "train.jsonl")
    a, b = _dataset(items, tokenizer_dir, seed=1), _dataset(items, tokenizer_dir, seed=1)
    assert torch.equal(a[3]["video"], b[3]["video"]) and torch.equal(a[3]["audio"], b[3]["audio"])
    b.set_epoch(1)
    assert not torch.equal(a[3]["video"], b[3]["video"])
    evaluation = _dataset(items, tokenizer_dir, train=False)
    evaluation.set_epoch(7)
    assert torch.equal(evaluation[3]["video"], _dataset(items, tokenizer_dir, train=False)[3]["video"])


def test_missing_audio_and_speech_are_masked(tmp_path: Path, tokenizer_dir: Path) -> None:
    make_video(tmp_path / "silent.mp4", duration=4.0, fps=10, width=64, height=48, audio=False)
    make_video(tmp_path / "talk.mp4", duration=4.0, fps=10, width=64, height=48)
    cues = [{"start": 0.0, "end": 1.5, "text": "a red circle"}, {"start": 1.5, "end": 3.0, "text": "moves left"}]
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "silent.mp4"}) + "\n# comment\n\n"
                                      + json.dumps({"path": str(tmp_path / "talk.mp4"), "transcript": cues}) + "\n")
    items = read_manifest(tmp_path / "m.jsonl")
    ds = _dataset(items, tokenizer_dir)
    silent, talk = ds[0], ds[1]
    assert silent["audio_mask"] == 0 and silent["text_mask"] == 0 and not silent["caption_mask"].any()
    assert torch.all(silent["audio"] == 0) and torch.all(silent["text"] == 0)
    assert talk["audio_mask"] == 1 and talk["text_mask"] == 1
    assert talk["caption_mask"].tolist() == [True, True, False, False, False]
    assert silent["video"].shape == (3, 8, 64, 64)  # 64x48 source, random-resized-cropped to 64x64


def test_manifest_errors_name_line_and_accepted_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a.mp4", "caption": "x"}\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl:1: unknown keys \['caption'\]; accepted: .*'transcript'"):
        read_manifest(bad)
    bad.write_text('{"path": "a.mp4"}\nnot json\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl:2: not JSON"):
        read_manifest(bad)
    bad.write_text('{"path": "a.mp4", "transcript": 3}\n')
    with pytest.raises(ManifestError, match="'transcript' must be a .vtt/.srt path or a list"):
        read_manifest(bad)
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")


def test_crop_box_respects_area_and_ratio() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = random_resized_crop(48, 64, rng, (0.08, 1.0), (0.5, 2.0))
        assert 0 <= top and top + h <= 48 and 0 <= left and left + w <= 64
        if (h, w) != (48, 48):  # not the centre-crop fallback
            assert 0.08 * 48 * 64 * 0.8 <= h * w <= 48 * 64 and 0.4 <= w / h <= 2.5


def test_colour_jitter_stays_in_range_and_grey_stays_grey_under_hue() -> None:
    x = torch.rand(3, 2, 8, 8)
    y = colour_jitter(x, np.random.default_rng(1), Augment())
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    grey = torch.full((3, 1, 4, 4), 0.5)
    only_hue = Augment(brightness=None, saturation=None, contrast=None, hue=0.2)
    assert torch.allclose(colour_jitter(grey, np.random.default_rng(2), only_hue), grey, atol=1e-5)


def test_global_batches_split_across_ranks_and_resume() -> None:
    one = GlobalBatchSampler(20, 4, seed=3)
    ranks = [GlobalBatchSampler(20, 2, world_size=2, rank=r, seed=3) for r in range(2)]
    assert len(one) == 5
    for batch, b0, b1 in zip(one, *ranks):
        assert batch == b0 + b1
    one.set_epoch(1)
    epoch1 = list(one)
    assert epoch1 != list(GlobalBatchSampler(20, 4, seed=3))
    one.set_epoch(1, start_batch=3)
    assert list(one) == epoch1[3:] and len(one) == 2
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        GlobalBatchSampler(3, 2, world_size=2)


def test_preloaded_windows_match_the_decoder(corpus: Path) -> None:
    """A window cut from a decoded clip is what the decoder gives for it: frames exactly (the same
    at-or-before rule, its 1 ms tolerance), audio exactly as the streaming decode."""
    from model.media import WindowSpec, iter_windows, read_window
    from training.data import decode_clip

    item = read_manifest(corpus / "train.jsonl")[0]
    clip = decode_clip(item.path, 16000)
    assert clip.frames is not None and clip.frames.dtype == np.uint8 and clip.audio is not None
    spec = WindowSpec(num_frames=8, fps=2.5, size=None, sample_rate=16000)
    for start in (0.0, 0.05, 0.2992, 0.37, clip.duration - 3.2):
        cached, decoded = clip.window(start, spec), read_window(item.path, start, spec)
        assert np.array_equal(cached.video, decoded.video), start
    strided = WindowSpec(num_frames=8, fps=2.5, size=None, sample_rate=16000, stride=0.3)
    for window in iter_windows(item.path, strided):
        cached = clip.window(window.start, strided)
        assert np.array_equal(cached.video, window.video) and np.array_equal(cached.audio, window.audio), window.start
    past_end = clip.window(clip.duration - 1.0, spec)  # targets after the content are padding zeros
    assert past_end.padded and np.all(past_end.video[-1] == 0.0) and np.all(past_end.audio[-100:] == 0.0)


def test_preload_gives_the_same_samples(corpus: Path, tokenizer_dir: Path) -> None:
    items = read_manifest(corpus / "train.jsonl")
    plain, cached = _dataset(items, tokenizer_dir, seed=3), _dataset(items, tokenizer_dir, seed=3)
    held = cached.preload(workers=2)
    assert held > 0
    with pytest.raises(ValueError, match="for training datasets"):
        _dataset(items, tokenizer_dir, train=False).preload()
    for epoch in (0, 1):
        plain.set_epoch(epoch), cached.set_epoch(epoch)
        for i in range(len(items)):
            a, b = plain[i], cached[i]
            assert torch.equal(a["video"], b["video"]) and torch.equal(a["text"], b["text"]), (epoch, i)
            assert a["audio"].shape == b["audio"].shape


def test_grayscale_makes_grey_clips_and_is_off_by_default(corpus: Path, tokenizer_dir: Path) -> None:
    items = read_manifest(corpus / "train.jsonl")
    off = Augment(flip=False, brightness=None, saturation=None, contrast=None, hue=None)
    grey = _dataset(items, tokenizer_dir, augment=Augment(flip=False, brightness=None, saturation=None, contrast=None, hue=None,
                                                          grayscale=1.0))[2]["video"]
    colour = _dataset(items, tokenizer_dir, augment=off)[2]["video"]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert not torch.equal(colour[0], colour[1])  # the synthetic shapes are coloured
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    assert torch.allclose(grey[0], luma, atol=1e-5)  # same crop, same window: only the colour went
