"""Tokenizers: the official word rule, SentencePiece training, saving and loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import SentencePieceTokenizer, TokenizerError, WordTokenizer, load_tokenizer


def test_word_tokenizer_follows_the_dmvr_rule(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<pad>\n<bos>\n<eos>\n<unk>\nhow\nto\ncut\nan\nonion\n")
    tok = WordTokenizer.from_file(vocab)
    ids = tok.encode(["How to CUT an onion!", "cut, cut; zucchini?"] + ["to " * 20])
    assert ids.shape == (3, 16)
    assert ids[0, :6].tolist() == [4, 5, 6, 7, 8, 0]  # punctuation stripped, lowercased, padded with 0
    assert ids[1, :4].tolist() == [6, 6, 3, 0]  # unknown word -> <unk>
    assert ids[2].tolist() == [5] * 16  # truncated to 16


def test_word_vocab_with_indices_and_errors(tmp_path: Path) -> None:
    vocab = tmp_path / "v.txt"
    vocab.write_text("0 <pad>\n1 <unk>\n2 hello\n")
    assert WordTokenizer.from_file(vocab).encode(["hello"])[0, 0].item() == 2
    vocab.write_text("<unk>\n<pad>\n")
    with pytest.raises(TokenizerError, match="<pad>' at index 0"):
        WordTokenizer.from_file(vocab)
    with pytest.raises(TokenizerError, match="not found"):
        WordTokenizer.from_file(tmp_path / "missing.txt")


def test_sentencepiece_trains_saves_and_loads(tmp_path: Path) -> None:
    texts = [f"a {c} {s} moves {d}" for c in ("red", "green", "blue") for s in ("circle", "square") for d in ("left", "up")] * 10
    tok = SentencePieceTokenizer.train(texts, tmp_path / "spm", vocab_size=40)
    ids = tok.encode(["a red circle moves left", ""])
    assert ids.shape == (2, 16) and ids[0, 0] != 0 and ids[1].sum() == 0
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, SentencePieceTokenizer) and again.encode(["a red circle moves left"]).tolist() == ids[:1].tolist()


def test_load_tokenizer_refuses_missing_or_foreign(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="holds no tokenizer"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"kind": "bpe", "file": "x", "max_len": 16}')
    with pytest.raises(TokenizerError, match="unknown tokenizer kind 'bpe'"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"kind": "sentencepiece", "file": "x.model", "max_len": 16}')
    (tmp_path / "x.model").write_text("not a model")
    with pytest.raises(TokenizerError, match="not a SentencePiece model"):
        load_tokenizer(tmp_path)
