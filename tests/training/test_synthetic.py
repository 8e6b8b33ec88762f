"""The synthetic corpus: deterministic bytes, agreeing modalities, a held-out split of unseen pairs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from model.media import WindowSpec, probe, read_window
from training.captions import read_captions
from training.synthetic import COLOURS, MOTIONS, PITCH, SHAPES, VERBS, generate, heldout_pairs, main


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    generate(tmp_path / "a", n=5, n_heldout=3, seed=4)
    assert main(["--out", str(tmp_path / "b"), "--n", "5", "--n-heldout", "3", "--seed", "4", "--workers", "2"]) == 0
    generate(tmp_path / "c", n=5, n_heldout=3, seed=5)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert len(a) == 5 * 2 + 3 * 2 + 4  # mp4 + vtt per clip, two manifests, prompts, corpus.json
    assert a == b
    assert a["clips/train_00000.mp4"] != c["clips/train_00000.mp4"]


def test_refuses_an_existing_corpus(corpus: Path) -> None:
    with pytest.raises(FileExistsError, match="already holds a corpus"):
        generate(corpus, n=1)


def test_heldout_pairs_never_in_training(corpus: Path) -> None:
    rows = {s: [json.loads(x) for x in (corpus / f"{s}.jsonl").read_text().splitlines()] for s in ("train", "heldout")}
    pairs = {s: {(r["labels"]["colour"], r["labels"]["shape"]) for r in rows[s]} for s in rows}
    assert pairs["heldout"] <= set(heldout_pairs())
    assert not pairs["train"] & set(heldout_pairs())
    # by construction every colour and shape still occurs in training (only the pairing is new)
    held = set(heldout_pairs())
    assert {c for c, _ in held} == set(COLOURS) and {s for _, s in held} == set(SHAPES)
    assert all(sum((c, s) not in held for s in SHAPES) >= 1 for c in COLOURS)


def test_modalities_agree(corpus: Path) -> None:
    rows = [json.loads(x) for x in (corpus / "train.jsonl").read_text().splitlines()]
    row = rows[0]
    labels = row["labels"]
    assert labels["motion"] in MOTIONS
    cues = read_captions(corpus / row["transcript"])
    verbs = VERBS[labels["motion"]]
    assert cues and all(any(v in c.text for v in verbs) for c in cues)  # every caption names the motion
    assert all(labels["colour"] in c.text or labels["shape"] in c.text for c in cues)
    everything = [c.text for r in rows for c in read_captions(corpus / r["transcript"])]
    assert any(not any(c in t for c in COLOURS) for t in everything)  # some captions omit the colour
    assert any(not any(s in t for s in SHAPES) for t in everything)  # and some the shape
    for r in rows:  # one narrator per clip: every caption of a clip names the same attributes
        texts = [c.text for c in read_captions(corpus / r["transcript"])]
        named = {(r["labels"]["colour"] in t, r["labels"]["shape"] in t) for t in texts}
        assert len(named) == 1, texts
    assert sum(r["labels"]["colour"] not in (corpus / r["transcript"]).read_text() for r in rows) >= 2  # whole clips without colour
    info = probe(corpus / row["path"])
    assert info.has_video and info.has_audio and info.video_codec == "h264" and info.audio_codec == "aac"
    assert info.duration == pytest.approx(row["duration"], abs=0.1)
    w = read_window(corpus / row["path"], 0.0, WindowSpec(num_frames=4, fps=2.5, size=None, sample_rate=16000))
    frame = (w.video[0] + 1) * 127.5  # [H, W, 3]
    target = np.array(COLOURS[labels["colour"]], np.float32)
    assert (np.abs(frame - target).max(-1) < 40).mean() > 0.005  # the shape's colour is on screen
    spectrum = np.abs(np.fft.rfft(w.audio))
    peak_hz = spectrum[50:].argmax() + 50  # 1 bin = 1/1.6 s; skip the beat's low band
    assert abs(peak_hz / 1.6 - PITCH[labels["colour"]]) < 15  # the pitch follows the colour
