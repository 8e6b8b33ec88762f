"""Text tokenizers, one interface: `encode(texts) -> LongTensor [B, max_len]` with 0 = padding.

`WordTokenizer` is the official DMVR rule over the HowTo100M word vocabulary (for converted
official checkpoints); `SentencePieceTokenizer` is for models trained here on users' transcripts.
Both save into and load from a model directory.
"""

from __future__ import annotations

import json
import logging
import re
import string
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import torch

__all__ = ["Tokenizer", "WordTokenizer", "SentencePieceTokenizer", "TokenizerError", "load_tokenizer",
           "TOKENIZER_FILE", "has_tokenizer"]

log = logging.getLogger(__name__)

TOKENIZER_FILE = "vatt_tokenizer.json"  # names the kind and its files inside a model directory
# what directories written before were using; Hugging Face uses that name for its own format
LEGACY_TOKENIZER_FILE = "tokenizer.json"
_PUNCT = re.compile("[" + re.escape(string.punctuation) + "]")  # POSIX [[:punct:]] for ASCII


class TokenizerError(ValueError):
    """A tokenizer file is missing, malformed or inconsistent."""


class Tokenizer(Protocol):
    max_len: int

    @property
    def vocab_size(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> torch.Tensor: ...

    def save(self, directory: str | Path) -> None: ...

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor: ...


class _Callable:
    """`tokenizer(texts)` is `tokenizer.encode(texts)`, as open_clip's tokenizers are called; one string
    is a batch of one."""

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        return self.encode([texts] if isinstance(texts, str) else list(texts))


def _pad(rows: list[list[int]], max_len: int, pad_id: int) -> torch.Tensor:
    out = torch.full((len(rows), max_len), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        row = row[:max_len]
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


class WordTokenizer(_Callable):
    """DMVR `WordTokenizer`: strip punctuation, lowercase, split on whitespace, unknown -> <unk>,
    pad/truncate to `max_len` (16) with <pad>; no BOS/EOS. The vocabulary must hold <pad> at id 0."""

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, words: Sequence[str], max_len: int = 16) -> None:
        if len(set(words)) != len(words):
            raise TokenizerError("vocabulary words are not unique")
        if not words or words[0] != self.PAD:
            raise TokenizerError(f"vocabulary must have {self.PAD!r} at index 0 (the model masks id 0)")
        if self.UNK not in words:
            raise TokenizerError(f"vocabulary must contain {self.UNK!r}")
        self.words = list(words)
        self.max_len = max_len
        self._ids = {w: i for i, w in enumerate(self.words)}
        self.unk_id = self._ids[self.UNK]

    @classmethod
    def from_file(cls, path: str | Path, max_len: int = 16) -> WordTokenizer:
        """One word per line, or 'index word' per line (both DMVR forms)."""
        path = Path(path)
        if not path.is_file():
            raise TokenizerError(f"vocabulary file not found: {path}")
        entries: dict[int, str] = {}
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            parts = line.strip().split(" ")
            if len(parts) == 2 and parts[0].isdigit():
                entries[int(parts[0])] = parts[1]
            elif len(parts) == 1 and parts[0]:
                entries[n] = parts[0]
            else:
                raise TokenizerError(f"{path}:{n + 1}: expected 'word' or 'index word', got {line!r}")
        if sorted(entries) != list(range(len(entries))):
            raise TokenizerError(f"{path}: word indices must be 0..{len(entries) - 1} without gaps")
        return cls([entries[i] for i in range(len(entries))], max_len)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def tokenize(self, text: str) -> list[str]:
        return _PUNCT.sub("", text).lower().split()

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        rows = [[self._ids.get(w, self.unk_id) for w in self.tokenize(t)] for t in texts]
        return _pad(rows, self.max_len, 0)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        (directory / "vocab.txt").write_text("\n".join(self.words) + "\n", encoding="utf-8")
        _write_meta(directory, {"kind": "word", "file": "vocab.txt", "max_len": self.max_len})


class SentencePieceTokenizer(_Callable):
    """SentencePiece pieces, truncated/padded to `max_len`; the model is trained with pad id 0."""

    def __init__(self, model_path: str | Path, max_len: int = 16) -> None:
        import sentencepiece as spm

        model_path = Path(model_path)
        if not model_path.is_file():
            raise TokenizerError(f"SentencePiece model not found: {model_path}")
        self.model_bytes = model_path.read_bytes()
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(self.model_bytes)
        except Exception as exc:  # sentencepiece raises bare RuntimeError/OSError
            raise TokenizerError(f"{model_path} is not a SentencePiece model: {exc}") from None
        if self.sp.pad_id() != 0:
            raise TokenizerError(f"{model_path}: pad id must be 0 (the model masks id 0), got {self.sp.pad_id()}")
        self.max_len = max_len

    @classmethod
    def train(cls, texts: Iterable[str], out_dir: str | Path, vocab_size: int = 8000, max_len: int = 16,
              model_type: str = "unigram") -> SentencePieceTokenizer:
        """Train a `model_type` ("unigram" | "bpe") model on `texts`, with at most `vocab_size` pieces;
        pad=0, unk=1, no BOS/EOS (as the word tokenizer)."""
        if model_type not in ("unigram", "bpe"):
            raise TokenizerError(f"SentencePiece model type must be 'unigram' or 'bpe', got {model_type!r}")
        import io

        import sentencepiece as spm

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        sentences = [t.strip() for t in texts if t and t.strip()]
        if not sentences:
            raise TokenizerError("no text to train a SentencePiece model on")
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=buf, vocab_size=vocab_size, model_type=model_type,
            pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, hard_vocab_limit=False, character_coverage=1.0,
            normalization_rule_name="nmt_nfkc_cf", num_threads=1, minloglevel=2,
        )
        path = out_dir / "spm.model"
        path.write_bytes(buf.getvalue())
        log.info("trained a %s SentencePiece model on %d sentences -> %s", model_type, len(sentences), path)
        return cls(path, max_len)

    @property
    def vocab_size(self) -> int:
        return self.sp.GetPieceSize()

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        return _pad([self.sp.EncodeAsIds(t) for t in texts], self.max_len, 0)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        (directory / "spm.model").write_bytes(self.model_bytes)
        _write_meta(directory, {"kind": "sentencepiece", "file": "spm.model", "max_len": self.max_len})


def _write_meta(directory: Path, meta: dict) -> None:
    (directory / TOKENIZER_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _meta_path(directory: Path) -> Path | None:
    for name in (TOKENIZER_FILE, LEGACY_TOKENIZER_FILE):
        if (directory / name).is_file():
            return directory / name
    return None


def has_tokenizer(directory: str | Path) -> bool:
    """Whether a model directory holds a tokenizer (under the current or the former file name)."""
    return _meta_path(Path(directory)) is not None


def load_tokenizer(directory: str | Path) -> WordTokenizer | SentencePieceTokenizer:
    """Load the tokenizer saved in a model directory (directories from before the rename included)."""
    directory = Path(directory)
    meta_path = _meta_path(directory)
    if meta_path is None:
        raise TokenizerError(f"{directory} has no {TOKENIZER_FILE}; this model directory holds no tokenizer")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        kind, file, max_len = meta["kind"], meta["file"], int(meta["max_len"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenizerError(f"{meta_path} is malformed ({exc}); expected kind, file and max_len") from None
    if kind == "word":
        return WordTokenizer.from_file(directory / file, max_len)
    if kind == "sentencepiece":
        return SentencePieceTokenizer(directory / file, max_len)
    raise TokenizerError(f"{meta_path}: unknown tokenizer kind {kind!r}; accepted: 'word', 'sentencepiece'")
