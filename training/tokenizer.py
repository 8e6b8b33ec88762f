"""Training a SentencePiece tokenizer on a manifest's transcripts.

On small, repetitive corpora (the synthetic corpus: ~60 distinct words) SentencePiece's unigram
trainer stops at ~76 sub-word pieces ("now" -> "n", "ow") however large the vocabulary asked for,
and 40 % of the narrations then overflow the 16-token text length. BPE on the same text keeps
whole words, so it is the default here. Both kinds share the conventions of
`model.SentencePieceTokenizer.train` (pad 0, unk 1, no BOS/EOS, NFKC + case folding).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from model import SentencePieceTokenizer, TokenizerError

__all__ = ["train_tokenizer"]

log = logging.getLogger(__name__)


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, *, vocab_size: int, kind: str = "bpe",
                    max_len: int = 16) -> SentencePieceTokenizer:
    """Train a ``kind`` ("bpe" | "unigram") SentencePiece model with at most ``vocab_size`` pieces."""
    if kind not in ("bpe", "unigram"):
        raise ValueError(f"tokenizer kind must be 'bpe' or 'unigram', got {kind!r}")
    sentences = [t for t in texts if t and t.strip()]
    if not sentences:
        raise TokenizerError("no transcript text to train a tokenizer on; give --tokenizer or a manifest with transcripts")
    return SentencePieceTokenizer.train(sentences, out_dir, vocab_size=vocab_size, max_len=max_len, model_type=kind)
