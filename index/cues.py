"""Transcript cues in the catalogue: what a cue may hold, the full-text languages, and a keyword hit.

The catalogue stores cues as plain ``(start, end, text)`` tuples (parsing WebVTT/SRT is `model.captions`'
job; `index` imports no project package). Keyword search runs on the engines' own full-text indexes —
SQLite FTS5 (bm25, highlight) and PostgreSQL tsvector + GIN (ts_rank_cd, ts_headline) — so nothing here
builds an index: it only turns a query into the words both engines match (all of them, AND).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from ._validate import text_problem
from .errors import InvalidArgumentError

MAX_CUES = 100_000  # per item: a 24 h recording with a line every second
MAX_CUE_CHARS = 10_000
MAX_QUERY_WORDS = 64
DEFAULT_LANGUAGE = "english"
# SQLite FTS5 stems English only (porter); other languages match whole words there ("simple")
SQLITE_TOKENIZERS = {"english": "porter unicode61 remove_diacritics 2", "simple": "unicode61 remove_diacritics 2"}
LANGUAGE_NAME = re.compile(r"^[a-z_]{1,32}$")  # a PostgreSQL text-search configuration name
MARK_OPEN, MARK_CLOSE = "\x02", "\x03"  # highlight sentinels the engines insert; never in stored cue text
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class CueHit:
    """One cue matching a keyword query: where it is, its text with the matched words marked, its rank score
    (higher is better: r / (1 + r) of -bm25 in SQLite, of ts_rank_cd in PostgreSQL)."""

    cue_id: int
    item_id: str
    start: float
    end: float
    text: str  # HTML-escaped, the matched words in <mark>…</mark>
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_language(language: str) -> str:
    if not isinstance(language, str) or not LANGUAGE_NAME.match(language):
        raise InvalidArgumentError(f"bad text language {language!r}; accepted: a text-search configuration name "
                                   "such as 'english' or 'simple'")
    return language


def check_cues(cues: Iterable[Sequence[Any]]) -> list[tuple[float, float, str]]:
    """Cues as (start, end, text) tuples with finite times, end ≥ start ≥ 0 and storable, non-empty text."""
    out: list[tuple[float, float, str]] = []
    for n, cue in enumerate(cues):
        if n >= MAX_CUES:
            raise InvalidArgumentError(f"a transcript holds at most {MAX_CUES} cues")
        try:
            start, end, text = cue
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"cue {n} must be (start, end, text) with numeric times, got {cue!r}") from None
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end):
            raise InvalidArgumentError(f"cue {n}: times must be finite with 0 ≤ start ≤ end, got {start}, {end}")
        if not isinstance(text, str):
            raise InvalidArgumentError(f"cue {n}: text must be a string, got {type(text).__name__}")
        text = text.replace(MARK_OPEN, "").replace(MARK_CLOSE, "").strip()
        if len(text) > MAX_CUE_CHARS:
            raise InvalidArgumentError(f"cue {n}: text is {len(text)} characters; the limit is {MAX_CUE_CHARS}")
        why = text_problem(text)
        if why:
            raise InvalidArgumentError(f"cue {n}: {why}")
        if text:
            out.append((start, end, text))
    return sorted(out, key=lambda c: (c[0], c[1]))


def query_words(query: str) -> list[str]:
    """The words of a keyword query (letters and digits; punctuation and FTS operators are dropped)."""
    words = _WORD.findall(query.lower())
    if len(words) > MAX_QUERY_WORDS:
        raise InvalidArgumentError(f"a keyword query holds at most {MAX_QUERY_WORDS} words, got {len(words)}")
    return words


def marked(text: str) -> str:
    """An engine's highlighted text (sentinels around matches) as safe HTML with <mark> tags."""
    return html.escape(text, quote=False).replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>")
