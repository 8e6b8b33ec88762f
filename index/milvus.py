"""Milvus side of the catalogue: one collection per space, a rebuildable cache of the store's vectors.

Why Milvus: several API replicas (and machines) share one vector engine, where a FAISS file lives in one
process. The store stays the truth; whatever Milvus lacks is caught up from it by the catalogue.

Layout: collection `<prefix>_<catalogue>_<space>` (the catalogue name lets two catalogues share a server)
with `id` (INT64 primary key = segment id, never reused), `item` and `kind` (VARCHAR, for filters) and
`vector` (FLOAT_VECTOR, metric IP: cosine on the unit vectors the catalogue stores).

Structures, per the catalogue's index_type and IndexOptions (the same names as for FAISS):

* flat  — FLAT: exact.
* hnsw  — HNSW (M = hnsw_m, efConstruction = ef_construction; ef = max(ef_search, k) at search time).
* ivfpq — IVF_FLAT (nlist, nprobe; automatic as for FAISS). Not IVF_PQ: Milvus keeps the raw vectors
  anyway, so PQ would only trade recall for memory that is spent regardless; IVF_FLAT's scores are true
  cosines, which the catalogue's grouping relies on.

As with FAISS, an ivfpq space stays FLAT (exact) until it holds `train_min` vectors, then switches once;
hnsw is HNSW from the start.

Consistency (read-your-writes across replicas, without a time tick per search): every insert and delete
returns Milvus's hybrid timestamp; the handle records it in the store (`Session.note_engine_ts`, a meta row
next to the space's epoch that only grows) before the write returns, so before the service acknowledges it.
A search reads that row and asks Milvus for everything up to it (`consistency_level="Customized"`,
`guarantee_timestamp`): it waits only while Milvus has not yet applied the newest recorded write (at most one
time tick, right after a write), and answers at once otherwise — where Strong waited for the next tick on
every search (~210 ms with Milvus's default proxy.timeTickInterval of 200 ms). So a client sees its own
writes always, and any replica's acknowledged writes as soon as they were recorded. Before anything was
recorded (a collection written by an older version, or a handle opened without a store), searches stay
Strong. If the store fails right after a Milvus write, the timestamp is kept here and recorded with the next
write or search of this handle. `?consistency=strong` in the URI searches Strong regardless (each search
waits for the next tick: the old behaviour, kept as the bench's baseline). `ids()` and `count()` (catch-up,
check, describe) stay Strong: they are rare.
Deletes are by primary key. `live` is the store's count when the catalogue opened the space (the
collection is caught up to it), so it costs no Milvus round trip.

Durability: an insert acknowledged by Milvus is in its write-ahead log, so `flush()` does not seal
segments (sealing after every write makes many tiny segments, which Milvus documents against).

Errors: a server that cannot be reached raises `StoreUnavailableError` (the service answers 503);
anything else Milvus refuses is a bug here and propagates as is.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import warnings
from typing import Any, Callable, Sequence, TypeVar
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .errors import CatalogError, InvalidArgumentError, StoreUnavailableError
from .space_index import VectorSource
from .types import ITEM_ID_MAX, IndexOptions, auto_nlist

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TOPK = 16384  # Milvus's limit on k (and on one `id in [...]` chunk we send)
KIND_MAX = 16
_NAME = re.compile(r"[^A-Za-z0-9_]")
_CONNECT_LOCK = threading.Lock()
BUILD_TIMEOUT_S = 1800.0  # create_index waits for the build (HNSW over 100k 512-d: minutes on 2 busy cores)
STRUCTURE_TTL_S = 10.0  # how long a handle trusts its view of the collection's index (a peer may switch it)


def parse_uri(uri: str) -> tuple[str, int, str]:
    """`milvus://host:port/name?timeout=S&consistency=strong` → (host, port, catalogue name); port 19530 and name
    "vatt" by default. The name prefixes the collections, so catalogues sharing a server must use different names;
    `timeout` (seconds per Milvus call, 10 by default) and `consistency` (`recorded`, the default, or `strong`:
    every search waits for the next time tick, the behaviour before read-your-writes was recorded) are read
    by MilvusBackend."""
    parts = urlsplit(uri)
    name = parts.path.strip("/") or "vatt"
    if parts.scheme != "milvus" or not parts.hostname or _NAME.search(name):
        raise InvalidArgumentError(f"vector engine {uri!r} is not understood; accepted: "
                                   "milvus://host:port or milvus://host:port/name (name: letters, digits, _)")
    return parts.hostname, parts.port or 19530, name


def load_pymilvus() -> Any:
    """Imported on first use only: the embedded default never loads it. pymilvus 2.3 (pkg_resources) and its
    environs 9.5 (marshmallow.__version_info__) use deprecated APIs on import; nothing here can act on that."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import pymilvus
    return pymilvus


