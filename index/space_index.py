"""The vector-index seam: one `SpaceIndex` per space, a cache of the store's vectors that can be rebuilt.

FAISS files (index/faiss_index.py, the default) and Milvus (index/milvus.py) implement it. The
catalogue never trusts an index to be complete: after opening one, and (with a shared store) when
the store's epoch moved on, it compares `ids()` with the store and adds/removes the difference —
one rule, in index/_consistency.py, for every backend. Scores are cosines (inner products of unit
vectors); ids are segment ids, never reused; -1 pads rows with fewer than k hits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from .store import Store
from .types import IndexOptions

Chunk = tuple[np.ndarray, np.ndarray]  # (segment ids [m], unit vectors [m, dim])


@runtime_checkable
class SpaceIndex(Protocol):
    """One space's vector index. Thread-safe: the implementation does its own locking."""

    space: str
    dim: int
    shared: bool  # other processes write it too (Milvus): no per-process catch-up before searches

    def add(self, ids: np.ndarray, x: np.ndarray, *, items: Sequence[str], kinds: Sequence[str]) -> None: ...
    def remove(self, ids: np.ndarray) -> None: ...
    def search(self, q: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               kinds: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]: ...
    def exact(self, q: np.ndarray, k: int, *, allowed: np.ndarray | None = None) -> Chunk | None:
        """Brute-force top-k, or None when the index holds no raw vectors (the store's are scanned)."""
    def ids(self) -> np.ndarray:
        """Every live id (for catching up from the store)."""
    @property
    def live(self) -> int: ...
    @property
    def approximate(self) -> bool:
        """Whether `search` may miss true neighbours (drives the filtered search's fallbacks)."""
    @property
    def exact_in_memory(self) -> bool:
        """Whether `exact()` answers (False: the catalogue brute-forces the store's raw vectors)."""
    def flush(self, epoch: int) -> None:
        """Persist; `epoch` is the store's write epoch of the space this state reflects."""
    def describe(self, epoch: int) -> dict[str, Any]:
        """JSON-ready facts for stats() (dim, vectors, structure, factory, ...); `epoch` as in flush."""
    def check(self, live: np.ndarray, epoch: int) -> tuple[list[str], list[str]]:
        """(problems, notes) of the index against the store's live ids (beyond missing/extra ids)."""
    def ping(self) -> None:
        """Raise StoreUnavailableError when the engine holding this index cannot be reached now (readiness)."""
    def close(self) -> None: ...


@dataclass(frozen=True)
class VectorSource:
    """What a vector index may read from the store for its space (rebuilds, training, re-ranking)."""

    store: Store
    space: str
    dim: int

    def count(self) -> int:
        return self.store.reader().space_count(self.space)

    def chunks(self, ids: np.ndarray | None = None) -> Iterator[Chunk]:
        return self.store.reader().iter_vectors(self.space, self.dim, ids=ids)

    def owned_chunks(self, ids: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, list[str],
                                                                              list[str]]]:
        """(ids, x, item ids, kinds): for indexes that file vectors under their item and kind."""
        for sids, x in self.chunks(ids):
            items, kinds = self.store.reader().segment_owners(sids)
            yield sids, x, items, kinds

    def sample(self, m: int) -> np.ndarray:
        return self.store.reader().sample_vectors(self.space, self.dim, m)

    def vectors(self, ids: np.ndarray) -> dict[int, np.ndarray]:
        found: dict[int, np.ndarray] = {}
        for sids, x in self.chunks(ids):
            found.update(zip(sids.tolist(), x))
        return found


class VectorBackend(Protocol):
    """Opens the SpaceIndex of each space (`vectors=` of Catalog.open)."""

    name: str  # "faiss", "milvus"

    def open_space(self, source: VectorSource, *, index_type: str, options: IndexOptions,
                   readonly: bool) -> SpaceIndex:
        """The space's index as it stands (possibly stale: the catalogue catches it up)."""
    def build_space(self, source: VectorSource, *, index_type: str, options: IndexOptions) -> SpaceIndex:
        """A fresh index holding every vector of the space in the store (rebuild)."""
    def close(self) -> None: ...
