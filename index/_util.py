"""Small shared pieces: a readers/writer lock, input normalisation and numpy brute force."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from .errors import InvalidArgumentError


class RWLock:
    """Many concurrent searches or one mutation; waiting writers block new readers (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def normalize(x: Any, dim: int, what: str) -> np.ndarray:
    """float32 C-contiguous [n, dim] with unit rows; a 1-D vector becomes [1, dim]."""
    try:
        a = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"{what}: expected a float array [n, {dim}], got {type(x).__name__}") from e
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != dim:
        raise InvalidArgumentError(f"{what}: wrong vector shape {list(np.shape(x))}; accepted: [{dim}] or [n, {dim}]")
    if not np.isfinite(a).all():
        raise InvalidArgumentError(f"{what}: vectors contain NaN or infinity; accepted: finite values")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidArgumentError(f"{what}: zero vector cannot be normalised; accepted: non-zero vectors")
    return np.ascontiguousarray(a / norms, dtype=np.float32)


def brute_force(q: np.ndarray, x: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product with numpy (used for subsets and the ivfpq exact path)."""
    n = len(ids)
    k_eff = min(k, n)
    d = np.full((len(q), k), -np.inf, np.float32)
    out = np.full((len(q), k), -1, np.int64)
    if k_eff == 0:
        return d, out
    s = q @ x.T
    top = np.argpartition(-s, k_eff - 1, axis=1)[:, :k_eff] if k_eff < n else np.tile(np.arange(n), (len(q), 1))
    part = np.take_along_axis(s, top, 1)
    order = np.argsort(-part, axis=1, kind="stable")
    d[:, :k_eff] = np.take_along_axis(part, order, 1)
    out[:, :k_eff] = ids[np.take_along_axis(top, order, 1)]
    return d, out
