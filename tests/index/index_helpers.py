"""Helpers shared by the catalogue tests (imported as `index_helpers`; tests/index is on sys.path)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from index import Catalog, Item

SPACES = {"va": 32, "vt": 16}


def sha(n: Any) -> str:
    """A distinct, valid sha256 per key."""
    return hashlib.sha256(str(n).encode()).hexdigest()


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class Clusters:
    """Vectors drawn around a few Gaussian centres (realistic for approximate indexes)."""

    def __init__(self, seed: int = 0, n_centres: int = 20) -> None:
        self.rng = np.random.default_rng(seed)
        self.centres = {d: self.rng.standard_normal((n_centres, d)) for d in SPACES.values()}

    def __call__(self, n: int, dim: int, noise: float = 0.4) -> np.ndarray:
        c = self.centres[dim][self.rng.integers(0, len(self.centres[dim]), n)]
        return unit(c + noise * self.rng.standard_normal((n, dim)))


def add_video(cat: Catalog, key: Any, n: int, gen: Clusters, *, metadata: dict | None = None,
              kind: str = "video", spaces: tuple[str, ...] = ("va", "vt")) -> Item:
    """Add an item with n 3.2 s segments and clustered vectors in the given spaces."""
    segs = [[3.2 * i, 3.2 * (i + 1)] for i in range(n)]
    return cat.add_item(kind=kind, source=f"{key}.mp4", sha256=sha(key), segments=segs, duration=3.2 * n,
                        vectors={s: gen(n, SPACES[s]) for s in spaces}, metadata=metadata)
