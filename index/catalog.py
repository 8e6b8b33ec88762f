"""`Catalog`: items, segments and their vectors per space — a `Store` is the truth, a `SpaceIndex` per space
a rebuildable cache.

Stores: SQLite in the catalogue directory (the default) or PostgreSQL (`store="postgresql://…"`).
Vector indexes: FAISS files (the default; with PostgreSQL they live in the directory given, a
per-process cache) or Milvus (`vectors="milvus://host:port"`).

Durability contract:
* `add_item` / `delete_item` are one store transaction each: once they return, the change survives
  SIGKILL or power loss (SQLite: WAL, synchronous=FULL).
* FAISS files are written on `flush()`, on `close()`, and automatically once the unflushed vector
  changes reach max(`flush_every`, a quarter of the index) — so ingestion rewrites each file only
  O(log n) times. Each file carries the space's write epoch and a CRC; on open, a missing or corrupted
  file is rebuilt from the stored vectors, and any index missing data the store has (or holding
  deleted ids) is caught up by reconciling id sets (segment ids are never reused, vectors never change).
* SQLite: one writer per directory (an exclusive `flock` on `LOCK`). PostgreSQL: any number of
  processes write (transactions); before a search, a per-process vector cache compares the space's
  epoch in the store with the one it reflects and catches up when another process wrote.
* Inside a process: one writer lock; searches run concurrently (each index locks itself).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import _search
from ._consistency import check_catalog, stats
from ._util import normalize
from ._validate import (SPACE_NAME, check_item, check_item_id, check_kinds, check_type, check_vectors,
                        metadata_json)
from .cues import DEFAULT_LANGUAGE, CueHit, check_cues, check_language, marked, query_words
from .errors import (CatalogError, CatalogLockedError, InvalidArgumentError, ItemNotFoundError, ReadOnlyError,
                     StoreUnavailableError)
from .merge_patch import merge_patch
from .space_index import SpaceIndex, VectorBackend, VectorSource
from .space_sync import SpaceSync
from .sqlite_store import DB_NAME, SqliteStore
from .store import SCHEMA_VERSION, Session, Store
from .types import CheckReport, IndexOptions, Item, ItemHit, Segment

log = logging.getLogger(__name__)

DEFAULT_SPACES: dict[str, int] = {"va": 512, "vt": 256}


def open_store(spec: str | Store, path: Path, *, readonly: bool) -> Store:
    """`store=`: "sqlite" (catalog.sqlite in `path`), a `postgresql://` DSN, or a Store instance."""
    if isinstance(spec, Store):
        return spec
    if spec == "sqlite":
        return SqliteStore(path, readonly=readonly)
    if spec.startswith(("postgresql://", "postgres://")):
        from .pg_store import PostgresStore

        return PostgresStore(spec, readonly=readonly)
    raise InvalidArgumentError(f"unknown store {spec!r}; accepted: 'sqlite' or a postgresql:// DSN")


def open_vectors(spec: str | VectorBackend, path: Path) -> VectorBackend:
    """`vectors=`: "faiss" (files in `path`), "milvus://host:port", or a VectorBackend instance."""
    if not isinstance(spec, str):
        return spec
    if spec == "faiss":  # each engine's module loads only when chosen: a Milvus deployment never imports faiss
        from .faiss_index import FaissBackend

        return FaissBackend(path)
    if spec.startswith("milvus://"):
        from .milvus import MilvusBackend

        return MilvusBackend(spec)
    raise InvalidArgumentError(f"unknown vector index {spec!r}; accepted: 'faiss' or 'milvus://host:port'")


class Catalog:
    """A catalogue: a store and one vector index per space. Use as a context manager (close flushes)."""

    def __init__(self, path: str | os.PathLike[str], *, spaces: Mapping[str, int] | None = None,
                 index_type: str | None = None, index_options: Mapping[str, Any] | None = None,
                 readonly: bool = False, create: bool = True, flush_every: int | None = 20_000,
                 store: str | Store = "sqlite", vectors: str | VectorBackend = "faiss",
                 text_language: str | None = None) -> None:
        """Open (or create) the catalogue at `path` (a directory: the SQLite file and FAISS files, or with
        another store only the FAISS cache). On reopen, `spaces` and `index_type` default to the stored
        ones and must match when given (change the type with `rebuild`); `index_options` given on reopen
        replace the stored ones (a structural change rebuilds on open). `text_language` is the full-text
        configuration of transcripts (default 'english'), fixed when the catalogue is created."""
        self.path = Path(path)
        self.readonly = readonly
        self.flush_every = flush_every
        self._write_lock = threading.RLock()
        self._lockfile = None
        self.store: Store | None = None
        self.backend: VectorBackend | None = None
        embedded = store == "sqlite"
        if embedded and not (self.path / DB_NAME).exists() and (readonly or not create):
            raise CatalogError(f"no catalogue at {self.path} (missing {DB_NAME}); "
                               "accepted: a directory created by index.Catalog")
        if self.path.exists() and not self.path.is_dir():
            raise CatalogError(f"{self.path} is not a directory; a catalogue path must be a directory")
        try:
            if not readonly:
                self.path.mkdir(parents=True, exist_ok=True)
                self._lock()
                for tmp in self.path.glob(".*.tmp"):  # left by a writer killed mid-flush
                    tmp.unlink(missing_ok=True)
            self.store = open_store(store, self.path, readonly=readonly)
            meta = self._init_meta(spaces, index_type, index_options, create=create)
            self.spaces: dict[str, int] = dict(meta["spaces"])
            self.index_type: str = meta["index_type"]
            self.options = IndexOptions.from_mapping(meta["index_options"])
            self.backend = open_vectors(vectors, self.path)
            self._vectors: dict[str, SpaceIndex] = {}
            self._spaces = SpaceSync(self.store, self._vectors, readonly=readonly, flush_every=flush_every)
            for space in self.spaces:
                self._vectors[space] = self.backend.open_space(self._source(space), index_type=self.index_type,
                                                               options=self.options, readonly=readonly)
                self._spaces.start(space)
            self.text_language = self._init_cues(meta, text_language)
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

    def _init_meta(self, spaces: Mapping[str, int] | None, index_type: str | None,
                   index_options: Mapping[str, Any] | None, *, create: bool) -> dict[str, Any]:
        has_meta = self.store.has_table("meta") and (self.store.readonly or self.store.reader().has_schema())
        if not has_meta:
            if self.readonly or not create:
                raise CatalogError(f"no catalogue at {self.store.location}: the store has no meta table")
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
            with self.store.transaction() as tx:
                tx.init_meta({"spaces": spaces, "metric": "cosine", "index_type": check_type(index_type or "flat"),
                              "index_options": options.to_dict(), **{f"epoch.{s}": 0 for s in spaces},
                              **{f"count.{s}": 0 for s in spaces}})
        meta = self.store.reader().read_meta()
        where = self.store.location
        if meta.get("schema") != SCHEMA_VERSION:
            raise CatalogError(f"{where} has schema {meta.get('schema')}; accepted: {SCHEMA_VERSION}")
        if spaces is not None and dict(spaces) != meta["spaces"]:
            raise InvalidArgumentError(f"{where} holds spaces {meta['spaces']}, opened with {dict(spaces)}; "
                                       "pass spaces=None to use the stored ones")
        if index_type is not None and check_type(index_type) != meta["index_type"]:
            raise InvalidArgumentError(f"{where} uses index type {meta['index_type']!r}; "
                                       f"call rebuild(index_type={index_type!r}) to change it")
        if index_options is not None:
            new = IndexOptions.from_mapping(index_options)
            if new != IndexOptions.from_mapping(meta["index_options"]):
                # search-time knobs just apply; a structural change (hnsw_m, nlist, pq_m) makes
                # the backend find the index's structure wrong and rebuild it
                log.info("%s: index options changed to %s", where, new.to_dict())
                meta["index_options"] = new.to_dict()
                if not self.readonly:
                    with self.store.transaction() as tx:
                        tx.set_meta({"index_options": meta["index_options"]})
        return meta

    def _init_cues(self, meta: Mapping[str, Any], language: str | None) -> str:
        """The transcript tables in the catalogue's text language (recorded by the first writer that makes them)."""
        stored = meta.get("text_language")
        if language is not None and stored is not None and check_language(language) != stored:
            raise InvalidArgumentError(f"{self.store.location} indexes transcripts as {stored!r}, opened with "
                                       f"text_language={language!r}; a store's full-text language is fixed")
        chosen = stored or check_language(language or DEFAULT_LANGUAGE)
        if not self.readonly and not self.store.has_table("cues"):
            with self.store.transaction() as tx:
                for statement in self.store.cue_ddl(chosen):
                    tx.execute(statement)
                tx.set_meta({"text_language": chosen})
        return chosen

    def _source(self, space: str) -> VectorSource:
        return VectorSource(self.store, space, self.spaces[space])

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        """Flush the vector indexes (writer) and release connections and the lock. Idempotent."""
        if self.store is None:
            return
        try:
            if not self.readonly:
                self.flush()
        finally:
            self._release()

    def _release(self) -> None:
        for vi in getattr(self, "_vectors", {}).values():
            vi.close()
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._lockfile is not None:
            self._lockfile.close()  # releases the flock
            self._lockfile = None

    def _reader(self) -> Session:
        if self.store is None:
            raise CatalogError(f"catalogue {self.path} is closed")
        return self.store.reader()

    def _store(self) -> Store:
        if self.store is None:
            raise CatalogError(f"catalogue {self.path} is closed")
        return self.store

    def _space(self, space: str) -> SpaceIndex:
        if space not in self._vectors:
            raise InvalidArgumentError(f"unknown space {space!r}; accepted: {', '.join(self.spaces)}")
        return self._vectors[space]

    def unavailable(self) -> dict[str, str]:
        """What this catalogue needs and cannot reach now — "store", "vectors" — with why (readiness); empty when
        all answer. One round trip each (the vector engine once, not per space)."""
        down: dict[str, str] = {}
        try:
            self._reader().epochs(self.spaces)
        except StoreUnavailableError as e:
            down["store"] = str(e)
        for vi in self._vectors.values():
            if vi.shared:
                try:
                    vi.ping()
                except StoreUnavailableError as e:
                    down["vectors"] = str(e)
                break  # one engine holds every space
        return down

    def epochs(self) -> dict[str, int]:
        """Current write epoch per space (as committed in the store)."""
        return self._reader().epochs(self.spaces)

    # --- writes -------------------------------------------------------------------------------
    def add_item(self, *, kind: str, source: str, sha256: str, segments: Sequence[Sequence[float]] | np.ndarray,
                 vectors: Mapping[str, Any], duration: float | None = None,
                 metadata: Mapping[str, Any] | None = None, replace: bool = False,
                 item_id: str | None = None, within: Callable[[Session, Item], None] | None = None,
                 cues: Sequence[Sequence[Any]] | None = None) -> Item:
        """Add an item with its segments ([n, 2] start/end seconds) and vectors ({space: [n, dim]}),
        all or nothing. Same sha256 already present → the existing item (re-indexed if `replace`).

        `item_id` lets a caller that announced an id before the work finished (the service's ingest
        jobs) keep it; by default a new uuid4 hex is chosen. `cues` ((start, end, text)) are its transcript.
        `within(tx, item)` runs inside the same transaction with the item about to be returned (new or found
        by its sha256); if it raises, nothing is written — so "which item did this job get" and the job's
        own transition are one decision.

        Once the store committed, the item is added: a vector engine that cannot take its vectors then
        leaves a mark in the store, and whichever replica searches that space next catches it up."""
        check_item_id(item_id)
        kind, sha, segs, duration, meta_json = check_item(kind, source, sha256, segments, duration, metadata)
        vecs = check_vectors(vectors, {s: v.dim for s, v in self._vectors.items()}, len(segs))
        lines = check_cues(cues or ())
        for attempt in range(3):  # another process may commit the same content between our read and insert
            try:
                return self._add_item(kind, source, sha, segs, duration, meta_json, vecs, replace, item_id,
                                      within, lines)
            except self._store().dialect.conflict:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def _add_item(self, kind: str, source: str, sha: str, segs: np.ndarray, duration: float | None, meta_json: str,
                  vecs: Mapping[str, np.ndarray], replace: bool, item_id: str | None,
                  within: Callable[[Session, Item], None] | None, cues: Sequence[tuple[float, float, str]] = ()) -> Item:
        with self._write_lock:
            with self._store().transaction() as tx:
                existing = tx.find_sha256(sha)
                if existing is not None and not replace:
                    log.info("item %s already holds sha256 %s; returning it", existing.id, sha[:12])
                    if within is not None:
                        within(tx, existing)
                    return existing
                removed = tx.delete_item(existing.id) if existing is not None else {}
                if existing is None and item_id is not None and tx.get_item(item_id) is not None:
                    raise InvalidArgumentError(f"item_id {item_id!r} is already used by another item")
                new_id = existing.id if existing is not None else item_id or uuid.uuid4().hex
                ids = tx.insert_item(item_id=new_id, kind=kind, source=source, sha256=sha, duration=duration,
                                     metadata_json=meta_json, segments=segs, vectors=vecs)
                if cues:
                    tx.set_cues(new_id, cues)
                item = tx.get_item(new_id)
                if within is not None:
                    within(tx, item)
                after = self._spaces.after(tx)
            self._spaces.apply(removed, {s: (ids, x, [new_id] * len(ids), [kind] * len(ids))
                                         for s, x in vecs.items()}, after)
        return item

    def add_items(self, items: Iterable[Mapping[str, Any]], *, model: Mapping[str, Any] | None = None,
                  index: bool = True) -> tuple[int, int]:
        """Add many items (dicts of `add_item`'s keywords) in ONE transaction; returns the new (items, segments).

        For bulk imports: a present sha256 is skipped, never replaced. `model` ({"name", "config_hash"})
        is recorded by the first import and must match afterwards, since one catalogue can only compare
        one model's vectors. `index=False` leaves the vector indexes for a single `rebuild()` at the end;
        until then their files are not rewritten, so a crash is caught up from the store on reopen."""
        dims = {s: v.dim for s, v in self._vectors.items()}
        rows = []
        for it in items:
            kind, sha, segs, duration, meta_json = check_item(it["kind"], it["source"], it["sha256"], it["segments"],
                                                              it.get("duration"), it.get("metadata"))
            rows.append((kind, it["source"], sha, segs, duration, meta_json, check_vectors(it["vectors"], dims,
                                                                                          len(segs)),
                         check_cues(it.get("cues") or ())))
        added: dict[str, list[tuple[np.ndarray, np.ndarray, list[str], list[str]]]] = {}
        new_items = new_segments = 0
        with self._write_lock:
            with self._store().transaction() as tx:
                if model is not None:
                    self._claim_model(tx, model)
                for kind, source, sha, segs, duration, meta_json, vecs, lines in rows:
                    if tx.find_sha256(sha) is not None:
                        continue
                    item_id = uuid.uuid4().hex
                    ids = tx.insert_item(item_id=item_id, kind=kind, source=source, sha256=sha,
                                         duration=duration, metadata_json=meta_json, segments=segs, vectors=vecs)
                    if lines:
                        tx.set_cues(item_id, lines)
                    new_items, new_segments = new_items + 1, new_segments + len(ids)
                    for s, x in vecs.items():
                        added.setdefault(s, []).append((ids, x, [item_id] * len(ids), [kind] * len(ids)))
                after = self._spaces.after(tx)
            if index:
                self._spaces.apply({}, {s: (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                                     [i for p in parts for i in p[2]], [k for p in parts for k in p[3]])
                                 for s, parts in added.items()}, after)
            else:
                self._spaces.unindexed.update(added)
        return new_items, new_segments

    def claim_model(self, model: Mapping[str, Any]) -> None:
        """Record which model's vectors this catalogue holds ({"name", "config_hash"}), or raise
        CatalogError when it already holds another's (the service calls this on start)."""
        with self._write_lock, self._store().transaction() as tx:
            self._claim_model(tx, model)

    def model(self) -> dict[str, Any] | None:
        """The model whose vectors this catalogue holds ({"name", "config_hash"}), None before any claimed it."""
        held = self._reader().read_meta().get("model")
        return dict(held) if held else None

    def _claim_model(self, tx: Session, model: Mapping[str, Any]) -> None:
        held = tx.read_meta().get("model")
        if held is None:
            tx.set_meta({"model": {"name": model.get("name"), "config_hash": model["config_hash"]}})
        elif held.get("config_hash") != model["config_hash"]:
            raise CatalogError(f"{self.store.location} holds vectors of model {held.get('name')!r} (config hash "
                               f"{str(held.get('config_hash'))[:12]}), not of {model.get('name')!r} (config hash "
                               f"{model['config_hash'][:12]}); two models' vectors cannot be compared: use another "
                               "catalogue")

    def delete_item(self, item_id: str) -> Item:
        """Delete an item with its segments and vectors; returns what was deleted."""
        with self._write_lock:
            with self._store().transaction() as tx:
                item = tx.get_item(item_id)
                if item is None:
                    raise ItemNotFoundError(f"no item with id {item_id!r}")
                removed = tx.delete_item(item_id)
                after = self._spaces.after(tx)
            self._spaces.apply(removed, {}, after)
        return item

    def update_metadata(self, item_id: str, metadata: Mapping[str, Any], *, merge: bool = True) -> Item:
        """Merge as a JSON merge patch (RFC 7396: None removes a key, objects merge recursively) or replace an
        item's metadata, read and written in one transaction; vectors are untouched."""
        with self._write_lock, self._store().transaction() as tx:
            item = tx.get_item(item_id, for_update=True)  # a replica patching it meanwhile waits for this one
            if item is None:
                raise ItemNotFoundError(f"no item with id {item_id!r}")
            metadata_json(metadata)
            new = merge_patch(item.metadata, dict(metadata)) if merge else dict(metadata)
            tx.update_metadata(item_id, metadata_json(new))
            return tx.get_item(item_id)

    def _sync(self, space: str) -> None:
        """Catch the space's index up with the store before answering (see SpaceSync.sync)."""
        if self._spaces.needs_sync(space):
            with self._write_lock:
                self._spaces.sync(space)

    def flush(self) -> None:
        """Persist every vector index that is behind the store (FAISS: files written atomically). Called by
        close()."""
        with self._write_lock:
            if self.readonly:
                raise ReadOnlyError(f"catalogue {self.path} was opened readonly; open it without readonly=True "
                                    "to write")
            self._spaces.flush()

    def rebuild(self, *, index_type: str | None = None, index_options: Mapping[str, Any] | None = None) -> None:
        """Rebuild every space's vector index from the stored vectors, optionally changing its type/options."""
        index_type = check_type(index_type or self.index_type)
        options = IndexOptions.from_mapping(index_options) if index_options is not None else self.options
        with self._write_lock:
            store = self._store()
            with store.transaction() as tx:
                tx.set_meta({"index_type": index_type, "index_options": options.to_dict()})
            for space in self.spaces:
                old = self._vectors[space]
                self._vectors[space] = self.backend.build_space(self._source(space), index_type=index_type,
                                                                options=options)
                self._spaces.restart(space, why="after rebuild")
                old.close()
            self.index_type, self.options = index_type, options
            self.flush()

    def backup(self, dest: str | os.PathLike[str], *, then: Callable[[list[str]], None] | None = None) -> dict[str, int]:
        """Copy the catalogue as it stands at one epoch into the new directory `dest` while it keeps serving: the
        store through its online backup, each space's FAISS index written from memory with that epoch. Writes
        wait meanwhile (the copy takes the writer lock); searches go on. `then(item_ids)` runs at the same point,
        before writes resume (a snapshot links the items' media there). Returns the epochs copied.

        Embedded catalogues only (SQLite + FAISS): a shared store and Milvus have their engines' own backups."""
        copy_indexes = getattr(self.backend, "copy_to", None)  # engines whose indexes are files of ours
        if copy_indexes is None:
            raise CatalogError("only catalogues with FAISS vector indexes are copied by a snapshot; back up Milvus "
                               "with its own tools (milvus-backup)")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=False)
        with self._write_lock:
            for space in self.spaces:
                self._sync(space)
            store = self._store()
            epochs = store.reader().epochs(self.spaces)
            store.backup(dest / DB_NAME)
            copy_indexes(self._vectors, dest, epochs)
            if then is not None:
                then(self._item_ids())
        return epochs

    def drop_vectors(self) -> None:
        """Remove each space's index from a shared vector engine (Milvus), for a collection being deleted: the
        store's rows go with their schema or directory, the engine's collections with this."""
        with self._write_lock:
            for vi in self._vectors.values():
                drop = getattr(vi, "drop", None)
                if vi.shared and drop is not None:
                    drop()

    def _item_ids(self) -> list[str]:
        ids: list[str] = []
        while True:
            page = self.list_items(limit=1000, offset=len(ids))
            ids.extend(i.id for i in page)
            if len(page) < 1000:
                return ids

    # --- reads --------------------------------------------------------------------------------
    def get_item(self, item_id: str) -> Item:
        """The item with this id (ItemNotFoundError otherwise)."""
        item = self._reader().get_item(item_id)
        if item is None:
            raise ItemNotFoundError(f"no item with id {item_id!r}")
        return item

    def get_by_sha256(self, sha256: str) -> Item | None:
        """The item holding this content, if any (check before spending time on embedding)."""
        return self._reader().find_sha256(sha256.lower())

    def list_items(self, *, kinds: str | Iterable[str] | None = None, where: Mapping[str, Any] | None = None,
                   limit: int = 100, offset: int = 0, after: tuple[float, str] | None = None) -> list[Item]:
        """Items in insertion order (created, id), filtered like search(); `after` starts strictly after
        that (created, id) key (cursor paging, stable under concurrent inserts)."""
        if limit < 0 or offset < 0:
            raise InvalidArgumentError("limit and offset must be ≥ 0")
        return self._reader().list_items(kinds=check_kinds(kinds), where=where, limit=limit, offset=offset,
                                         after=after)

    def count(self, *, kinds: str | Iterable[str] | None = None, where: Mapping[str, Any] | None = None) -> int:
        """Number of items passing the filters."""
        return self._reader().count_items(kinds=check_kinds(kinds), where=where)

    def segments(self, item_id: str) -> list[Segment]:
        """An item's segments in time order of insertion."""
        self.get_item(item_id)
        return self._reader().item_segments(item_id)

    def item_vectors(self, item_id: str, space: str) -> tuple[list[Segment], np.ndarray]:
        """An item's segments holding a vector in `space`, and those unit vectors [n, dim] (query by item)."""
        self.get_item(item_id)
        return self._reader().item_vectors(item_id, space, self._space(space).dim)

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
        db = self._reader()
        db.item_filter_sql(kinds, where)  # a malformed filter fails here, before any search work
        self._sync(space)
        results = _search.search(vi, db, space, q, k=k, moments=moments, kinds=kinds, where=where, exact=exact,
                                 exact_below=self.options.exact_below)
        return results[0] if np.ndim(vectors) == 1 else results

    def check(self) -> CheckReport:
        """Verify the store against itself and against the vector indexes; see CheckReport."""
        with self._write_lock:  # no write of ours may land between the store snapshot and the index comparison
            for space in self.spaces:
                self._sync(space)
            report = check_catalog(self._store(), self.spaces, self._vectors)
        if not self._store().has_table("cues"):
            return report
        db = self._reader()
        return CheckReport(problems=report.problems + tuple(db.cue_problems()), notes=report.notes,
                           counts={**report.counts, "cues": db.cue_count()})

    # --- transcripts ---------------------------------------------------------------------------
    def set_transcript(self, item_id: str, cues: Sequence[Sequence[Any]]) -> int:
        """Replace an item's transcript with `cues` ((start, end, text)); returns how many were stored."""
        lines = check_cues(cues)
        with self._write_lock, self._store().transaction() as tx:
            if tx.get_item(item_id) is None:
                raise ItemNotFoundError(f"no item with id {item_id!r}")
            tx.set_cues(item_id, lines)
        return len(lines)

    def transcript(self, item_id: str) -> list[tuple[float, float, str]]:
        """An item's cues (start, end, text) in time order; [] when it has none."""
        self.get_item(item_id)
        return self._reader().item_cues(item_id) if self._store().has_table("cues") else []

    def keyword_search(self, query: str, k: int = 100, *, kinds: str | Iterable[str] | None = None,
                       where: Mapping[str, Any] | None = None) -> list[CueHit]:
        """The `k` best cues holding every word of `query`, ranked by the engine's full-text index (SQLite FTS5
        bm25, PostgreSQL ts_rank_cd, mapped into [0, 1) as r / (1 + r)), filtered like search(); matched words
        marked in each cue's text."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidArgumentError(f"k must be an integer ≥ 1, got {k!r}")
        words = query_words(query)
        if not words or not self._store().has_table("cues"):
            return []
        rows = self._reader().keyword_cues(words, self.text_language, limit=k, kinds=check_kinds(kinds),
                                           where=where)
        # r / (1 + r): the engine's score in [0, 1), same order, so score_threshold reads as in vector search
        return [CueHit(cue_id=c, item_id=i, start=s, end=e, text=marked(t), score=max(r, 0.0) / (1.0 + max(r, 0.0)))
                for c, i, s, e, t, r in rows]

    def segments_of(self, item_ids: Iterable[str]) -> dict[str, list[Segment]]:
        """Each item's segments in time order (where a cue's span lands among the moments)."""
        return self._reader().segments_of(item_ids)

    def get_items(self, item_ids: Iterable[str]) -> dict[str, Item]:
        """Items by id; ids that no longer exist are absent."""
        return self._reader().get_items(item_ids)

    def stats(self) -> dict[str, Any]:
        """Counts, index structures, epochs and sizes (JSON-ready)."""
        out = stats(self._store(), self.spaces, self._vectors, self.epochs())
        return {"path": str(self.path), "index_type": self.index_type, "index_options": self.options.to_dict(),
                "metric": "cosine", **out, "readonly": self.readonly}
