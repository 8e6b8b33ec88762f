"""FAISS engine of the catalogue: one index per space, a rebuildable cache of the store's vectors
(index/faiss_index.py wraps it as a `SpaceIndex`).

Structures (all return cosine scores on L2-normalised vectors):

* flat  — `IDMap2,Flat` (inner product, exact). Deletion: `remove_ids`.
* hnsw  — `IDMap2,HNSW{M},Flat` (inner product). HNSW cannot remove, so deleted ids become
  *tombstones*: excluded at search time by an `IDSelectorNot`, and the catalogue rebuilds the index
  once they exceed a quarter of it. Tombstones are never stored: on open they are derived as
  "ids in the file but not in SQLite", so they cannot drift.
* ivfpq — `IVF{nlist},PQ{m}` with native ids (`IndexIDMap2` over IVF breaks on `remove_ids`: it
  compacts its id map while IVF keeps its internal ids). L2 metric on unit vectors, reported as
  cosine = 1 − d²/2, because PQ's own code is the nearest reconstruction in L2, not in inner product.
  It stays `IDMap2,Flat` (exact) until the space holds `train_min` vectors, then trains once
  (`rebuild()` retrains; a warning says when the index has outgrown its lists). Deletion:
  `remove_ids`. The catalogue re-ranks its PQ candidates exactly with the raw vectors in SQLite
  (`refine`), so scores are true cosines and a stored vector finds itself.

Files: payload written by `faiss.write_index` through a callback that computes a CRC32, followed by
a JSON trailer (space, dim, factory, epoch, ntotal, crc) — temp file, fsync, rename, fsync dir.
A file whose trailer, length or CRC is wrong is refused before FAISS ever parses it.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import uuid
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import faiss
import numpy as np

from ._util import RWLock, brute_force, normalize  # noqa: F401 - re-exported
from .errors import InvalidArgumentError

log = logging.getLogger(__name__)

MAGIC = b"VATTFAISS1"
_TRAILER = struct.Struct("<I")  # header length, followed by MAGIC


@dataclass(frozen=True)
class IndexOptions:
    """Tuning of the approximate indexes (stored in the catalogue's meta, kept across reopen)."""

    hnsw_m: int = 32  # HNSW graph degree
    ef_construction: int = 80  # HNSW build beam
    ef_search: int = 96  # HNSW search beam (at least 2·k for k candidates)
    nlist: int | None = None  # IVF lists; None → a power of two near √n, at most n/39
    nprobe: int | None = None  # IVF lists visited; None → max(16, nlist/8)
    pq_m: int | None = None  # PQ sub-quantizers (bytes per vector); None → largest divisor of dim ≤ dim/8
    train_min: int = 20_000  # ivfpq stays exact until a space holds this many vectors
    exact_below: int = 10_000  # a filter allowing at most this many segments is searched exactly (hnsw, ivfpq)
    refine: int = 4  # ivfpq: fetch refine·k candidates by PQ codes, re-rank them exactly (raw vectors in SQLite)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> IndexOptions:
        """Validate a plain dict (unknown keys and non-positive numbers are refused)."""
        values = dict(values or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise InvalidArgumentError(f"unknown index option(s) {unknown}; accepted: {', '.join(names)}")
        for k, v in values.items():
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise InvalidArgumentError(f"index option {k!r} must be a positive integer, got {v!r}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class IndexFileError(Exception):
    """A FAISS file is missing, truncated, corrupted or for another space (internal: triggers a rebuild)."""


def _auto_nlist(n: int) -> int:
    # ~√n lists (1024 at 1M): fewer than the textbook 4–16·√n, because k-means on a 2-core box is the
    # bottleneck at that size; nprobe makes up the recall
    nlist = 1 << int(round(np.log2(np.sqrt(max(n, 1)))))
    return int(max(1, min(nlist, n // 39 or 1, 65536)))


def train_size(n: int, nlist: int) -> int:
    """How many vectors to train on: 64 per list, at least the 39·256 that 8-bit PQ needs."""
    return int(min(n, max(64 * nlist, 10_000)))


def _auto_pq_m(dim: int) -> int:
    # 8 dims per sub-quantizer: FAISS trains 4-dim sub-quantizers ~30x slower, for little recall
    return max(m for m in range(1, max(1, dim // 8) + 1) if dim % m == 0)


class VectorIndex:
    """One space's FAISS index with its deletion strategy, search parameters and file format."""

    def __init__(self, space: str, dim: int, index_type: str, options: IndexOptions,
                 index: faiss.Index | None = None) -> None:
        self.space, self.dim, self.index_type, self.options = space, dim, index_type, options
        self.lock = RWLock()
        self.tombstones = np.empty(0, dtype=np.int64)  # hnsw only, sorted
        self.index = index if index is not None else self._empty()
        self._configure()

    # --- structure ---------------------------------------------------------------------------
    def _empty(self) -> faiss.Index:
        if self.index_type == "hnsw":
            return faiss.index_factory(self.dim, f"IDMap2,HNSW{self.options.hnsw_m},Flat", faiss.METRIC_INNER_PRODUCT)
        return faiss.index_factory(self.dim, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)  # also ivfpq untrained

    def _configure(self) -> None:
        inner = self._inner()
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efConstruction = self.options.ef_construction
            inner.hnsw.efSearch = self.options.ef_search
        elif isinstance(inner, faiss.IndexIVF):
            inner.nprobe = self.nprobe

    def _inner(self) -> faiss.Index:
        return faiss.downcast_index(self.index.index) if isinstance(self.index, faiss.IndexIDMap2) else self.index

    @property
    def structure(self) -> str:
        """What is really in memory: 'flat', 'hnsw' or 'ivfpq' (ivfpq is 'flat' until trained)."""
        inner = self._inner()
        if isinstance(inner, faiss.IndexHNSW):
            return "hnsw"
        if isinstance(inner, faiss.IndexIVF):
            return "ivfpq"
        return "flat"

    @property
    def factory(self) -> str:
        inner = self._inner()
        if isinstance(inner, faiss.IndexHNSW):
            return f"IDMap2,HNSW{inner.hnsw.nb_neighbors(1)},Flat"
        if isinstance(inner, faiss.IndexIVFPQ):
            return f"IVF{inner.nlist},PQ{inner.pq.M}"
        return "IDMap2,Flat"

    @property
    def nprobe(self) -> int:
        inner = self._inner()
        nlist = inner.nlist if isinstance(inner, faiss.IndexIVF) else 1
        return min(nlist, self.options.nprobe or max(16, nlist // 8))

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def live(self) -> int:
        return self.ntotal - len(self.tombstones)

    def ids(self) -> np.ndarray:
        """Every id stored in the FAISS index (tombstoned ones included), unsorted."""
        if isinstance(self.index, faiss.IndexIDMap2):
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        inv = self.index.invlists
        parts = [faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).copy()
                 for i in range(self.index.nlist) if inv.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

    # --- mutation (callers hold lock.write) -----------------------------------------------------
    def add(self, ids: np.ndarray, x: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(x, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        if self.structure == "hnsw":
            self.tombstones = np.union1d(self.tombstones, ids)
        else:
            self.index.remove_ids(faiss.IDSelectorBatch(ids))

    def outgrown(self) -> bool:
        """ivfpq with automatic nlist, now holding ≥ 16× what it was trained for: lists are too long."""
        inner = self._inner()
        return (isinstance(inner, faiss.IndexIVF) and not self.options.nlist
                and _auto_nlist(self.ntotal) >= 4 * inner.nlist)

    def ready_to_train(self) -> bool:
        return self.index_type == "ivfpq" and self.structure == "flat" and self.ntotal >= self.options.train_min

    def train_from_memory(self) -> None:
        """ivfpq: turn the exact warm-up index into a trained IVF-PQ holding the same vectors."""
        flat = self._inner()
        n = self.ntotal
        xb = faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim).copy()  # flat dies below
        ids = self.ids()
        rng = np.random.default_rng(0)
        m = train_size(n, self.options.nlist or _auto_nlist(n))
        self.index = self._train(xb[np.sort(rng.choice(n, m, replace=False))], n)
        self.add(ids, xb)
        self._configure()

    def _train(self, sample: np.ndarray, n: int) -> faiss.Index:
        nlist = min(self.options.nlist or _auto_nlist(n), max(1, len(sample)))
        if self.options.nlist and nlist < self.options.nlist:
            log.warning("space %r: only %d vectors to train on; nlist %d lowered to %d", self.space, len(sample),
                        self.options.nlist, nlist)
        m = self.options.pq_m or _auto_pq_m(self.dim)
        if self.dim % m:
            raise InvalidArgumentError(f"pq_m={m} does not divide the {self.space!r} dimension {self.dim}")
        log.info("training IVF%d,PQ%d for space %r on %d of %d vectors", nlist, m, self.space, len(sample), n)
        ivf = faiss.index_factory(self.dim, f"IVF{nlist},PQ{m}", faiss.METRIC_L2)
        ivf.do_polysemous_training = False  # only serves Hamming pre-filtering, which we do not use
        ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
        return ivf

    @classmethod
    def build(cls, space: str, dim: int, index_type: str, options: IndexOptions, n: int,
              chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
              sample: Callable[[int], np.ndarray]) -> VectorIndex:
        """A fresh index from stored vectors: `chunks()` streams (ids, x); `sample(m)` draws m for training."""
        vi = cls(space, dim, index_type, options)
        if index_type == "ivfpq" and n >= options.train_min:
            vi.index = vi._train(sample(train_size(n, options.nlist or _auto_nlist(n))), n)
            vi._configure()
        for ids, x in chunks():
            vi.add(ids, x)
        return vi

    # --- search (callers hold lock.read) --------------------------------------------------------
    def _selector(self, allowed: np.ndarray | None, keep: list[Any]) -> Any:
        sel = None
        if allowed is not None:
            sel = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            keep.append(sel)
        if len(self.tombstones):
            dead = faiss.IDSelectorBatch(self.tombstones)
            alive = faiss.IDSelectorNot(dead)
            keep.extend([dead, alive])
            sel = alive if sel is None else faiss.IDSelectorAnd(sel, alive)
            keep.append(sel)
        return sel

    def search(self, q: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Approximate (or exact for flat) top-k: (cosine scores [n, k], ids [n, k], −1 = none)."""
        k = min(k, self.ntotal)
        if k <= 0:
            return np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64)
        keep: list[Any] = []
        sel = self._selector(allowed, keep)
        inner = self._inner()
        if isinstance(inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.options.ef_search, 2 * k)  # deep candidate lists need a wider beam
        elif isinstance(inner, faiss.IndexIVF):
            params = faiss.SearchParametersIVF()
            params.nprobe = nprobe or self.nprobe
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
        d, i = self.index.search(q, k, params=params)
        if self.structure == "ivfpq":
            d = 1.0 - d / 2.0
        return d, i

    def exact(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Brute force over the raw vectors held in memory (flat, hnsw); None for ivfpq (codes only)."""
        if self.structure == "flat":
            return self.search(q, k, allowed=allowed)
        if self.structure != "hnsw":
            return None
        if allowed is not None and len(allowed) <= max(4096, self.ntotal // 8):
            allowed = np.asarray(allowed, dtype=np.int64)
            if len(self.tombstones):
                allowed = np.setdiff1d(allowed, self.tombstones)
            try:
                return brute_force(q, self.index.reconstruct_batch(allowed), allowed, k)
            except RuntimeError:  # an id committed in SQLite but not yet added here: scan instead
                pass
        storage = faiss.downcast_index(self._inner().storage)
        keep: list[Any] = []
        sel = self._selector(allowed, keep)
        params = faiss.SearchParameters()
        if sel is not None:
            params.sel = faiss.IDSelectorTranslated(self.index.id_map, sel)
        d, pos = storage.search(q, min(k, self.ntotal), params=params)
        id_map = faiss.vector_to_array(self.index.id_map)
        return d, np.where(pos >= 0, id_map[np.maximum(pos, 0)], -1)

    # --- files --------------------------------------------------------------------------------
    def save(self, path: Path, epoch: int) -> None:
        """Write atomically: temp file, fsync, rename, fsync directory."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as f:
                state = {"crc": 0, "n": 0}

                def write(b: bytes) -> int:
                    state["crc"] = zlib.crc32(b, state["crc"])
                    state["n"] += len(b)
                    f.write(b)
                    return len(b)

                faiss.write_index(self.index, faiss.PyCallbackIOWriter(write))
                header = json.dumps({"format": 1, "space": self.space, "dim": self.dim, "metric": "cosine",
                                     "factory": self.factory, "epoch": epoch, "ntotal": self.ntotal,
                                     "payload_bytes": state["n"], "crc32": state["crc"]}).encode()
                f.write(header + _TRAILER.pack(len(header)) + MAGIC)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @classmethod
    def load(cls, path: Path, space: str, dim: int, index_type: str,
             options: IndexOptions) -> tuple[VectorIndex, dict[str, Any]]:
        """Read and verify a file; raises IndexFileError saying why it cannot be used."""
        header = read_header(path)
        if header.get("space") != space or header.get("dim") != dim:
            raise IndexFileError(f"file is for space {header.get('space')!r} dim {header.get('dim')}, "
                                 f"expected {space!r} dim {dim}")
        crc, left = 0, int(header["payload_bytes"])
        with open(path, "rb") as f:
            while left:
                b = f.read(min(left, 1 << 24))
                if not b:
                    raise IndexFileError("truncated payload")
                crc, left = zlib.crc32(b, crc), left - len(b)
            if crc != header["crc32"]:
                raise IndexFileError("checksum mismatch (corrupted)")
            f.seek(0)
            remaining = [int(header["payload_bytes"])]

            def read(n: int) -> bytes:
                b = f.read(min(n, remaining[0]))
                remaining[0] -= len(b)
                return b

            try:
                index = faiss.read_index(faiss.PyCallbackIOReader(read))
            except RuntimeError as e:
                raise IndexFileError(f"FAISS cannot parse it: {str(e).splitlines()[0]}") from e
        return cls(space, dim, index_type, options, index), header


def read_header(path: Path) -> dict[str, Any]:
    """The JSON trailer of an index file (cheap: reads only the end)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            tail = len(MAGIC) + _TRAILER.size
            if size < tail:
                raise IndexFileError("file too short")
            f.seek(size - tail)
            raw = f.read(tail)
            if raw[_TRAILER.size:] != MAGIC:
                raise IndexFileError("no trailer (not a catalogue index file, or truncated)")
            (hlen,) = _TRAILER.unpack(raw[:_TRAILER.size])
            if hlen > size - tail:
                raise IndexFileError("trailer length out of range")
            f.seek(size - tail - hlen)
            header = json.loads(f.read(hlen))
        if int(header["payload_bytes"]) != size - tail - hlen:
            raise IndexFileError("payload length does not match the trailer")
        return header
    except FileNotFoundError:
        raise IndexFileError("missing") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise IndexFileError(f"unreadable trailer ({e})") from e
