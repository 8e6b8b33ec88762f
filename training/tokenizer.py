"""Training a SentencePiece tokenizer on a manifest's transcripts.

``model.SentencePieceTokenizer.train`` trains a unigram model. On small, repetitive corpora
(the synthetic corpus: ~60 distinct words) SentencePiece's unigram trainer stops at ~76
sub-word pieces ("now" → "n", "ow") however large the vocabulary asked for, and 40 % of the
narrations then overflow the 16-token text length. BPE on the same text keeps whole words, so
it is the default here; ``kind="unigram"`` defers to the model package. Both give the same
conventions (pad 0, unk 1, no BOS/EOS, NFKC + case folding) and load with
``SentencePieceTokenizer(path)``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path

from model import SentencePieceTokenizer, TokenizerError

__all__ = ["train_tokenizer"]

log = logging.getLogger(__name__)


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, *, vocab_size: int, kind: str = "bpe",
                    max_len: int = 16) -> SentencePieceTokenizer:
    """Train a ``kind`` ("bpe" | "unigram") SentencePiece model with at most ``vocab_size`` pieces."""
    if kind == "unigram":
        return SentencePieceTokenizer.train(texts, out_dir, vocab_size=vocab_size, max_len=max_len)
    if kind != "bpe":
        raise ValueError(f"tokenizer kind must be 'bpe' or 'unigram', got {kind!r}")
    import sentencepiece as spm

    sentences = [t.strip() for t in texts if t and t.strip()]
    if not sentences:
        raise TokenizerError("no transcript text to train a tokenizer on; give --tokenizer or a manifest with transcripts")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=buf, vocab_size=vocab_size, model_type="bpe",
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, hard_vocab_limit=False, character_coverage=1.0,
        normalization_rule_name="nmt_nfkc_cf", num_threads=1, minloglevel=2,
    )
    path = out_dir / "spm.model"
    path.write_bytes(buf.getvalue())
    tok = SentencePieceTokenizer(path, max_len)
    log.info("trained a %d-piece BPE SentencePiece tokenizer on %d captions -> %s", tok.vocab_size, len(sentences), path)
    return tok
