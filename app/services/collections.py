"""The server's collections: each a catalogue with its media, job table, ingest and query services, all sharing
the one loaded model (encoder, batcher) and the one pool of ingest workers.

`default` is the data directory's own catalogue (today's layout, served by the routes without a prefix); the
others live under DATA/collections/NAME/ (index.collections has the layout and the name rule). Every named
collection found there (or, with a PostgreSQL store, in the store: another replica may have made it) is opened
on start; `create` and `delete` change the set while serving, and a collection another replica created is
opened here when first asked for. With SQLite each is one self-contained directory, so a crash, `vatt index
check`, a snapshot and a delete each concern one directory; with PostgreSQL each is a schema of the database
(index.collections).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from index import INDEX_TYPES, Catalog, CatalogError, InvalidArgumentError, JobStore
from index.collections import (DEFAULT_COLLECTION, CollectionLayout, collection_names, collection_store,
                               collection_vectors, drop_store, prepare_store, stored_collections)
from index.snapshot import SUFFIX, SnapshotInfo, check_snapshot_name, discard_partial, list_snapshots, write_snapshot

from ..errors import ServiceError
from ..metrics import Metrics
from ..settings import Settings
from .encoder import Encoder
from .ingest import IngestService
from .ingest_pool import IngestPool
from .paths import ServerPaths
from .query import QueryService
from .storage import MediaStore

__all__ = ["Collection", "Collections"]

log = logging.getLogger(__name__)

FOLLOW_S = 2.0  # a shared store's collections deleted by another replica are closed here within this


@dataclass
class Collection:
    """One collection's catalogue and the services bound to it."""

    layout: CollectionLayout
    catalog: Catalog
    store: MediaStore
    ingest: IngestService | None  # None on a read-only server (its writer runs the jobs)
    query: QueryService
    max_snapshots: int = 20
    _snapshotting: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def url(self) -> str:
        """The prefix of its routes ('' for the default collection, whose routes have none)."""
        return "" if self.name == DEFAULT_COLLECTION else f"/collections/{self.name}"

    def describe(self) -> dict[str, Any]:
        """Counts per kind and space, index type and options, model (blocking: reads the store)."""
        stats = self.catalog.stats()
        jobs = self.ingest.jobs if self.ingest is not None else JobStore(self.catalog.store)
        return {"name": self.name, "url": self.url, "items": stats["items"], "kinds": stats["kinds"],
                "segments": stats["segments"],
                "spaces": {s: {"dim": sp["dim"], "vectors": sp["vectors"]} for s, sp in stats["spaces"].items()},
                "index_type": stats["index_type"], "index_options": stats["index_options"],
                "model": self.catalog.model(), "queued_jobs": int(jobs.counts().get("queued", 0))}

    # --- snapshots ------------------------------------------------------------------------------
    def snapshot(self) -> SnapshotInfo:
        """Write a snapshot while serving and ingesting go on (blocking); one at a time per collection (409)."""
        if self.ingest is None:
            raise ServiceError(503, "this service runs read-only beside the server that holds the catalogue: take "
                                    "snapshots through that server (--url URL)", code="read_only")
        store, backend = self.catalog.store, self.catalog.backend
        if store is None or store.shared or backend is None or backend.name != "faiss":
            raise ServiceError(400, "snapshots copy embedded catalogues (SQLite + FAISS); back up a PostgreSQL store "
                                    "with pg_dump and Milvus with milvus-backup (README: Collections and snapshots)",
                               code="snapshots_unsupported")
        if not self._snapshotting.acquire(blocking=False):
            raise ServiceError(409, f"a snapshot of collection {self.name!r} is being written; one runs at a time "
                                    "per collection: try again when it is listed", code="conflict")
        try:
            if len(self.snapshots()) >= self.max_snapshots:
                raise ServiceError(409, f"collection {self.name!r} holds its limit of {self.max_snapshots} snapshots "
                                        "(setting max_snapshots); download and delete old ones first", code="limit")
            return write_snapshot(self.catalog, self.layout.snapshots, collection=self.name,
                                  files={"media": self.layout.media, "thumbs": self.layout.thumbs})
        finally:
            self._snapshotting.release()

    def snapshots(self) -> list[SnapshotInfo]:
        return list_snapshots(self.layout.snapshots)

    def snapshot_file(self, name: str) -> Path:
        """The archive of snapshot `name` (400 for a name breaking the rule, 404 when there is none)."""
        try:
            check_snapshot_name(name)
        except InvalidArgumentError as exc:
            raise ServiceError(400, str(exc)) from None
        path = self.layout.snapshots / f"{name}{SUFFIX}"
        if not path.is_file():
            raise ServiceError(404, f"collection {self.name!r} has no snapshot {name!r}; GET /collections/"
                                    f"{self.name}/snapshots lists them", code="not_found")
        return path