def collection_name(catalog: str, space: str) -> str:
    """A Milvus-legal collection name (letters, digits, underscores; at most 255 characters)."""
    return _NAME.sub("_", f"vatt_{catalog}_{space}")[:255]


class MilvusBackend:
    """`vectors="milvus://host:port[/name]"`: every space of the catalogue in one Milvus server."""

    name = "milvus"

    def __init__(self, uri: str) -> None:
        parse_uri(uri)  # refuse a bad URI before any space is opened
        query = parse_qs(urlsplit(uri).query)
        try:
            self.timeout = float(query.get("timeout", ["10"])[0])
        except ValueError:
            raise InvalidArgumentError(f"{uri!r}: timeout must be a number of seconds") from None
        consistency = query.get("consistency", ["recorded"])[0]
        if consistency not in ("recorded", "strong"):
            raise InvalidArgumentError(f"{uri!r}: consistency {consistency!r} is not understood; accepted: "
                                       "recorded (the default), strong")
        self.uri, self.strong = uri, consistency == "strong"

    def open_space(self, source: VectorSource, *, index_type: str, options: IndexOptions,
                   readonly: bool) -> MilvusSpaceIndex:
        """The space's collection as it stands (created if missing; the catalogue catches it up)."""
        vi = MilvusSpaceIndex(self.uri, space=source.space, dim=source.dim, index_type=index_type,
                              options=options, timeout=self.timeout, source=source, strong=self.strong)
        if not readonly and vi.index_mismatch():
            log.warning("milvus %s: %s; rebuilding its index", vi.name, vi.index_mismatch())
            vi.rebuild()
        return vi

    def build_space(self, source: VectorSource, *, index_type: str, options: IndexOptions) -> MilvusSpaceIndex:
        """A fresh, empty collection: the catalogue's catch-up right after fills it from the store."""
        MilvusSpaceIndex(self.uri, space=source.space, dim=source.dim, timeout=self.timeout).drop()
        return MilvusSpaceIndex(self.uri, space=source.space, dim=source.dim, index_type=index_type,
                                options=options, timeout=self.timeout, source=source, strong=self.strong)

    def close(self) -> None:
        pass


