"""Fixtures for training tests: one small synthetic corpus and a tokenizer trained on it (per session)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 training + 6 held-out synthetic clips (64 px, 10 fps, 16 kHz, 3.2-4.8 s)."""
    from training.synthetic import generate

    out = tmp_path_factory.mktemp("corpus")
    generate(out, n=16, n_heldout=6, seed=11, max_seconds=4.8)
    return out


@pytest.fixture(scope="session")
def tokenizer_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BPE SentencePiece tokenizer trained on the corpus transcripts, saved as a tokenizer directory."""
    from training.data import read_manifest, transcript_texts
    from training.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    tok = train_tokenizer(transcript_texts(read_manifest(corpus / "train.jsonl")), out, vocab_size=200)
    tok.save(out)
    return out
