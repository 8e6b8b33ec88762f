"""FAISS engine of the catalogue as a `SpaceIndex`: one index per space, a rebuildable cache of the
store's vectors, one file per space in the catalogue directory, a per-process cache. The only module
that imports faiss (the Milvus path and the seam never load it).

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

`FaissSpaceIndex` wraps `VectorIndex` (structures, tombstones, training, file format) with what
the seam asks for: its own readers/writer lock, training once enough vectors arrived, the HNSW
rebuild once tombstones pass a quarter of the index, IVF-PQ candidates re-ranked with the store's
raw vectors, and files written with the store's epoch (skipped when nothing changed).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import faiss
import numpy as np

from ._util import RWLock, brute_force
from .errors import InvalidArgumentError
from .space_index import VectorSource
from .types import IndexOptions, auto_nlist

log = logging.getLogger("index.catalog")

MAGIC = b"VATTFAISS1"
_TRAILER = struct.Struct("<I")  # header length, followed by MAGIC


class IndexFileError(Exception):
    """A FAISS file is missing, truncated, corrupted or for another space (internal: triggers a rebuild)."""


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

    def set_options(self, options: IndexOptions) -> None:
        """New search parameters (ef_search, nprobe) on the loaded structure, without a rebuild."""
        self.options = options
        self._configure()

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
                and auto_nlist(self.ntotal) >= 4 * inner.nlist)

    def ready_to_train(self) -> bool:
        return self.index_type == "ivfpq" and self.structure == "flat" and self.ntotal >= self.options.train_min

    def train_from_memory(self) -> None:
        """ivfpq: turn the exact warm-up index into a trained IVF-PQ holding the same vectors."""
        flat = self._inner()
        n = self.ntotal
        xb = faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim).copy()  # flat dies below
        ids = self.ids()
        rng = np.random.default_rng(0)
        m = train_size(n, self.options.nlist or auto_nlist(n))
        self.index = self._train(xb[np.sort(rng.choice(n, m, replace=False))], n)
        self.add(ids, xb)
        self._configure()

    def _train(self, sample: np.ndarray, n: int) -> faiss.Index:
        nlist = min(self.options.nlist or auto_nlist(n), max(1, len(sample)))
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
            vi.index = vi._train(sample(train_size(n, options.nlist or auto_nlist(n))), n)
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



TOMBSTONE_REBUILD_FRACTION = 4  # rebuild an HNSW index once more than 1/4 of its entries are deleted


def _mismatch(vi: VectorIndex, index_type: str, opts: IndexOptions) -> str | None:
    """Why a loaded index does not have the structure the catalogue asks for (None if it does)."""
    have = vi.structure
    if index_type == "ivfpq" and have == "flat":
        return None  # warm-up phase; trained after load if big enough
    if index_type != have:
        return f"holds {vi.factory} but the catalogue's index type is {index_type!r}"
    if have == "hnsw" and vi.factory != f"IDMap2,HNSW{opts.hnsw_m},Flat":
        return f"holds {vi.factory}, options ask for HNSW{opts.hnsw_m}"
    if have == "ivfpq":
        inner = vi.index
        wrong_nlist = opts.nlist and inner.nlist != opts.nlist and vi.ntotal >= opts.nlist  # clamped when trained
        if wrong_nlist or (opts.pq_m and inner.pq.M != opts.pq_m):
            return f"holds {vi.factory}, options ask for nlist={opts.nlist} pq_m={opts.pq_m}"
    return None


class FaissSpaceIndex:
    """One space's FAISS index and its file `<dir>/<space>.faiss`."""

    shared = False

    def __init__(self, vi: VectorIndex, source: VectorSource, path: Path, *, saved: int, note: str) -> None:
        self.vi, self.source, self.path = vi, source, path
        self.saved = saved  # epoch of the file on disk (-1: none valid)
        self.note = note  # what happened on open (stats: on_open)
        self.dirty = saved < 0
        self.lock = RWLock()
        self._outgrown = False

    @property
    def space(self) -> str:
        return self.vi.space

    @property
    def dim(self) -> int:
        return self.vi.dim

    @property
    def live(self) -> int:
        return self.vi.live

    @property
    def approximate(self) -> bool:
        return self.vi.structure != "flat"

    @property
    def exact_in_memory(self) -> bool:
        return self.vi.structure != "ivfpq"

    def ids(self) -> np.ndarray:
        with self.lock.read():
            have = self.vi.ids()
            return np.setdiff1d(have, self.vi.tombstones) if len(self.vi.tombstones) else have

    # --- writes -----------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, x: np.ndarray, *, items: Sequence[str] | None = None,
            kinds: Sequence[str] | None = None) -> None:
        if not len(ids):
            return
        with self.lock.write():
            self.vi.add(ids, x)
            self.dirty = True
            if self.vi.ready_to_train():
                self.vi.train_from_memory()
        if self.vi.outgrown() and not self._outgrown:
            self._outgrown = True
            log.warning("space %r: IVF-PQ trained for far fewer vectors than its %d; run rebuild() "
                        "(vatt index rebuild PATH) to retrain it", self.space, self.vi.ntotal)

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        with self.lock.write():
            self.vi.remove(ids)
            self.dirty = True
            vi = self.vi
            if vi.structure == "hnsw" and len(vi.tombstones) > max(1000, vi.ntotal // TOMBSTONE_REBUILD_FRACTION):
                log.info("space %r: %d of %d HNSW entries deleted; rebuilding", self.space, len(vi.tombstones),
                         vi.ntotal)
                self.vi = build(self.source, vi.index_type, vi.options)

    # --- search -----------------------------------------------------------------------------------
    def search(self, q: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               kinds: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k; IVF-PQ candidates (refine·k) are re-ranked with the raw vectors, so scores are true cosines."""
        with self.lock.read():
            refine = self.vi.structure == "ivfpq" and self.vi.options.refine > 1
            d, i = self.vi.search(q, k * self.vi.options.refine if refine else k, allowed=allowed)
        return self._rerank(q, i, k) if refine else (d, i)

    def _rerank(self, q: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        found = self.source.vectors(np.unique(cand[cand >= 0]))
        d = np.full((len(q), k), -np.inf, np.float32)
        out = np.full((len(q), k), -1, np.int64)
        for r in range(len(q)):
            ids = np.array([i for i in cand[r].tolist() if i in found], dtype=np.int64)
            if len(ids):
                d[r], out[r] = (a[0] for a in brute_force(q[r:r + 1], np.stack([found[i] for i in ids]), ids, k))
        return d, out

    def exact(self, q: np.ndarray, k: int, *, allowed: np.ndarray | None = None) -> tuple[np.ndarray,
                                                                                         np.ndarray] | None:
        with self.lock.read():
            return self.vi.exact(q, k, allowed)

    # --- files and facts --------------------------------------------------------------------------
    def flush(self, epoch: int) -> None:
        """Write the file (atomically) when it is behind; a full disk only logs: the store holds the truth."""
        if not (self.dirty or self.saved != epoch) or not (self.path.exists() or self.vi.ntotal):
            return
        try:
            with self.lock.read():
                self.vi.save(self.path, epoch)
        except OSError as e:
            log.warning("space %r: FAISS file not written (%s); it is caught up on the next flush or open",
                        self.space, e)
            return
        self.saved, self.dirty = epoch, False

    def save_copy(self, path: Path, epoch: int) -> None:
        """Write the index as it stands now to another file (a snapshot's copy), marked with `epoch`."""
        with self.lock.read():
            self.vi.save(path, epoch)

    def describe(self, epoch: int) -> dict[str, Any]:
        with self.lock.read():
            vi = self.vi
            return {"dim": vi.dim, "vectors": vi.live, "tombstones": len(vi.tombstones),
                    "structure": vi.structure, "factory": vi.factory, "epoch": epoch,
                    "file_epoch": self.saved if self.saved >= 0 else None,
                    "file_bytes": self.path.stat().st_size if self.path.exists() else 0,
                    "file": "up to date" if self.saved == epoch and not self.dirty else "unflushed writes",
                    "on_open": self.note}

    def check(self, live: np.ndarray, epoch: int) -> tuple[list[str], list[str]]:
        problems, notes = [], []
        with self.lock.read():
            have, tomb, ntotal = self.vi.ids(), self.vi.tombstones.copy(), self.vi.ntotal
        if len(have) != ntotal:
            problems.append(f"{self.space}: FAISS holds {ntotal} vectors but {len(have)} ids")
        dead_live = np.intersect1d(tomb, live)
        if len(dead_live):
            problems.append(f"{self.space}: {len(dead_live)} live segments are marked deleted in HNSW")
        try:
            h = read_header(self.path)
            if h["epoch"] == epoch:
                notes.append(f"{self.space}: file up to date (epoch {h['epoch']}, {h['factory']})")
            else:
                notes.append(f"{self.space}: file at epoch {h['epoch']}, catalogue at {epoch} "
                             "(writes not flushed yet; caught up from the store on open)")
        except IndexFileError as e:
            if len(live) or self.path.exists():
                notes.append(f"{self.space}: file {e} (rebuilt from the store on the next open)")
        return problems, notes

    def ping(self) -> None:
        """In this process's memory: always reachable."""

    def close(self) -> None:
        pass


def build(source: VectorSource, index_type: str, options: IndexOptions) -> VectorIndex:
    """A fresh FAISS index of a space from the store's vectors."""
    return VectorIndex.build(source.space, source.dim, index_type, options, source.count(),
                             chunks=source.chunks, sample=source.sample)


class FaissBackend:
    """FAISS files in a directory (the catalogue's, or a replica's local cache with a shared store)."""

    name = "faiss"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def index_path(self, space: str) -> Path:
        return self.directory / f"{space}.faiss"

    def copy_to(self, indexes: dict[str, Any], directory: Path, epochs: dict[str, int]) -> None:
        """Write each space's index as it stands now into `directory` (a snapshot's copy), marked with its epoch."""
        target = FaissBackend(directory)
        for space, vi in indexes.items():
            vi.save_copy(target.index_path(space), epochs[space])

    def open_space(self, source: VectorSource, *, index_type: str, options: IndexOptions,
                   readonly: bool) -> FaissSpaceIndex:
        """Load the file if it is sound and of the right structure, else build from the store."""
        path = self.index_path(source.space)
        vi, reason, saved = None, None, -1
        try:
            vi, header = VectorIndex.load(path, source.space, source.dim, index_type, options)
            reason = _mismatch(vi, index_type, options)
            saved = int(header["epoch"])
            if reason:
                vi = None
        except IndexFileError as e:
            reason = str(e)
        if vi is None:
            n = source.count()
            if not path.exists() and not n:
                note = "no file yet (empty space)"
            else:
                log.warning("%s: %s; rebuilding from %d stored vectors", path, reason, n)
                note = f"rebuilt on open: {reason}"
            return FaissSpaceIndex(build(source, index_type, options), source, path, saved=-1, note=note)
        epoch = source.store.reader().epochs([source.space])[source.space]
        note = "up to date" if saved == epoch else f"caught up on open (file epoch {saved}, catalogue {epoch})"
        out = FaissSpaceIndex(vi, source, path, saved=saved, note=note)
        if vi.ready_to_train():
            vi.train_from_memory()
            out.dirty = True
        return out

    def build_space(self, source: VectorSource, *, index_type: str, options: IndexOptions) -> FaissSpaceIndex:
        return FaissSpaceIndex(build(source, index_type, options), source, self.index_path(source.space),
                               saved=-1, note="rebuilt")

    def close(self) -> None:
        pass


@contextmanager
def all_threads() -> Iterator[None]:
    """FAISS builds HNSW with OpenMP threads: every core for the one build, then as before."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
