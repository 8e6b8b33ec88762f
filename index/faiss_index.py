"""FAISS as a `SpaceIndex`: one file per space in the catalogue directory, a per-process cache.

Wraps index/vectors.py's `VectorIndex` (structures, tombstones, training, file format) with what
the seam asks for: its own readers/writer lock, training once enough vectors arrived, the HNSW
rebuild once tombstones pass a quarter of the index, IVF-PQ candidates re-ranked with the store's
raw vectors, and files written with the store's epoch (skipped when nothing changed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ._util import RWLock, brute_force
from .space_index import VectorSource
from .vectors import IndexFileError, IndexOptions, VectorIndex, read_header

log = logging.getLogger("index.catalog")

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
