"""`SpaceSync`: which store epoch each space's vector index reflects, and the catch-up that keeps it so.

The store is the truth; each space's index is a cache of it. After every committed write the catalogue
mirrors the change into the index (`apply`); a process sharing the store with others follows their writes
by replaying the store's change log before it answers (`sync`); a write the vector engine could not take
stands and is caught up later — marked here, and for an engine every replica shares also in the store, so
any replica catches it up. Index files are persisted (`flush`) at the epoch they reflect. The catalogue
holds the writer lock around every call; nothing here knows the `Catalog` class.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, MutableMapping

import numpy as np

from ._consistency import catch_up, replay
from .errors import CatalogError, StoreUnavailableError
from .space_index import SpaceIndex
from .store import Session, Store

log = logging.getLogger("index.catalog")

Added = Mapping[str, tuple[np.ndarray, np.ndarray, list[str], list[str]]]  # space → (ids, x, item ids, kinds)


class SpaceSync:
    """The per-space sync state of one catalogue's vector indexes (one per process)."""

    def __init__(self, store: Store, indexes: MutableMapping[str, SpaceIndex], *, readonly: bool,
                 flush_every: int | None) -> None:
        """`indexes` is the catalogue's own mapping (a rebuild replaces its entries; this sees them)."""
        self.store, self.indexes, self.readonly, self.flush_every = store, indexes, readonly, flush_every
        self.synced: dict[str, int] = {}  # store epoch each index is known to reflect
        self.own: dict[str, set[int]] = {}  # this process's epochs past `synced`, already applied
        self.pending = 0  # vector changes not yet persisted
        self.unindexed: set[str] = set()  # spaces add_items(index=False) left behind the store
        self.behind: set[str] = set()  # spaces whose index missed a committed write (engine down)

    def start(self, space: str) -> None:
        """Bring a freshly opened index up to the store (a reader leaves a shared engine as it is: check()
        reports what it lacks) and persist it at that epoch."""
        vi = self.indexes[space]
        self.own[space] = set()
        if self.readonly and vi.shared:
            self.synced[space] = self.store.reader().epochs([space])[space]
            return
        self.synced[space] = catch_up(vi, self.store)[0]
        if not self.readonly:
            vi.flush(self.synced[space])

    def restart(self, space: str, why: str) -> None:
        """A rebuilt index: fill it from the store and forget what was pending for the old one."""
        self.synced[space] = catch_up(self.indexes[space], self.store, why=why)[0]
        self.own[space] = set()
        self.unindexed.discard(space)

    def after(self, tx: Session) -> dict[str, tuple[int, int]] | None:
        """With a shared store: (epoch after, bumps of this transaction) per space written, read inside the
        transaction (the epoch rows are locked by our bumps, so nobody else's write is in between)."""
        if not self.store.shared or not tx.bumps:
            return None
        now = tx.epochs(tx.bumps)
        return {s: (now[s], n) for s, n in tx.bumps.items()}

    def apply(self, removed: Mapping[str, np.ndarray], added: Added,
              after: Mapping[str, tuple[int, int]] | None) -> None:
        """Mirror a committed write into the vector indexes. The write stands even when a vector engine cannot
        take it: the gap is marked (`mark_behind`) and caught up later."""
        changed = 0
        for space in sorted(set(removed) | set(added)):
            vi = self.indexes[space]
            try:
                if space in removed:
                    vi.remove(removed[space])
                    changed += len(removed[space])
                if space in added:
                    ids, x, items, kinds = added[space]
                    vi.add(ids, x, items=items, kinds=kinds)
                    changed += len(ids)
            except StoreUnavailableError as exc:
                self.mark_behind(space, exc)
            except BaseException:
                self.behind.add(space)  # the store has it: caught up before the space is used again
                raise
        for space, (epoch, bumps) in (after or {}).items():
            if epoch - bumps == self.synced[space]:  # nobody else wrote in between: still in sync
                self.synced[space] = epoch
                self.own[space] = {e for e in self.own[space] if e > epoch}
            else:  # others wrote before us: our epochs are applied, theirs are replayed by the next sync
                self.own[space].update(range(epoch - bumps + 1, epoch + 1))
        self.pending += changed
        live = sum(v.live for v in self.indexes.values())
        if self.flush_every is not None and self.pending >= max(self.flush_every, live // 4):
            self.flush()

    def mark_behind(self, space: str, exc: BaseException) -> None:
        """A committed write missed the vector engine: remember it here, and — for an engine every replica
        shares — in the store, so that any replica (not only this one, which may die first) catches it up."""
        self.behind.add(space)
        if self.indexes[space].shared:
            try:
                with self.store.transaction() as tx:
                    tx.mark_behind(space, uuid.uuid4().hex)
            except CatalogError as again:  # the store is down too: this process's mark stands alone
                log.warning("space %r: could not mark the vector index behind in the store: %s", space, again)
        log.warning("space %r: a committed write did not reach the vector index (%s); it is caught up from the "
                    "store before the space is searched again", space, exc)

    def needs_sync(self, space: str) -> bool:
        """Whether `sync` has work (one cheap read; the caller takes the writer lock only then)."""
        vi = self.indexes[space]
        if vi.shared:
            return not self.readonly and (space in self.behind or space in self.store.reader().behind([space]))
        if space in self.behind:
            return True
        return self.store.shared and self.store.reader().epochs([space])[space] != self.synced[space]

    def sync(self, space: str) -> None:
        """Follow the other processes' writes (shared store, per-process index), and catch up a space whose
        index missed a write that reached the store (a vector engine that was down) — marked by this process,
        or, for a shared engine, by any replica in the store."""
        vi = self.indexes[space]
        if vi.shared:
            if self.readonly:
                return  # a reader does not write the shared engine (check() reports what it lacks)
            mark = self.store.reader().behind([space]).get(space)
            if mark is None and space not in self.behind:
                return
            self.synced[space] = catch_up(vi, self.store, why="after a write that missed it")[0]
            self.behind.discard(space)
            if mark is not None:
                with self.store.transaction() as tx:
                    tx.clear_behind(space, mark)
            return
        if space in self.behind:
            self.synced[space] = catch_up(vi, self.store, why="after a failed index write")[0]
            self.behind.discard(space)
            return
        if not self.store.shared:
            return
        db = self.store.reader()
        since, now = self.synced[space], db.epochs([space])[space]
        if now == since:
            return
        changes = db.changes(space, since, now) if now > since else None
        if changes is not None:
            added, removed = replay(vi, self.store, changes, skip=self.own[space])
            log.debug("space %r: replayed epochs %d..%d from the store (+%d, -%d vectors)", space, since + 1, now,
                      added, removed)
        else:  # the log does not reach back far enough: compare id sets
            now = catch_up(vi, self.store, why="after another process wrote")[0]
        self.synced[space] = now
        self.own[space] = {e for e in self.own[space] if e > now}

    def flush(self) -> None:
        """Persist every index at the store epoch it reflects (not those add_items(index=False) left behind)."""
        epochs = self.synced if self.store.shared else self.store.reader().epochs(self.indexes)
        for space, vi in self.indexes.items():
            if space not in self.unindexed:
                vi.flush(epochs[space])
        self.pending = 0