class Collections:
    """Open, create, list and delete collections; `get` resolves a route's collection (400 bad name, 404 unknown)."""

    def __init__(self, settings: Settings, encoder: Encoder, metrics: Metrics, paths: ServerPaths, *,
                 model: Mapping[str, Any], read_only: bool = False,
                 ingest_options: Mapping[str, Any] | None = None) -> None:
        """`read_only`: open every catalogue to read beside the writer that holds it (no ingest, no changes);
        `ingest_options`: more keywords for every collection's IngestService (parts loaded once, shared)."""
        self.settings = settings
        self.read_only = read_only
        self.ingest_options = dict(ingest_options or {})
        self.encoder = encoder
        self.metrics = metrics
        self.paths = paths
        self.model = dict(model)  # name and config hash, claimed by every catalogue
        self.pool = IngestPool(self.ingests, workers=settings.ingest_workers, poll_s=settings.job_poll_s)
        self._open: dict[str, Collection] = {}
        self._lock = threading.Lock()  # create/delete one at a time (lookups read the dict without it)
        self._shared = settings.store != "sqlite"  # other replicas create and delete collections too
        self._followed = 0.0
        self._store_down = False

    # --- lifecycle ------------------------------------------------------------------------------
    def open_all(self) -> Collection:
        """Open the default collection (its lock first: a second server fails here) and every named one found;
        returns the default."""
        default = self._load(DEFAULT_COLLECTION, create=not self.read_only)
        for doomed in [] if self.read_only else (self.settings.data_dir / "collections").glob(".*.deleting"):
            shutil.rmtree(doomed, ignore_errors=True)  # a delete cut off by a crash
        found = set(collection_names(self.settings.data_dir)) | set(stored_collections(self.settings.store))
        for name in sorted(found):
            if name != DEFAULT_COLLECTION:
                try:
                    self._load(name, create=False)
                except CatalogError as exc:  # one broken collection does not keep the others from serving
                    log.error("collection %s not opened: %s", name, exc)
        return default

    def start(self) -> None:
        self.pool.start()

    def close(self) -> None:
        self.pool.close()
        for col in list(self._open.values()):
            if col.ingest is not None:
                col.ingest.close()
        for col in list(self._open.values()):
            col.catalog.close()
        self._open.clear()

    def ingests(self) -> list[IngestService]:
        """Every open collection's ingest service (the pool's pass; it also follows other replicas' deletes)."""
        self._follow_store()
        return [c.ingest for c in list(self._open.values()) if c.ingest is not None]

    def _follow_store(self) -> None:
        """With a shared store, close the collections another replica deleted (looked up every FOLLOW_S)."""
        named = [n for n in self._open if n != DEFAULT_COLLECTION]
        if not self._shared or not named or time.monotonic() - self._followed < FOLLOW_S:
            return
        self._followed = time.monotonic()
        try:
            stored = set(stored_collections(self.settings.store))
        except CatalogError as exc:  # the store is down: look again later (said once per outage)
            if not self._store_down:
                log.warning("collections: the shared store could not be read (%s); retrying", exc)
            self._store_down = True
            return
        self._store_down = False
        for name in [n for n in named if n not in stored]:
            with self._lock:
                col = self._open.pop(name, None)
            if col is None:
                continue
            if col.ingest is not None:
                col.ingest.close()
            col.catalog.close()
            if col.layout.root.exists():
                _remove_tree(col.layout.root)  # this replica's FAISS cache of it
            log.info("collection %s was deleted through another replica; closed here", name)

    def _layout(self, name: str) -> CollectionLayout:
        try:
            return CollectionLayout.of(self.settings.data_dir, name, media_dir=self.settings.media_dir)
        except InvalidArgumentError as exc:
            raise ServiceError(400, str(exc), code="bad_collection_name") from None

    def _load(self, name: str, *, create: bool, index_type: str | None = None,
              index_options: Mapping[str, Any] | None = None) -> Collection:
        s = self.settings
        layout = self._layout(name)
        default = name == DEFAULT_COLLECTION
        store_spec, vectors_spec = (s.store, s.vectors) if default else (collection_store(s.store, name),
                                                                             collection_vectors(s.vectors, name))
        if self.read_only:  # beside the writer that holds the catalogue: read it, change nothing
            catalog = Catalog(layout.catalog, store=store_spec, vectors=vectors_spec, readonly=True, create=False)
            col = Collection(layout, catalog, MediaStore(layout.media, layout.thumbs), None,
                             self._query(catalog), max_snapshots=s.max_snapshots)
            self._open[name] = col
            return col
        catalog = Catalog(layout.catalog, spaces=self.encoder.model.space_dims, create=create,
                          index_type=index_type, index_options=index_options, store=store_spec,
                          vectors=vectors_spec, text_language=s.text_language)
        try:
            for d in (layout.media, layout.thumbs):
                d.mkdir(parents=True, exist_ok=True)
            try:  # so `vatt index import` refuses shards of another model
                catalog.claim_model(self.model)
            except Exception as exc:  # another model's catalogue, or a full/read-only disk: serving reads goes on
                log.warning("collection %s: model not recorded in the catalogue: %s", name, exc)
            store = MediaStore(layout.media, layout.thumbs)
            ingest = IngestService(self.encoder, catalog, JobStore(catalog.store, lease_s=s.job_lease_s), store,
                                   self.metrics, workers=0, retention_s=s.job_retention_s, poll_s=s.job_poll_s,
                                   paths=self.paths, wake=self.pool.wake, workers_alive=self.pool.alive,
                                   **self.ingest_options)
            try:
                ingest.recover()
            except (OSError, sqlite3.OperationalError, CatalogError) as exc:  # a full disk: serve reads, recover later
                log.warning("collection %s: ingest recovery postponed: %s", name, exc)
            query = self._query(catalog)
        except BaseException:
            catalog.close()
            raise
        discard_partial(layout.snapshots)  # a snapshot cut off by a crash
        col = Collection(layout, catalog, store, ingest, query, max_snapshots=s.max_snapshots)
        self._open[name] = col
        return col

    def _query(self, catalog: Catalog) -> QueryService:
        s = self.settings
        return QueryService(self.encoder, catalog, temperature=s.temperature, max_k=s.max_k, moment_floor=s.moment_floor)

    def _writable(self) -> None:
        if self.read_only:
            raise ServiceError(503, "this service runs read-only beside the server that holds the catalogue: "
                                    "collections are created and deleted through that server (--url URL)",
                               code="read_only")

    # --- the API's verbs ------------------------------------------------------------------------
    def get(self, name: str) -> Collection:
        col = self._open.get(name)
        if col is None:
            check = self._layout(name)  # 400 naming the rule first
            col = self._made_elsewhere(name)
            if col is None:
                raise ServiceError(404, f"no collection named {check.name!r}; GET /collections lists them, "
                                        "POST /collections creates one", code="not_found")
        return col

    def _made_elsewhere(self, name: str) -> Collection | None:
        """A collection another replica created in the shared store, opened here now (None when there is none)."""
        if name not in stored_collections(self.settings.store):
            return None
        with self._lock:
            return self._open.get(name) or self._load(name, create=False)

    def all(self) -> list[Collection]:
        return sorted(self._open.values(), key=lambda c: (c.name != DEFAULT_COLLECTION, c.name))

    def create(self, name: str, *, index_type: str | None = None,
               index_options: Mapping[str, Any] | None = None) -> Collection:
        """A new, empty collection (blocking: creates its catalogue)."""
        self._writable()
        self._layout(name)  # 400 naming the rule
        if index_type is not None and index_type not in INDEX_TYPES:
            raise ServiceError(400, f"unknown index type {index_type!r}; accepted: {', '.join(INDEX_TYPES)}")
        with self._lock:
            if name in self._open or name in stored_collections(self.settings.store):
                raise ServiceError(409, f"collection {name!r} exists already", code="conflict")
            limit = self.settings.max_collections
            if len(self._open) >= limit:
                raise ServiceError(409, f"this server holds its limit of {limit} collections (setting "
                                        "max_collections, the default collection included); delete one first",
                                   code="limit")
            layout = self._layout(name)
            if (layout.catalog).exists():  # left by a crash mid-delete: start empty
                shutil.rmtree(layout.root, ignore_errors=True)
            prepare_store(self.settings.store, name)  # PostgreSQL: its schema
            col = self._load(name, create=True, index_type=index_type or "flat", index_options=index_options)
        log.info("collection %s created (%s)", name, col.catalog.index_type)
        return col

    def delete(self, name: str) -> Collection:
        """Remove a collection with its catalogue, jobs, media and thumbnails (its snapshots stay)."""
        self._writable()
        if name == DEFAULT_COLLECTION:
            raise ServiceError(400, "the default collection cannot be deleted (it is the data directory's own "
                                    "catalogue); delete its items instead", code="bad_request")
        with self._lock:
            col = self.get(name)
            self._open.pop(name, None)  # new requests get 404 from here on
        if col.ingest is not None:
            col.ingest.close()  # waits for a job of its running in the pool
        try:
            col.catalog.drop_vectors()  # Milvus: its collections (FAISS files go with the directory)
        finally:
            col.catalog.close()
        drop_store(self.settings.store, name)  # PostgreSQL: its schema, with every table in it
        _remove_tree(col.layout.root)
        if not col.layout.media.is_relative_to(col.layout.root):  # replicas' shared media directory
            shutil.rmtree(col.layout.media, ignore_errors=True)
        log.info("collection %s deleted", name)
        return col


def _remove_tree(root: Path) -> None:
    """Rename first, then remove: a crash midway leaves no half collection under its name."""
    doomed = root.with_name(f".{root.name}.deleting")
    shutil.rmtree(doomed, ignore_errors=True)
    root.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)
