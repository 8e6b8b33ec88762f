"""The official text pipeline's frozen word table: load it instead of leaving it random.

Paper presets look words up in a frozen word2vec table (300-d, the official vocabulary). A frozen
table that was randomly initialised never learns, so pretraining refuses that. The table and its
vocabulary come from a converted official model directory (its word tokenizer and text
embedding) or from a word2vec-format file (text ``N D`` header then ``word v1 .. vD`` lines, or
the binary form). A word2vec file gets ``<pad>`` (zeros) at id 0 and ``<unk>`` (the mean vector)
at id 1 unless it has them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model import VATT, WordTokenizer, load_pretrained, load_tokenizer
from training.errors import TrainingError

__all__ = ["install_word_table", "load_word_embeddings", "read_word2vec"]


def read_word2vec(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Words and a float32 [V, D] table from a word2vec text or binary file."""
    raw = Path(path).read_bytes()
    head, _, rest = raw.partition(b"\n")
    try:
        count, dim = (int(x) for x in head.split())
    except ValueError:
        raise TrainingError(f"{path}: not a word2vec file (the first line must be 'count dimension')") from None
    words, rows = [], []
    try:  # text form
        for line in rest.decode("utf-8").splitlines():
            parts = line.rstrip().split(" ")
            if len(parts) == dim + 1:
                words.append(parts[0])
                rows.append(np.asarray(parts[1:], np.float32))
        if len(words) != count:
            raise ValueError
    except (UnicodeDecodeError, ValueError):  # binary form: word, space, dim float32
        words, rows, pos = [], [], 0
        for _ in range(count):
            end = rest.index(b" ", pos)
            words.append(rest[pos:end].decode("utf-8").strip())
            rows.append(np.frombuffer(rest, np.float32, dim, end + 1).copy())
            pos = end + 1 + 4 * dim
    return words, np.stack(rows)


def load_word_embeddings(source: str | Path) -> tuple[WordTokenizer, torch.Tensor]:
    """A word tokenizer and its [V, D] table from a converted official model directory or a word2vec file."""
    source = Path(source)
    if source.is_dir():
        model = load_pretrained(source)
        tok = load_tokenizer(source)
        if not isinstance(model, VATT) or not isinstance(tok, WordTokenizer):
            raise TrainingError(f"{source}: --word-embeddings needs a converted official VATT with its word vocabulary")
        table = _embedding(model).weight.detach().clone()
        return tok, table[: tok.vocab_size]
    if not source.is_file():
        raise TrainingError(f"--word-embeddings not found: {source}")
    words, table = read_word2vec(source)
    index = {w: i for i, w in enumerate(words)}
    special = {WordTokenizer.PAD: np.zeros(table.shape[1], np.float32), WordTokenizer.UNK: table.mean(0)}
    vocab = [WordTokenizer.PAD, WordTokenizer.UNK] + [w for w in words if w not in special]
    full = np.stack([table[index[w]] if w in index else special[w] for w in vocab])
    return WordTokenizer(vocab), torch.from_numpy(full)


def _embedding(model: VATT) -> torch.nn.Embedding:
    return model.text.embedding if model.config.arch == "ms" else model.backbone.embedding


def install_word_table(model: VATT, table: torch.Tensor) -> None:
    """Copy ``table`` into the model's (frozen) word embedding; shapes must agree."""
    emb = _embedding(model)
    if emb.weight.shape[1] != table.shape[1] or emb.weight.shape[0] < table.shape[0]:
        raise TrainingError(f"--word-embeddings table {list(table.shape)} does not fit the model's {list(emb.weight.shape)} "
                            "(text.d_embedding and the vocabulary must match)")
    with torch.no_grad():
        emb.weight.zero_()
        emb.weight[: table.shape[0]] = table.to(emb.weight)
