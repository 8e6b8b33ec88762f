"""The batcher, the encoder's decode/inference pipeline and the space rules, without HTTP."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from app.errors import ServiceError
from app.services.batcher import Batcher
from app.services.encoder import Encoder
from app.services.query import resolve_space, softmax
from model import WordTokenizer, l2_normalize, whole_item_vector
from model.media import WindowSpec, count_windows, iter_windows


def test_requests_queued_together_share_one_forward_per_modality(tiny_model) -> None:
    batcher = Batcher(tiny_model, max_rows=64, wait_ms=50)
    texts = [torch.randint(1, 50, (n, 16)) for n in (1, 2, 3)]
    waves = [torch.randn(1, tiny_model.config.input.num_samples) * 0.1 for _ in range(2)]
    futures = [batcher.submit_future("text", t) for t in texts] + [batcher.submit_future("audio", w) for w in waves]
    batcher.start()  # everything is already queued: one batch
    try:
        results = [f.result(timeout=60) for f in futures]
    finally:
        batcher.close()
    assert batcher.stats.forwards == 2 and batcher.stats.requests == 5 and batcher.stats.rows == 8
    with torch.inference_mode():
        for t, r in zip(texts, results[:3]):
            expected = l2_normalize(tiny_model.encode_text(t)["vt"]).numpy()
            assert set(r) == {"vt"} and r["vt"].shape == (len(t), 32)
            np.testing.assert_allclose(r["vt"], expected, atol=1e-5)
        for w, r in zip(waves, results[3:]):
            np.testing.assert_allclose(r["va"], l2_normalize(tiny_model.encode_audio(w)["va"]).numpy(), atol=1e-5)


def test_concurrent_callers_are_batched_and_a_bad_request_fails_alone(tiny_model) -> None:
    batcher = Batcher(tiny_model, max_rows=64, wait_ms=200).start()
    try:
        barrier = threading.Barrier(8)
        out: list = [None] * 8

        def call(i: int) -> None:
            barrier.wait()
            out[i] = batcher.run("text", torch.full((1, 16), i + 1))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(o is not None and o["vt"].shape == (1, 32) for o in out)
        assert batcher.stats.forwards < 8  # 8 simultaneous callers, fewer forwards
        bad = batcher.submit_future("video", torch.zeros(1, 3, 2, 8, 8))  # wrong clip shape for the model
        with pytest.raises(ValueError, match="video must be"):
            bad.result(timeout=60)
        assert batcher.run("text", torch.ones(1, 16, dtype=torch.long))["vt"].shape == (1, 32)  # still serving
        with pytest.raises(ValueError, match="unknown modality"):
            batcher.submit_future("smell", torch.zeros(1))
    finally:
        batcher.close()


def test_encoder_pipeline_matches_direct_window_by_window_encoding(tiny_model, make_media) -> None:
    path = make_media("ten.mp4", duration=10.0)
    batcher = Batcher(tiny_model, max_rows=16, wait_ms=1).start()
    encoder = Encoder(tiny_model, WordTokenizer(["<pad>", "<unk>", "a"]), batcher, chunk=2, prefetch=2)
    progress: list[tuple[int, int]] = []
    try:
        emb = encoder.embed_file(path, progress=lambda d, t: progress.append((d, t)))
    finally:
        batcher.close()
    inp = tiny_model.config.input
    spec = WindowSpec(inp.num_frames, inp.fps, inp.image_size, inp.sample_rate)
    windows = list(iter_windows(path, spec, audio=False))
    assert emb.kind == "video" and emb.n_segments == len(windows) == count_windows(10.0, spec) == 3
    assert emb.starts == [w.start for w in windows] and emb.ends == [w.end for w in windows]
    with torch.inference_mode():
        direct = tiny_model.encode_video(torch.stack([w.video_tensor() for w in windows]))
    for space in ("va", "vt"):
        np.testing.assert_allclose(emb.vectors[space], l2_normalize(direct[space]).numpy(), atol=1e-5)
    assert progress[-1] == (3, 3) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    mean = emb.mean("va")
    assert np.linalg.norm(mean) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(mean, whole_item_vector(emb.vectors["va"]))


@pytest.mark.parametrize("query,space,kinds,expected", [
    ("text", None, None, ("vt", ["video", "text"])),
    ("text", None, ["video"], ("vt", ["video"])),
    ("video", None, None, ("va", ["video", "audio"])),
    ("video", "vt", ["video"], ("vt", ["video"])),
    ("video", None, ["audio"], ("va", ["audio"])),
    ("audio", None, ["video"], ("va", ["video"])),
])
def test_space_rules(query, space, kinds, expected) -> None:
    assert resolve_space(query, space, kinds) == expected


@pytest.mark.parametrize("query,space,kinds,message", [
    ("text", None, ["audio"], "text -> audio"),
    ("text", "va", None, "no 'va'"),
    ("audio", "vt", None, "no 'vt'"),
    ("video", "vt", ["audio"], "needs space 'va'"),
])
def test_space_rules_refuse(query, space, kinds, message) -> None:
    with pytest.raises(ServiceError, match=message) as info:
        resolve_space(query, space, kinds)
    assert info.value.status == 400


def test_softmax_sums_to_one() -> None:
    p = softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]]) / 0.07)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.isfinite(p).all()


def test_device_setting() -> None:
    from pydantic import ValidationError

    from app.settings import Settings

    assert Settings(model_dir=".", data_dir=".", device="cpu").torch_device() == "cpu"
    auto = Settings(model_dir=".", data_dir=".").torch_device()
    assert auto == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValidationError, match="device"):
        Settings(model_dir=".", data_dir=".", device="gpu")
