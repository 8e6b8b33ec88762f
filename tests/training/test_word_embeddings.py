"""The official text pipeline: a loaded frozen word table, the refusal of a random frozen one, --recipe paper."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from model import WordTokenizer, load_pretrained, load_tokenizer
from training.data import read_manifest, transcript_texts
from training.errors import TrainingError
from training.params import parse_args
from training.pretrain import main
from training.word_embeddings import load_word_embeddings, read_word2vec

RNG = np.random.default_rng(0)


def _write_w2v(path: Path, words: list[str], table: np.ndarray, binary: bool) -> Path:
    if binary:
        body = b"".join(w.encode() + b" " + struct.pack(f"<{table.shape[1]}f", *row) + b"\n" for w, row in zip(words, table))
        path.write_bytes(f"{len(words)} {table.shape[1]}\n".encode() + body)
    else:
        path.write_text(f"{len(words)} {table.shape[1]}\n" + "".join(f"{w} {' '.join(f'{v:.6f}' for v in row)}\n"
                                                                    for w, row in zip(words, table)))
    return path


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_text_and_binary(tmp_path: Path, binary: bool) -> None:
    words, table = ["the", "cat", "sat"], RNG.standard_normal((3, 5)).astype(np.float32)
    got_words, got = read_word2vec(_write_w2v(tmp_path / "w.vec", words, table, binary))
    assert got_words == words and np.allclose(got, table, atol=1e-5)
    tok, full = load_word_embeddings(tmp_path / "w.vec")
    assert tok.words[:2] == ["<pad>", "<unk>"] and tok.words[2:] == words
    assert torch.equal(full[0], torch.zeros(5)) and torch.allclose(full[1], torch.from_numpy(table.mean(0)))
    assert torch.allclose(full[tok.words.index("cat")], torch.from_numpy(table[1]), atol=1e-5)


def _flags(corpus: Path, out: Path, name: str) -> list[str]:
    return ["--train-manifest", str(corpus / "train.jsonl"), "--output-dir", str(out), "--name", name, "--steps", "1",
            "--batch-size", "4", "--warmup-steps", "0", "--workers", "0", "--vocab-size", "300",
            "--model-set", "text.freeze_embeddings=true"]


def test_frozen_random_table_is_refused_and_a_loaded_one_is_used(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"freezes its word-embedding table .* pass --word-embeddings"):
        main(_flags(corpus, tmp_path, "refused"))
    words = sorted({w for t in transcript_texts(read_manifest(corpus / "train.jsonl")) for w in re.findall(r"[a-z]+", t.lower())})
    table = RNG.standard_normal((len(words), 32)).astype(np.float32)  # the tiny preset's d_embedding
    w2v = _write_w2v(tmp_path / "w.vec", words, table, binary=False)
    assert main(_flags(corpus, tmp_path, "loaded") + ["--word-embeddings", str(w2v)]) == 0
    model_dir = tmp_path / "loaded" / "model"
    tok, model = load_tokenizer(model_dir), load_pretrained(model_dir)
    assert isinstance(tok, WordTokenizer) and tok.words[2:] == words
    emb = model.text.embedding.weight
    assert not emb.requires_grad  # frozen, and after a step still the given table
    assert torch.allclose(emb[2 : 2 + len(words)], torch.from_numpy(table), atol=1e-5)


def test_recipe_paper(monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["--train-manifest", "m.jsonl", "--recipe", "paper"]
    cfg = parse_args(base)
    got = (cfg.steps, cfg.batch_size, cfg.warmup_steps, cfg.lr, cfg.final_lr, cfg.checkpoint_every)
    assert got == (500_000, 2048, 5000, 1e-4, 5e-5, 10_000)
    assert parse_args(base + ["--steps", "600000"]).steps == 600_000  # explicit flags win
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert parse_args(base).batch_size == 256 and parse_args(base).global_batch(8) == 2048
