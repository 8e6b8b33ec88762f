"""Argument checks for Catalog: each error says what was wrong and what is accepted."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ._util import normalize
from .errors import InvalidArgumentError
from .types import INDEX_TYPES, ITEM_ID, ITEM_ID_MAX, KINDS

SPACE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_kinds(kinds: str | Iterable[str] | None) -> list[str] | None:
    if kinds is None:
        return None
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise InvalidArgumentError(f"unknown kind(s) {bad or kinds}; accepted: {', '.join(KINDS)}")
    return kinds


def check_item_id(item_id: str | None) -> None:
    """A caller-chosen item id is safe in URLs and file names."""
    if item_id is not None and (not isinstance(item_id, str) or not ITEM_ID.fullmatch(item_id)):
        raise InvalidArgumentError(f"item_id must be 1-{ITEM_ID_MAX} characters of letters, digits, '-' or '_', "
                                   f"got {item_id!r}")


def check_type(index_type: str) -> str:
    if index_type not in INDEX_TYPES:
        raise InvalidArgumentError(f"unknown index type {index_type!r}; accepted: {', '.join(INDEX_TYPES)}")
    return index_type


MAX_METADATA_DEPTH = 16  # nesting of objects and arrays; every reader (SQLite json1, pydantic) copes
MAX_METADATA_BYTES = 64 * 1024  # of the stored JSON text
MAX_SOURCE_CHARS = 1024  # an item's `source` as a client or a shard may give it (uploads and imports alike)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_OR_NUL = re.compile("[\ud800-\udfff\x00]")


def text_problem(value: str, *, stored: bool = True) -> str | None:
    """Why `value` cannot be used as text, or None.

    A lone surrogate (JSON allows the escape "\\ud800") is not Unicode: the JSON encoder of every
    response, the tokenizers and UTF-8 stores all refuse it, so once stored it breaks every read.
    NUL is refused in `stored` text because PostgreSQL cannot hold it (the rule is the same on
    every store); the tokenizers take it."""
    m = (_SURROGATE_OR_NUL if stored else _SURROGATE).search(value)
    if m is None:
        return None
    if m.group() == "\x00":
        return f"contains a NUL character (at {m.start()}); accepted: text without NUL"
    return (f"contains a lone surrogate U+{ord(m.group()):04X} (at {m.start()}); accepted: valid Unicode "
            "text (a surrogate only as half of a pair)")


def check_text(value: str, what: str, *, stored: bool = True) -> None:
    """`text_problem` as an InvalidArgumentError naming `what`."""
    problem = text_problem(value, stored=stored)
    if problem is not None:
        raise InvalidArgumentError(f"{what} {problem}")


def _check_json_value(value: Any, depth: int) -> None:
    """JSON types only (str, finite numbers, bool, None, lists, string-keyed dicts), nested at most
    MAX_METADATA_DEPTH deep: what is stored must read back through every route."""
    if depth > MAX_METADATA_DEPTH and isinstance(value, (list, tuple, Mapping)):
        raise InvalidArgumentError(f"metadata is nested more than {MAX_METADATA_DEPTH} levels deep; "
                                   f"accepted: at most {MAX_METADATA_DEPTH}")
    if isinstance(value, str):
        check_text(value, "a metadata value")
        return
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgumentError(f"metadata is not JSON-serialisable (it holds {value!r}); accepted: finite "
                                       "numbers only (no NaN/Infinity)")
        if isinstance(value, int) and not -2**63 <= value < 2**63:
            raise InvalidArgumentError("metadata holds an integer outside the 64-bit range; accepted: "
                                       "-2**63 .. 2**63-1")
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_json_value(v, depth + 1)
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidArgumentError(f"metadata key {k!r} is not a string; accepted: JSON objects")
            check_text(k, "a metadata key")
            _check_json_value(v, depth + 1)
        return
    raise InvalidArgumentError(f"metadata is not JSON-serialisable (it holds a {type(value).__name__}); accepted: "
                               "str, int, float, bool, None, lists and dicts of those")


def metadata_json(metadata: Mapping[str, Any] | None) -> str:
    """The stored JSON text of an item's metadata, after the depth, type and size limits."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise InvalidArgumentError("metadata must be a JSON object (dict with string keys)")
    _check_json_value(metadata, 1)
    text = json.dumps(dict(metadata), allow_nan=False, sort_keys=True)
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise InvalidArgumentError(f"metadata is {len(text.encode())} bytes as JSON; the limit is "
                                   f"{MAX_METADATA_BYTES} bytes")
    return text


