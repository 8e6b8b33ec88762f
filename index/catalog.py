"""`Catalog`: items, segments and their vectors per space — SQLite is the truth, FAISS a rebuildable cache.

Durability contract:
* `add_item` / `delete_item` are one SQLite transaction each (WAL, synchronous=FULL): once they
  return, the change survives SIGKILL or power loss.
* FAISS files are written on `flush()`, on `close()`, and automatically once the unflushed vector
  changes reach max(`flush_every`, a quarter of the index) — so ingestion rewrites each file only
  O(log n) times. Each file carries the space's write epoch and a CRC; on open, a missing or corrupted
  file is rebuilt from the stored vectors, and a stale one (older epoch) is caught up by reconciling
  id sets (segment ids are never reused, vectors never change), each with a log line.
* One writer per directory (an exclusive `flock` on `LOCK`); inside a process, one writer lock and
  per-thread read connections, searches run concurrently under a per-space read/write lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import _search, store
from ._consistency import CatalogState, check_catalog, open_space, stats
from ._validate import (SPACE_NAME, check_item, check_item_id, check_kinds, check_type, check_vectors,
                        metadata_json)
from .jobs import JobStore
from .errors import CatalogError, CatalogLockedError, InvalidArgumentError, ItemNotFoundError, ReadOnlyError
from .types import CheckReport, Item, ItemHit, Segment
from .vectors import IndexOptions, VectorIndex, normalize

log = logging.getLogger(__name__)

DEFAULT_SPACES: dict[str, int] = {"va": 512, "vt": 256}


class Catalog:
    """An embedded catalogue in one directory. Use as a context manager (close flushes FAISS files)."""

    def __init__(self, path: str | os.PathLike[str], *, spaces: Mapping[str, int] | None = None,
                 index_type: str | None = None, index_options: Mapping[str, Any] | None = None,
                 readonly: bool = False, create: bool = True, flush_every: int | None = 20_000) -> None:
        """Open (or create) the catalogue at `path` (a directory). On reopen, `spaces` and `index_type`
        default to the stored ones and must match when given (change the type with `rebuild`);
        `index_options` given on reopen replace the stored ones (a structural change rebuilds on open)."""
        self.path = Path(path)
        self.readonly = readonly
        self.flush_every = flush_every
        self._write_lock = threading.RLock()
        self._lockfile = None
        self._conns: store.Connections | None = None
        db = self.path / store.DB_NAME
        if not db.exists() and (readonly or not create):
            raise CatalogError(f"no catalogue at {self.path} (missing {store.DB_NAME}); "
                               "accepted: a directory created by index.Catalog")
        if self.path.exists() and not self.path.is_dir():
            raise CatalogError(f"{self.path} is not a directory; a catalogue path must be a directory")
        try:
            if not readonly:
                self.path.mkdir(parents=True, exist_ok=True)
                self._lock()
                for tmp in self.path.glob(".*.tmp"):  # left by a writer killed mid-flush
                    tmp.unlink(missing_ok=True)
            self._conns = store.Connections(db, readonly=readonly)
            meta = self._init_meta(db, spaces, index_type, index_options)
            self.spaces: dict[str, int] = dict(meta["spaces"])
            self.index_type: str = meta["index_type"]
            self.options = IndexOptions.from_mapping(meta["index_options"])
            self._vectors: dict[str, VectorIndex] = {}
            self._saved: dict[str, int] = {}  # epoch of the file on disk per space (-1: none valid)
            self.file_notes: dict[str, str] = {}
            self._pending = 0
            self._outgrown: set[str] = set()
            self._unindexed: set[str] = set()  # spaces add_items(index=False) left behind SQLite
            for space in self.spaces:
                self._vectors[space], self._saved[space], self.file_notes[space] = open_space(self._state(), space)
            self.jobs = JobStore(self._writer, self._reader, self._write_lock, readonly=readonly)
        except BaseException:
            self._release()
            raise

    # --- lifecycle ---------------------------------------------------------------------------
    def _lock(self) -> None:
        self._lockfile = open(self.path / "LOCK", "a+")
        try:
            fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lockfile.close()
            self._lockfile = None
            raise CatalogLockedError(f"{self.path} is open for writing in another process; "
                                     "open it with readonly=True or close the other writer") from None

    def _init_meta(self, db: Path, spaces: Mapping[str, int] | None, index_type: str | None,
                   index_options: Mapping[str, Any] | None) -> dict[str, Any]:
        conn = self._conns.writer or self._conns.reader()
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
        if not has_meta:
            if self.readonly:
                raise CatalogError(f"no catalogue at {self.path}: {db.name} has no meta table")
            spaces = dict(spaces or DEFAULT_SPACES)
            for name, dim in spaces.items():
                if not isinstance(name, str) or not SPACE_NAME.match(name):
                    raise InvalidArgumentError(f"bad space name {name!r}; accepted: lowercase letters, digits, '_'")
                if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 65536:
                    raise InvalidArgumentError(f"space {name!r}: dimension must be an integer in 1..65536, "
                                               f"got {dim!r}")
            if not spaces:
                raise InvalidArgumentError("spaces must name at least one space, e.g. {'va': 512, 'vt': 256}")
            options = IndexOptions.from_mapping(index_options)
            store.init_schema(conn, {"spaces": spaces, "metric": "cosine", "index_type": check_type(
                index_type or "flat"), "index_options": options.to_dict(),
                **{f"epoch.{s}": 0 for s in spaces}, **{f"count.{s}": 0 for s in spaces}})
        meta = store.read_meta(conn)
        if meta.get("schema") != store.SCHEMA_VERSION:
            raise CatalogError(f"{db} has schema {meta.get('schema')}; accepted: {store.SCHEMA_VERSION}")
        if spaces is not None and dict(spaces) != meta["spaces"]:
            raise InvalidArgumentError(f"{self.path} holds spaces {meta['spaces']}, opened with {dict(spaces)}; "
                                       "pass spaces=None to use the stored ones")
        if index_type is not None and check_type(index_type) != meta["index_type"]:
            raise InvalidArgumentError(f"{self.path} uses index type {meta['index_type']!r}; "
                                       f"call rebuild(index_type={index_type!r}) to change it")
        if index_options is not None:
            new = IndexOptions.from_mapping(index_options)
            if new != IndexOptions.from_mapping(meta["index_options"]):
                # search-time knobs just apply; a structural change (hnsw_m, nlist, pq_m) makes
                # open_space find the file's structure wrong and rebuild it
                log.info("%s: index options changed to %s", self.path, new.to_dict())
                meta["index_options"] = new.to_dict()
                if not self.readonly:
                    with store.transaction(conn):
                        store.set_meta(conn, {"index_options": meta["index_options"]})
        return meta

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        """Flush FAISS files (writer) and release connections and the lock. Idempotent."""
        if self._conns is None:
            return
        try:
            if not self.readonly:
                self.flush()
        finally:
            self._release()

    def _release(self) -> None:
        if self._conns is not None:
            self._conns.close()
            self._conns = None
        if self._lockfile is not None:
            self._lockfile.close()  # releases the flock
            self._lockfile = None

    def _reader(self):  # noqa: ANN202 - sqlite3.Connection
        if self._conns is None:
            raise CatalogError(f"catalogue {self.path} is closed")
        return self._conns.reader()

    def _writer(self):  # noqa: ANN202
        if self.readonly:
            raise ReadOnlyError(f"catalogue {self.path} was opened readonly; open it without readonly=True to write")
        if self._conns is None:
            raise CatalogError(f"catalogue {self.path} is closed")
        return self._conns.writer

    def _space(self, space: str) -> VectorIndex:
        if space not in self._vectors:
            raise InvalidArgumentError(f"unknown space {space!r}; accepted: {', '.join(self.spaces)}")
        return self._vectors[space]

    def epochs(self) -> dict[str, int]:
        """Current write epoch per space (as committed in SQLite)."""
        meta = store.read_meta(self._reader())
        return {s: int(meta[f"epoch.{s}"]) for s in self.spaces}

    def index_path(self, space: str) -> Path:
        """Where a space's FAISS file lives."""
        return self.path / f"{space}.faiss"

    # --- writes -------------------------------------------------------------------------------
    def add_item(self, *, kind: str, source: str, sha256: str, segments: Sequence[Sequence[float]] | np.ndarray,
                 vectors: Mapping[str, Any], duration: float | None = None,
                 metadata: Mapping[str, Any] | None = None, replace: bool = False,
                 item_id: str | None = None) -> Item:
        """Add an item with its segments ([n, 2] start/end seconds) and vectors ({space: [n, dim]}),
        all or nothing. Same sha256 already present → the existing item (re-indexed if `replace`).

        `item_id` lets a caller that announced an id before the work finished (the service's ingest
        jobs) keep it; by default a new uuid4 hex is chosen."""
        check_item_id(item_id)
        kind, sha, segs, duration, meta_json = check_item(kind, source, sha256, segments, duration, metadata)
        vecs = check_vectors(vectors, {s: v.dim for s, v in self._vectors.items()}, len(segs))
        with self._write_lock:
            conn = self._writer()
            with store.transaction(conn):
                existing = store.find_sha256(conn, sha)
                if existing is not None and not replace:
                    log.info("item %s already holds sha256 %s; returning it", existing.id, sha[:12])
                    return existing
                removed = store.delete_item(conn, existing.id) if existing is not None else {}
                if existing is None and item_id is not None and store.get_item(conn, item_id) is not None:
                    raise InvalidArgumentError(f"item_id {item_id!r} is already used by another item")
                item_id = existing.id if existing is not None else item_id or uuid.uuid4().hex
                ids = store.insert_item(conn, item_id=item_id, kind=kind, source=source, sha256=sha,
                                        duration=duration,
                                        metadata_json=meta_json, segments=segs, vectors=vecs)
            self._apply(removed, {s: (ids, x) for s, x in vecs.items()})
            return store.get_item(conn, item_id)

    def add_items(self, items: Iterable[Mapping[str, Any]], *, model: Mapping[str, Any] | None = None,
                  index: bool = True) -> tuple[int, int]:
        """Add many items (dicts of `add_item`'s keywords) in ONE transaction; returns the new (items, segments).

        For bulk imports: a present sha256 is skipped, never replaced. `model` ({"name", "config_hash"})
        is recorded by the first import and must match afterwards, since one catalogue can only compare
        one model's vectors. `index=False` leaves FAISS for a single `rebuild()` at the end; until
        then the spaces' files are not rewritten, so a crash is caught up from SQLite on reopen."""
        dims = {s: v.dim for s, v in self._vectors.items()}
        rows = []
        for it in items:
            kind, sha, segs, duration, meta_json = check_item(it["kind"], it["source"], it["sha256"], it["segments"],
                                                              it.get("duration"), it.get("metadata"))
            rows.append((kind, it["source"], sha, segs, duration, meta_json, check_vectors(it["vectors"], dims,
                                                                                          len(segs))))
        added: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        new_items = new_segments = 0
        with self._write_lock:
            conn = self._writer()
            with store.transaction(conn):
                if model is not None:
                    self._claim_model(conn, model)
                for kind, source, sha, segs, duration, meta_json, vecs in rows:
                    if store.find_sha256(conn, sha) is not None:
                        continue
                    ids = store.insert_item(conn, item_id=uuid.uuid4().hex, kind=kind, source=source, sha256=sha,
                                            duration=duration, metadata_json=meta_json, segments=segs, vectors=vecs)
                    new_items, new_segments = new_items + 1, new_segments + len(ids)
                    for s, x in vecs.items():
                        added.setdefault(s, []).append((ids, x))
            if index:
                self._apply({}, {s: (np.concatenate([i for i, _ in p]), np.concatenate([x for _, x in p]))
                                 for s, p in added.items()})
            else:
                self._unindexed.update(added)
            return new_items, new_segments

    def claim_model(self, model: Mapping[str, Any]) -> None:
        """Record which model's vectors this catalogue holds ({"name", "config_hash"}), or raise
        CatalogError when it already holds another's (the service calls this on start)."""
        with self._write_lock:
            conn = self._writer()
            with store.transaction(conn):
                self._claim_model(conn, model)

    def _claim_model(self, conn, model: Mapping[str, Any]) -> None:  # noqa: ANN001 - sqlite3.Connection
        held = store.read_meta(conn).get("model")
        if held is None:
            store.set_meta(conn, {"model": {"name": model.get("name"), "config_hash": model["config_hash"]}})
        elif held.get("config_hash") != model["config_hash"]:
            raise CatalogError(f"{self.path} holds vectors of model {held.get('name')!r} (config hash "
                               f"{str(held.get('config_hash'))[:12]}), not of {model.get('name')!r} (config hash "
                               f"{model['config_hash'][:12]}); two models' vectors cannot be compared: use another "
                               "catalogue")

    def delete_item(self, item_id: str) -> Item:
        """Delete an item with its segments and vectors; returns what was deleted."""
        with self._write_lock:
            conn = self._writer()
            with store.transaction(conn):
                item = store.get_item(conn, item_id)
                if item is None:
                    raise ItemNotFoundError(f"no item with id {item_id!r}")
                removed = store.delete_item(conn, item_id)
            self._apply(removed, {})
            return item

    def update_metadata(self, item_id: str, metadata: Mapping[str, Any], *, merge: bool = True) -> Item:
        """Merge (keys set to None are removed) or replace an item's metadata; vectors are untouched."""
        with self._write_lock:
            conn = self._writer()
            with store.transaction(conn):
                item = store.get_item(conn, item_id)
                if item is None:
                    raise ItemNotFoundError(f"no item with id {item_id!r}")
                metadata_json(metadata)
                new = dict(item.metadata) if merge else {}
                for k, v in metadata.items():
                    if merge and v is None:
                        new.pop(k, None)
                    else:
                        new[k] = v
                store.update_metadata(conn, item_id, metadata_json(new))
            return store.get_item(conn, item_id)

    def _apply(self, removed: Mapping[str, np.ndarray], added: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Mirror a committed write into FAISS (caller holds the writer lock)."""
        changed = 0
        for space in set(removed) | set(added):
            vi = self._vectors[space]
            with vi.lock.write():
                if space in removed:
                    vi.remove(removed[space])
                    changed += len(removed[space])
                if space in added:
                    vi.add(*added[space])
                    changed += len(added[space][0])
                if vi.ready_to_train():
                    vi.train_from_memory()
            if vi.outgrown() and space not in self._outgrown:
                self._outgrown.add(space)
                log.warning("space %r: IVF-PQ trained for far fewer vectors than its %d; run rebuild() "
                            "(vatt index rebuild PATH) to retrain it", space, vi.ntotal)
            if vi.structure == "hnsw" and len(vi.tombstones) > max(1000, vi.ntotal // 4):
                log.info("space %r: %d of %d HNSW entries deleted; rebuilding", space, len(vi.tombstones), vi.ntotal)
                self._rebuild_space(space, self.index_type, self.options)
        self._pending += changed
        live = sum(v.live for v in self._vectors.values())
        if self.flush_every is not None and self._pending >= max(self.flush_every, live // 4):
            self.flush()

    def flush(self) -> None:
        """Write every FAISS file whose epoch is behind SQLite (atomically). Called by close()."""
        with self._write_lock:
            self._writer()
            epochs = self.epochs()
            written = {}
            for space, vi in self._vectors.items():
                if self._saved[space] != epochs[space] and space not in self._unindexed:
                    try:
                        with vi.lock.read():
                            vi.save(self.index_path(space), epochs[space])
                    except OSError as e:  # a full disk: the file is a cache, SQLite holds the truth
                        log.warning("space %r: FAISS file not written (%s); it is caught up on the next "
                                    "flush or open", space, e)
                        continue
                    written[f"factory.{space}"] = vi.factory
                    self._saved[space] = epochs[space]
            if written:  # autofaiss-style index_infos: what each file holds, for humans and stats
                try:
                    with store.transaction(self._writer()) as conn:
                        store.set_meta(conn, written)
                except sqlite3.OperationalError as e:
                    log.warning("index infos not recorded (%s)", e)
            self._pending = 0

    def rebuild(self, *, index_type: str | None = None, index_options: Mapping[str, Any] | None = None) -> None:
        """Rebuild every space's FAISS index from the stored vectors, optionally changing its type/options."""
        index_type = check_type(index_type or self.index_type)
        options = IndexOptions.from_mapping(index_options) if index_options is not None else self.options
        with self._write_lock:
            conn = self._writer()
            for space in self.spaces:
                self._rebuild_space(space, index_type, options)
            with store.transaction(conn):
                store.set_meta(conn, {"index_type": index_type, "index_options": options.to_dict()})
            self.index_type, self.options = index_type, options
            for space in self.spaces:
                self._saved[space] = -1
            self._unindexed.clear()
            self.flush()

    def _rebuild_space(self, space: str, index_type: str, options: IndexOptions) -> None:
        new = self._build_space(space, index_type, options)
        with self._vectors[space].lock.write():
            self._vectors[space] = new
        self._saved[space] = -1

    def _build_space(self, space: str, index_type: str, options: IndexOptions) -> VectorIndex:
        """A fresh index for one space from the vectors in SQLite."""
        conn, dim = self._reader(), self.spaces[space]
        n = int(conn.execute("SELECT COUNT(*) FROM vectors WHERE space = ?", (space,)).fetchone()[0])
        return VectorIndex.build(space, dim, index_type, options, n,
                                 chunks=lambda: store.iter_vectors(conn, space, dim),
                                 sample=lambda m: store.sample_vectors(conn, space, dim, m))

    # --- reads --------------------------------------------------------------------------------
    def get_item(self, item_id: str) -> Item:
        """The item with this id (ItemNotFoundError otherwise)."""
        item = store.get_item(self._reader(), item_id)
        if item is None:
            raise ItemNotFoundError(f"no item with id {item_id!r}")
        return item

    def get_by_sha256(self, sha256: str) -> Item | None:
        """The item holding this content, if any (check before spending time on embedding)."""
        return store.find_sha256(self._reader(), sha256.lower())

    def list_items(self, *, kinds: str | Iterable[str] | None = None, where: Mapping[str, Any] | None = None,
                   limit: int = 100, offset: int = 0) -> list[Item]:
        """Items in insertion order, filtered like search()."""
        if limit < 0 or offset < 0:
            raise InvalidArgumentError("limit and offset must be ≥ 0")
        return store.list_items(self._reader(), kinds=check_kinds(kinds), where=where, limit=limit, offset=offset)

    def count(self, *, kinds: str | Iterable[str] | None = None, where: Mapping[str, Any] | None = None) -> int:
        """Number of items passing the filters."""
        return store.count_items(self._reader(), kinds=check_kinds(kinds), where=where)

    def segments(self, item_id: str) -> list[Segment]:
        """An item's segments in time order of insertion."""
        self.get_item(item_id)
        return store.item_segments(self._reader(), item_id)

    def item_vectors(self, item_id: str, space: str) -> tuple[list[Segment], np.ndarray]:
        """An item's segments holding a vector in `space`, and those unit vectors [n, dim] (query by item)."""
        self.get_item(item_id)
        return store.item_vectors(self._reader(), item_id, space, self._space(space).dim)

    def search(self, space: str, vectors: Any, k: int = 10, *, kinds: str | Iterable[str] | None = None,
               where: Mapping[str, Any] | None = None, moments: int = 3,
               exact: bool = False) -> list[ItemHit] | list[list[ItemHit]]:
        """Top-k items by their best segment's cosine score, each with its best `moments` moments.
        A 1-D query gives one list; [n, dim] gives n lists. `exact=True` brute-forces (ground truth)."""
        vi = self._space(space)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidArgumentError(f"k must be an integer ≥ 1, got {k!r}")
        if not isinstance(moments, int) or isinstance(moments, bool) or moments < 0:
            raise InvalidArgumentError(f"moments must be an integer ≥ 0, got {moments!r}")
        q = normalize(vectors, vi.dim, "query")
        kinds = check_kinds(kinds)
        conn = self._reader()
        qs = _search._Query(vi=vi, conn=conn, k=k, moments=moments, kinds=kinds, where=where or None,
                            store_exact=lambda qq, kk, al: _search.store_exact(conn, space, vi.dim, qq, kk, al))
        store.item_filter_sql(kinds, where)  # a malformed filter fails here, before any search work
        results = _search.run(qs, q, exact, allowed=lambda: store.allowed_ids(conn, space, kinds, where))
        return results[0] if np.ndim(vectors) == 1 else results

    def check(self) -> CheckReport:
        """Verify SQLite against itself and against the FAISS indexes; see CheckReport."""
        with self._write_lock:  # no write may land between the SQL snapshot and the FAISS comparison
            return check_catalog(self._state())

    def stats(self) -> dict[str, Any]:
        """Counts, index structures, epochs and file sizes (JSON-ready)."""
        return stats(self._state())

    def _state(self) -> CatalogState:
        """What the consistency code reads, handed over explicitly."""
        return CatalogState(path=self.path, conn=self._reader(), spaces=self.spaces, index_type=self.index_type,
                            options=self.options, readonly=self.readonly, vectors=self._vectors, saved=self._saved,
                            file_notes=self.file_notes, index_path=self.index_path,
                            build_space=lambda space: self._build_space(space, self.index_type, self.options))