class MilvusSpaceIndex:
    """One space of one catalogue in a Milvus collection (the SpaceIndex protocol)."""

    structure_names = {"flat": "FLAT", "hnsw": "HNSW", "ivfpq": "IVF_FLAT"}
    shared = True  # every replica reads and writes the same collection: no per-process catch-up

    def __init__(self, uri: str, *, space: str, dim: int, index_type: str = "flat",
                 options: IndexOptions | None = None, timeout: float = 10.0,
                 source: VectorSource | None = None, strong: bool = False) -> None:
        """`source`: the catalogue's store (where write timestamps are recorded; without it every search is
        Strong). `strong`: search Strong even so (see the module docstring)."""
        if index_type not in self.structure_names:
            raise InvalidArgumentError(f"index_type {index_type!r} is not supported; accepted: flat, hnsw, ivfpq")
        self.uri, self.space, self.dim = uri, space, dim
        self.index_type, self.options = index_type, options or IndexOptions()
        self.timeout, self.source, self.strong = timeout, source, strong
        self.host, self.port, catalog = parse_uri(uri)
        self.alias = f"vatt-{self.host}:{self.port}"
        self.name = collection_name(catalog, space)
        self._pm = load_pymilvus()
        self._nlist: int | None = None  # ivfpq: the built IVF's lists, read from Milvus once it exists
        self._structure: tuple[float, str] | None = None  # (when read, structure)
        self._unrecorded = 0  # the newest write timestamp the store could not take yet (0: none)
        self._collection = self._call(self._open)

    # --- connection and errors ------------------------------------------------------------------
    def _call(self, fn: Callable[[], T]) -> T:
        """Run one Milvus operation; a server that cannot be reached becomes StoreUnavailableError."""
        pm = self._pm
        try:
            self._connect()
            try:
                return fn()
            except pm.exceptions.MilvusException as e:
                if "not loaded" not in str(e.message):
                    raise
                self._reload(e)
                return fn()
        except pm.exceptions.MilvusException as e:
            if _unreachable(e) or "not loaded" in str(e.message):  # not loaded even after _reload: recovering
                raise StoreUnavailableError(self._down(e)) from e
            raise
        except Exception as e:  # grpc errors that pymilvus does not wrap
            if type(e).__module__.startswith("grpc") or isinstance(e, (ConnectionError, TimeoutError)):
                raise StoreUnavailableError(self._down(e)) from e
            raise

    def _reload(self, why: Exception) -> None:
        """Load a collection the server reports released, then the caller retries once.

        Why it happens: a peer's rebuild releases it for a moment; and a Milvus restarted after a crash (SIGKILL)
        recovers the collection's replica on its old query node, whose session lingers in etcd until its TTL
        (common.session.ttl, 30 s) ends — until then every search says "not loaded", and only then does the
        load move to the new query node (found in the server's log: "a node down, remove it"). So: ask for a
        load and wait for it; one that is not done in time is the engine still recovering — a 503 that says
        so (the load goes on in the server; the next request waits for it again), never a 500."""
        log.warning("milvus %s: collection not loaded (%s); loading it", self.name, str(getattr(why, "message", why))[:160])
        try:
            self._collection.load(timeout=max(self.timeout, 60))
        except self._pm.exceptions.MilvusException as e:
            if _unreachable(e):
                raise
            raise StoreUnavailableError(f"vector engine milvus://{self.host}:{self.port} is loading collection "
                                        f"{self.name} (after a restart or a rebuild): {str(e.message)[:160]}; "
                                        "retry shortly") from e

    def _down(self, e: Exception) -> str:
        """One line for the 503: which engine, and gRPC's status name rather than its multi-line repr."""
        code = getattr(e, "code", None)
        why = code().name if callable(code) and hasattr(code(), "name") else str(getattr(e, "message", e))
        where = f"milvus://{self.host}:{self.port}"
        return f"vector engine {where} is unavailable ({why.splitlines()[0][:160]}); retry when it is back"

    def _connect(self) -> None:
        conns = self._pm.connections
        with _CONNECT_LOCK:
            if not conns.has_connection(self.alias):
                conns.connect(self.alias, host=self.host, port=str(self.port), timeout=self.timeout)

    # --- structure ------------------------------------------------------------------------------
    def _open(self) -> Any:
        pm = self._pm
        if pm.utility.has_collection(self.name, using=self.alias, timeout=self.timeout):
            coll = pm.Collection(self.name, using=self.alias)
            have = next(f for f in coll.schema.fields if f.name == "vector").params["dim"]
            if int(have) != self.dim:
                raise InvalidArgumentError(f"Milvus collection {self.name} holds {have}-d vectors; "
                                           f"space {self.space!r} is {self.dim}-d")
        else:
            DT = pm.DataType
            schema = pm.CollectionSchema([
                pm.FieldSchema("id", DT.INT64, is_primary=True, auto_id=False),
                pm.FieldSchema("item", DT.VARCHAR, max_length=ITEM_ID_MAX),
                pm.FieldSchema("kind", DT.VARCHAR, max_length=KIND_MAX),
                pm.FieldSchema("vector", DT.FLOAT_VECTOR, dim=self.dim),
            ], description=f"vatt space {self.space}")
            coll = pm.Collection(self.name, schema, using=self.alias, consistency_level="Strong",
                                 timeout=self.timeout)
        if not coll.has_index(timeout=self.timeout):
            coll.create_index("vector", self._index_params(self._wanted(0), 0), timeout=self.timeout)
        coll.load(timeout=max(self.timeout, 60))
        return coll

    def _index_params(self, index_type: str, n: int) -> dict[str, Any]:
        o = self.options
        if index_type == "hnsw":
            params = {"M": o.hnsw_m, "efConstruction": o.ef_construction}
        elif index_type == "ivfpq":
            params = {"nlist": o.nlist or auto_nlist(n)}
        else:
            params = {}
        return {"index_type": self.structure_names[index_type], "metric_type": "IP", "params": params}

    @property
    def structure(self) -> str:
        """What the collection is searched with now: 'flat' until an approximate index is built (read from
        Milvus at most every STRUCTURE_TTL_S: a peer replica may have switched it)."""
        now = time.monotonic()
        if self._structure is None or now - self._structure[0] > STRUCTURE_TTL_S:
            kind = self._call(lambda: self._collection.index().params.get("index_type", "FLAT"))
            self._structure = (now, next(k for k, v in self.structure_names.items() if v == kind))
        return self._structure[1]

    def index_mismatch(self) -> str | None:
        """Why the collection's index is not what the catalogue asks for (None if it is)."""
        have = self.structure
        if have != "flat" and have != self.index_type:
            return f"indexed {self.structure_names[have]} but the catalogue's index type is {self.index_type!r}"
        if have == "flat" and self.index_type != "flat" and self._wanted(self.live) != "flat":
            return f"still FLAT with {self.live} vectors (index type {self.index_type!r})"
        return None

    @property
    def approximate(self) -> bool:
        return self.structure != "flat"

    @property
    def exact_in_memory(self) -> bool:
        """FLAT search is exact; an HNSW/IVF collection has no brute-force path (the store's vectors are)."""
        return self.structure == "flat"

    def _wanted(self, n: int) -> str:
        """The structure for a space of n vectors: ivfpq waits for train_min (IVF lists need data)."""
        return "flat" if self.index_type == "ivfpq" and n < self.options.train_min else self.index_type

    def _maybe_switch(self) -> None:
        """ivfpq: build the IVF index once the space is large enough (train_min vectors)."""
        if self.index_type != "ivfpq" or self.structure != "flat":
            return
        self._structure = None  # re-read: a peer may have switched it already
        if self.structure != "flat":
            return
        n = self.live
        if n < self.options.train_min:
            return
        coll = self._collection
        log.info("milvus %s: %d vectors, switching FLAT -> %s", self.name, n, self.structure_names[self.index_type])
        coll.release(timeout=self.timeout)
        coll.drop_index(timeout=self.timeout)
        coll.flush(timeout=max(self.timeout, 60))  # seal, so the new index covers what is there now
        coll.create_index("vector", self._index_params(self.index_type, n), timeout=BUILD_TIMEOUT_S)
        coll.load(timeout=max(self.timeout, 60))
        self._structure = None

    def rebuild(self) -> None:
        """Re-derive the index from what the collection holds (type and nlist follow the current size)."""
        def go() -> None:
            coll, n = self._collection, self.live
            coll.release(timeout=self.timeout)
            coll.drop_index(timeout=self.timeout)
            coll.flush(timeout=max(self.timeout, 60))  # seal, so the new index covers what is there now
            kind = self._wanted(n)
            coll.create_index("vector", self._index_params(kind, n), timeout=BUILD_TIMEOUT_S)
            coll.load(timeout=max(self.timeout, 60))
            self._nlist = self._structure = None
        self._call(go)

    # --- protocol -------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, x: np.ndarray, *, items: Sequence[str], kinds: Sequence[str]) -> None:
        """Insert unit vectors under their segment ids (upsert: re-adding an id replaces it, so a
        catch-up that overlaps what is there cannot duplicate)."""
        ids = np.asarray(ids, dtype=np.int64)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape != (len(ids), self.dim) or len(items) != len(ids) or len(kinds) != len(ids):
            raise InvalidArgumentError(f"add: {len(ids)} ids need [{len(ids)}, {self.dim}] vectors and as many "
                                       f"items and kinds; got {list(x.shape)}, {len(items)}, {len(kinds)}")
        if not len(ids):
            return

        def go() -> int:
            step = max(1, (4 << 20) // (4 * self.dim))  # ≈4 MB of vectors per request (gRPC caps at 64 MB)
            ts = 0
            for s in range(0, len(ids), step):
                ts = max(ts, self._collection.upsert([ids[s:s + step].tolist(), list(items[s:s + step]),
                                                      list(kinds[s:s + step]), x[s:s + step]],
                                                     timeout=self.timeout).timestamp)
            self._maybe_switch()
            return ts
        self._record(self._call(go))

    def remove(self, ids: np.ndarray) -> None:
        ids = np.unique(np.asarray(ids, dtype=np.int64))

        def go() -> int:
            return max(self._collection.delete(f"id in {ids[s:s + MAX_TOPK].tolist()}", timeout=self.timeout).timestamp
                       for s in range(0, len(ids), MAX_TOPK))
        if len(ids):
            self._record(self._call(go))

    # --- read-your-writes (see the module docstring) ----------------------------------------------
    def _record(self, ts: int) -> None:
        """Put a write's timestamp in the store before the write returns (the catalogue acknowledges after)."""
        ts = max(ts, self._unrecorded)
        if self.source is None or ts <= 0:
            return
        try:
            with self.source.store.transaction() as tx:
                tx.note_engine_ts(self.space, ts)
            self._unrecorded = 0
        except CatalogError as e:  # the write is in Milvus; other replicas may miss it for up to one tick
            self._unrecorded = ts
            log.warning("milvus %s: could not record write timestamp %d in the store (%s); retried with the next "
                        "write or search", self.name, ts, e)

    def _consistency(self) -> dict[str, Any]:
        """Search kwargs: everything up to the newest write any replica recorded, or Strong without a record."""
        if self.source is None or self.strong:
            return {"consistency_level": "Strong"}
        if self._unrecorded:
            self._record(0)
        ts = max(self.source.store.reader().engine_ts(self.space) or 0, self._unrecorded)
        if ts <= 0:
            return {"consistency_level": "Strong"}
        return {"consistency_level": "Customized", "guarantee_timestamp": ts}

    def search(self, q: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               kinds: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: scores (m, k) best first and ids (m, k), -1/-inf padded.

        `allowed` is sent as `id in [...]` in chunks of MAX_TOPK ids whose results are merged — exact with
        FLAT, and never a post-filter that could run dry. k is capped at Milvus's MAX_TOPK."""
        q = np.ascontiguousarray(q, dtype=np.float32).reshape(-1, self.dim)
        d = np.full((len(q), k), -np.inf, np.float32)
        out = np.full((len(q), k), -1, np.int64)
        kk = min(k, MAX_TOPK)
        if not len(q) or kk <= 0 or (allowed is not None and not len(allowed)) or (kinds is not None and not kinds):
            return d, out
        kind_expr = f"kind in {list(kinds)!r}".replace("'", '"') if kinds is not None else None
        if allowed is None:
            chunks: list[str | None] = [kind_expr]
        else:
            a = np.unique(np.asarray(allowed, dtype=np.int64))
            chunks = [" and ".join(filter(None, [f"id in {a[s:s + MAX_TOPK].tolist()}", kind_expr]))
                      for s in range(0, len(a), MAX_TOPK)]
        params = self._call(lambda: self._search_params(kk))
        consistency = self._consistency()
        parts = [self._call(lambda e=expr: self._search(q, kk, e, params, consistency)) for expr in chunks]
        if len(parts) == 1:
            pd, pi = parts[0]
        else:  # merge the chunks' top-k
            pd, pi = np.concatenate([p[0] for p in parts], 1), np.concatenate([p[1] for p in parts], 1)
            top = np.argsort(-pd, axis=1, kind="stable")[:, :kk]
            pd, pi = np.take_along_axis(pd, top, 1), np.take_along_axis(pi, top, 1)
        d[:, :pd.shape[1]], out[:, :pi.shape[1]] = pd, pi
        return d, out

    def _search_params(self, k: int) -> dict[str, Any]:
        """ef and nprobe together: Milvus reads the one its index uses, so a replica whose peer switched
        the index from FLAT needs no refresh."""
        o, nprobe = self.options, 1
        if self.index_type == "ivfpq":
            if self._nlist is None:
                self._nlist = self._collection.index().params.get("params", {}).get("nlist")
            if self._nlist is not None:
                nlist = int(self._nlist)
                nprobe = min(nlist, o.nprobe or max(16, nlist // 8))
        return {"metric_type": "IP", "params": {"ef": max(o.ef_search, k), "nprobe": nprobe}}

    def _search(self, q: np.ndarray, k: int, expr: str | None, params: dict[str, Any],
                consistency: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        res = self._collection.search(q, "vector", params, limit=k, expr=expr, timeout=self.timeout,
                                      **consistency)
        d = np.full((len(q), k), -np.inf, np.float32)
        out = np.full((len(q), k), -1, np.int64)
        for r, hits in enumerate(res):
            n = len(hits.ids)
            out[r, :n] = hits.ids
            d[r, :n] = hits.distances
        return d, out

    def ids(self) -> np.ndarray:
        """Every live segment id, sorted (for catching up from the store)."""
        def go() -> np.ndarray:
            it = self._collection.query_iterator(batch_size=MAX_TOPK, expr="id >= 0", output_fields=["id"],
                                                 timeout=self.timeout, consistency_level="Strong")
            found: list[int] = []
            try:
                while batch := it.next():
                    found.extend(r["id"] for r in batch)
            finally:
                it.close()
            return np.unique(np.asarray(found, dtype=np.int64))
        return self._call(go)

    @property
    def live(self) -> int:
        """Vectors in the space. Opened by a catalogue: the store's count, which the collection is caught up
        to (the catalogue asks on every search and write; a Strong count(*) would wait for Milvus's time
        tick each time). Standalone: the collection's own count."""
        if self.source is not None:
            return self.source.count()
        return self.count()

    def count(self) -> int:
        """Rows in the collection after deletes (count(*) is exact under Strong consistency; num_entities
        is not)."""
        rows = self._call(lambda: self._collection.query("", output_fields=["count(*)"], timeout=self.timeout,
                                                          consistency_level="Strong"))
        return int(rows[0]["count(*)"])

    def exact(self, q: np.ndarray, k: int, *, allowed: np.ndarray | None = None) -> tuple[np.ndarray,
                                                                                         np.ndarray] | None:
        """FLAT: the search itself; HNSW/IVF: None (the catalogue brute-forces the store's vectors)."""
        return self.search(q, k, allowed=allowed) if self.structure == "flat" else None

    def flush(self, epoch: int) -> None:
        """Nothing to do: an acknowledged insert is already in Milvus's write-ahead log (see the module
        docstring for why this does not seal segments)."""

    def describe(self, epoch: int) -> dict[str, Any]:
        structure = self.structure
        n = self.count()
        params = self._index_params(structure, n)
        return {"dim": self.dim, "vectors": n, "structure": structure,
                "factory": f"milvus {params['index_type']} {params['params'] or ''}".strip(),
                "collection": self.name, "server": f"{self.host}:{self.port}", "epoch": epoch}

    def check(self, live: np.ndarray, epoch: int) -> tuple[list[str], list[str]]:
        """Beyond missing/extra ids (the catalogue compares those): rows filed under no kind we know."""
        problems: list[str] = []
        notes = [f"{self.space}: Milvus collection {self.name} on {self.host}:{self.port} "
                 f"({self.structure}, {self.count()} vectors)"]
        mismatch = self.index_mismatch()
        if mismatch:
            notes.append(f"{self.space}: {mismatch} (rebuilt on the next writable open)")
        return problems, notes

    def ping(self) -> None:
        """One cheap round trip (does the collection exist?): StoreUnavailableError when Milvus does not answer."""
        self._call(lambda: self._pm.utility.has_collection(self.name, using=self.alias, timeout=self.timeout))

    def drop(self) -> None:
        """Delete the whole collection (a catalogue's `rebuild` from scratch, and test cleanup)."""
        self._call(lambda: self._pm.utility.drop_collection(self.name, using=self.alias, timeout=self.timeout))

    def close(self) -> None:
        """The connection is shared by every space on the same server, so it stays open."""


def _unreachable(e: Exception) -> bool:
    """pymilvus reports an unreachable server as MilvusUnavailableException, ConnectError or a
    MilvusException whose message names the connection (its retries have given up by then)."""
    pm_exc = load_pymilvus().exceptions
    if isinstance(e, (pm_exc.MilvusUnavailableException, pm_exc.ConnectError)):
        return True
    text = str(getattr(e, "message", e)).lower()
    return any(w in text for w in ("fail connecting", "unavailable", "deadline", "connection", "connect to server"))