def metadata_from_json(text: str) -> dict[str, Any]:
    """Metadata sent as JSON text (a shard's column): at most MAX_METADATA_BYTES before it is parsed
    (so no parse of a huge or 100k-deep text), a JSON object, then `metadata_json`'s rules."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_METADATA_BYTES:
        raise InvalidArgumentError(f"metadata is {size} bytes of JSON; the limit is {MAX_METADATA_BYTES} bytes")
    try:
        value = json.loads(text)  # NaN/Infinity parse, and metadata_json refuses them
    except RecursionError:
        raise InvalidArgumentError(f"metadata is nested too deep to parse; accepted: at most {MAX_METADATA_DEPTH} "
                                   "levels") from None
    except ValueError as exc:
        raise InvalidArgumentError(f"metadata is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"metadata must be a JSON object, got {type(value).__name__}")
    metadata_json(value)
    return value


def check_item(kind: str, source: str, sha256: str, segments: Sequence[Sequence[float]] | np.ndarray,
               duration: float | None, metadata: Mapping[str, Any] | None
               ) -> tuple[str, str, np.ndarray, float | None, str]:
    """(kind, lower-case sha256, segments [n, 2] float64, duration, metadata JSON) or InvalidArgumentError."""
    kind = check_kinds(kind)[0]
    if not isinstance(source, str) or not source:
        raise InvalidArgumentError("source must be a non-empty string (file name, URL…)")
    check_text(source, "source")  # not its length: a server path's default source may be longer
    sha = sha256.lower() if isinstance(sha256, str) else ""
    if not _SHA256.match(sha):
        raise InvalidArgumentError(f"sha256 must be 64 hex characters, got {sha256!r}")
    try:
        segs = np.asarray(segments, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"segments must be [n, 2] numbers (start, end): {e}") from e
    if segs.ndim != 2 or segs.shape[1] != 2 or not len(segs):
        raise InvalidArgumentError(f"segments must be [n, 2] (start, end) with n ≥ 1, got shape {list(segs.shape)}")
    if not np.isfinite(segs).all() or (segs[:, 0] < 0).any() or (segs[:, 1] < segs[:, 0]).any():
        raise InvalidArgumentError("segments must be finite with 0 ≤ start ≤ end")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                 or not math.isfinite(duration) or duration < 0):
        raise InvalidArgumentError(f"duration must be None or a finite number ≥ 0, got {duration!r}")
    return kind, sha, segs, None if duration is None else float(duration), metadata_json(metadata)


def check_vectors(vectors: Mapping[str, Any], dims: Mapping[str, int], n: int) -> dict[str, np.ndarray]:
    """{space: unit float32 [n, dim]} for an item with n segments."""
    if not isinstance(vectors, Mapping) or not vectors:
        raise InvalidArgumentError(f"vectors must map at least one space ({', '.join(dims)}) to an array [n, dim]")
    out = {}
    for space, x in vectors.items():
        if space not in dims:
            raise InvalidArgumentError(f"unknown space {space!r}; accepted: {', '.join(dims)}")
        out[space] = normalize(x, dims[space], f"vectors[{space!r}]")
        if len(out[space]) != n:
            raise InvalidArgumentError(f"vectors[{space!r}] has {len(out[space])} rows for {n} segments; "
                                       "accepted: one vector per segment")
    return out
