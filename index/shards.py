"""Bulk-embedding shards: Parquet files of segments plus a JSON manifest each (no torch here).

A shard is `NAME.parquet` (one row per segment: item key, source, kind, duration, metadata JSON,
start, end and one float32 list column per space; a space the item lacks is null) and
`NAME.json` (model name and config hash, spaces and dimensions, and every input the shard
covers, with its outcome). Both are written to temporary names and renamed, the manifest last:
a shard is finished exactly when its manifest exists, so a killed writer leaves nothing a
reader or an importer could mistake for finished work.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._validate import MAX_SOURCE_CHARS, metadata_from_json
from .errors import CatalogError, InvalidArgumentError

__all__ = ["SHARD_FORMAT", "ShardItem", "ShardManifest", "ShardError", "write_shard", "finished_shards",
           "read_items", "clear_unfinished"]

log = logging.getLogger(__name__)

SHARD_FORMAT = 1
_TMP = ".tmp"


class ShardError(CatalogError):
    """A shard directory or file is missing, damaged or made by another model."""


@dataclass
class ShardItem:
    """One embedded input: an item of the catalogue-to-be with its segments and vectors."""

    key: str  # sha256 hex: of the file, or of the file and its time range (see app.bulk)
    source: str
    kind: str
    duration: float | None
    metadata: Mapping[str, Any]
    starts: Sequence[float]
    ends: Sequence[float]
    vectors: Mapping[str, np.ndarray]  # space -> float32 [n_segments, dim]
    path: str | None = None  # the input's absolute path when embedded: imported items play from it
    cues: Sequence[tuple[float, float, str]] = ()  # its transcript (optional "cues" column: JSON on its first row)


@dataclass
class ShardManifest:
    """What a shard holds and which model made it; `inputs` lists every input with its outcome."""

    name: str
    model: dict[str, Any]  # {"name": ..., "config_hash": ...}
    spaces: dict[str, int]
    options: dict[str, Any] = field(default_factory=dict)  # window stride etc.: how segments were cut
    inputs: list[dict[str, Any]] = field(default_factory=list)  # {"input": id, "status": "ok"|"error", ...}
    rows: int = 0
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"format": SHARD_FORMAT, "name": self.name, "model": self.model, "spaces": self.spaces,
                "options": self.options, "inputs": self.inputs, "rows": self.rows, "rank": self.rank}

    @classmethod
    def read(cls, path: Path) -> ShardManifest:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            raise ShardError(f"cannot read shard manifest {path} ({type(e).__name__}: {str(e)[:200]})") from None
        if not isinstance(doc, dict) or doc.get("format") != SHARD_FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise ShardError(f"{path}: shard format {found!r}; accepted: {SHARD_FORMAT}")
        try:
            manifest = cls(name=str(doc["name"]), model=dict(doc["model"]),
                           spaces={str(k): int(v) for k, v in doc["spaces"].items()},
                           options=dict(doc.get("options", {})), inputs=list(doc.get("inputs", [])),
                           rows=int(doc.get("rows", 0)), rank=int(doc.get("rank", 0)))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ShardError(f"{path}: malformed manifest ({type(e).__name__}: {e}); accepted: manifests written "
                             "by app.bulk") from None
        if any(d < 1 for d in manifest.spaces.values()) or not all(isinstance(i, dict) for i in manifest.inputs):
            raise ShardError(f"{path}: malformed manifest (a space dimension below 1, or an input that is not an "
                             "object); accepted: manifests written by app.bulk")
        return manifest


_OPTIONAL = ("path",)  # format 1 shards have no path column
MAX_PATH_CHARS = 4096  # a recorded source path, as a server-path ingest accepts it
_NOT_NULL = ("item_key", "source", "kind", "metadata", "start", "end")  # duration may be null


def _schema(spaces: Mapping[str, int]) -> pa.Schema:
    return pa.schema([("item_key", pa.string()), ("source", pa.string()), ("kind", pa.string()),
                      ("duration", pa.float64()), ("metadata", pa.string()), ("start", pa.float64()),
                      ("end", pa.float64()), ("path", pa.string()),
                      *[(s, pa.list_(pa.float32(), d)) for s, d in spaces.items()]])


def _table(items: Sequence[ShardItem], spaces: Mapping[str, int]) -> pa.Table:
    cols: dict[str, list] = {k: [] for k in ("item_key", "source", "kind", "duration", "metadata", "start", "end",
                                             "path")}
    vecs: dict[str, list] = {s: [] for s in spaces}
    for it in items:
        n = len(it.starts)
        meta = json.dumps(dict(it.metadata), sort_keys=True, ensure_ascii=False)
        for k, v in (("item_key", it.key), ("source", it.source), ("kind", it.kind), ("duration", it.duration),
                     ("metadata", meta), ("path", it.path)):
            cols[k] += [v] * n
        cols["start"] += [float(s) for s in it.starts]
        cols["end"] += [float(e) for e in it.ends]
        for s, d in spaces.items():
            x = it.vectors.get(s)
            vecs[s] += [None] * n if x is None else list(np.asarray(x, np.float32).reshape(n, d))
    schema = _schema(spaces)
    arrays = [pa.array(cols[f.name], f.type) for f in schema if f.name in cols]
    for s, d in spaces.items():
        arrays.append(pa.array(vecs[s], pa.list_(pa.float32(), d)))
    table = pa.Table.from_arrays(arrays, schema=schema)
    if any(it.cues for it in items):  # shards without transcripts keep the first format's columns
        cues = [json.dumps([list(c) for c in it.cues], ensure_ascii=False) if it.cues and k == 0 else None
                for it in items for k in range(len(it.starts))]
        table = table.append_column(pa.field("cues", pa.string()), pa.array(cues, pa.string()))
    return table


def _fsync_rename(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def write_shard(directory: Path, manifest: ShardManifest, items: Sequence[ShardItem]) -> Path:
    """Write `NAME.parquet` then `NAME.json`, each atomically; returns the Parquet path."""
    directory.mkdir(parents=True, exist_ok=True)
    table = _table(items, manifest.spaces)
    manifest.rows = table.num_rows
    data, meta = directory / f"{manifest.name}.parquet", directory / f"{manifest.name}.json"
    tmp = directory / f"{manifest.name}.parquet{_TMP}"
    pq.write_table(table, tmp, compression="zstd")
    _fsync_rename(tmp, data)
    tmp = directory / f"{manifest.name}.json{_TMP}"
    tmp.write_text(json.dumps(manifest.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    _fsync_rename(tmp, meta)
    return data


def finished_shards(directory: Path) -> dict[str, ShardManifest]:
    """name -> manifest of every finished shard (manifest present) in `directory`, sorted by name."""
    if not directory.is_dir():
        return {}
    out = {}
    for path in sorted(directory.glob("*.json")):
        if (directory / f"{path.stem}.parquet").is_file():
            out[path.stem] = ShardManifest.read(path)
    return out


def clear_unfinished(directory: Path, names: Sequence[str]) -> None:
    """Remove what a killed writer left of these shards (temporaries, a Parquet without manifest)."""
    for name in names:
        if (directory / f"{name}.json").exists():
            continue
        for leftover in (f"{name}.parquet", f"{name}.parquet{_TMP}", f"{name}.json{_TMP}"):
            (directory / leftover).unlink(missing_ok=True)


def _check_columns(path: Path, table: pa.Table, spaces: Mapping[str, int]) -> None:
    """Every column as app.bulk writes it (type, vector width, no nulls where a value is needed,
    `source` within the uploads' limit), checked on the Arrow columns before a value is converted."""
    expected = _schema(spaces)
    missing = [f.name for f in expected if f.name not in table.column_names and f.name not in _OPTIONAL]
    if missing:
        raise ShardError(f"{path} lacks columns {missing}; accepted: shards written by app.bulk")
    for f in expected:
        if f.name not in table.column_names:
            continue
        got = table.schema.field(f.name).type
        if got == f.type:
            continue
        if f.name in spaces:
            width = got.list_size if pa.types.is_fixed_size_list(got) else "variable"
            raise ShardError(f"{path}: column {f.name!r} holds vectors of width {width} ({got}); accepted: "
                             f"{spaces[f.name]} float32 values per row (the model's {f.name} dimension)")
        raise ShardError(f"{path}: column {f.name!r} is {got}; accepted: {f.type}")
    for name in _NOT_NULL:
        nulls = table.column(name).null_count
        if nulls:
            raise ShardError(f"{path}: column {name!r} has {nulls} null values; accepted: a value in every row")
    lengths = pc.utf8_length(table.column("source"))
    too_long = pc.greater(lengths, MAX_SOURCE_CHARS)
    if pc.any(too_long).as_py():
        row = pc.index(too_long, True).as_py()
        raise ShardError(f"{path} row {row}: source is {lengths[row].as_py()} characters; the limit is "
                         f"{MAX_SOURCE_CHARS} (as for uploads)")
    if "path" in table.column_names:
        lengths = pc.utf8_length(table.column("path"))
        too_long = pc.fill_null(pc.greater(lengths, MAX_PATH_CHARS), False)
        if pc.any(too_long).as_py():
            row = pc.index(too_long, True).as_py()
            raise ShardError(f"{path} row {row}: path is {lengths[row].as_py()} characters; the limit is "
                             f"{MAX_PATH_CHARS} (as for server-path ingests)")


def _cue_column(path: Path, table: pa.Table) -> list[str | None] | None:
    """The optional transcript column (JSON cues on each item's first row), or None when the shard has none."""
    if "cues" not in table.column_names:
        return None
    if table.schema.field("cues").type != pa.string():
        raise ShardError(f"{path}: column 'cues' is {table.schema.field('cues').type}; accepted: string (JSON cues)")
    return table.column("cues").to_pylist()


def _cues_at(path: Path, column: list[str | None] | None, row: int) -> list[tuple[float, float, str]]:
    if column is None or column[row] is None:
        return []
    try:
        return [(float(s), float(e), str(t)) for s, e, t in json.loads(column[row])]
    except (ValueError, TypeError) as e:
        raise ShardError(f"{path} row {row}: cues must be a JSON list of [start, end, text] ({e})") from None


def read_items(path: Path, spaces: Mapping[str, int]) -> Iterator[ShardItem]:
    """The items of one shard's Parquet file, in file order (rows of an item are contiguous).

    Every column is checked (`_check_columns`, then each item's metadata with the uploads' rules)
    and a problem is a ShardError naming the shard and row; call `list()` on it before writing
    anything, so a bad shard adds nothing."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise ShardError(f"cannot read shard {path} ({e})") from None
    _check_columns(path, table, spaces)
    try:
        keys = table.column("item_key").to_pylist()
        cols = {c: table.column(c).to_pylist() for c in ("source", "kind", "duration", "metadata")}
        paths = table.column("path").to_pylist() if "path" in table.column_names else [None] * len(keys)  # format 1 before it
    except (UnicodeDecodeError, pa.ArrowException) as e:
        raise ShardError(f"{path}: a text column is not valid UTF-8 ({e})") from None
    cue_col = _cue_column(path, table)
    starts = table.column("start").to_numpy()
    ends = table.column("end").to_numpy()
    dense: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # space -> (vectors [rows, d], null mask [rows])
    for s, d in spaces.items():
        col = table.column(s).combine_chunks()
        values = col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        dense[s] = (values[col.offset * d:(col.offset + len(col)) * d].reshape(len(col), d),
                    col.is_null().to_numpy(zero_copy_only=False))
    i = 0
    while i < len(keys):
        j = i
        while j < len(keys) and keys[j] == keys[i]:
            j += 1
        vectors = {}
        for s, (x, null) in dense.items():
            nulls = int(null[i:j].sum())
            if nulls == 0:
                vectors[s] = x[i:j]
            elif nulls != j - i:
                raise ShardError(f"{path}: item {keys[i]} has a vector in space {s!r} for only some segments")
        try:
            metadata = metadata_from_json(cols["metadata"][i])
        except InvalidArgumentError as e:
            raise ShardError(f"{path} row {i}: {e}") from None
        yield ShardItem(key=keys[i], source=cols["source"][i], kind=cols["kind"][i], duration=cols["duration"][i],
                        metadata=metadata, starts=starts[i:j].tolist(), ends=ends[i:j].tolist(), vectors=vectors,
                        path=paths[i], cues=_cues_at(path, cue_col, i))
        i = j
