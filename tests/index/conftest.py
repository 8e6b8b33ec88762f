"""Fixtures for the catalogue tests: real SQLite and FAISS in temporary directories, small dimensions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
# tests/ is on sys.path (tests/conftest.py), so tests/index could shadow the real `index` package as a
# namespace package when pytest runs without the repo root on sys.path: put the root first.
for p in (str(HERE), str(HERE.parents[1])):
    if p in sys.path:
        sys.path.remove(p)
    sys.path.insert(0, p)

from index import Catalog  # noqa: E402
from index_helpers import SPACES, Clusters  # noqa: E402


@pytest.fixture
def clusters() -> Clusters:
    return Clusters()


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog(tmp_path / "cat", spaces=SPACES) as cat:
        yield cat


@pytest.fixture(autouse=True, scope="session")
def _single_faiss_thread() -> Iterator[None]:
    """The test machine is shared: OpenMP barriers with 2 threads on a busy CPU are several times slower
    than 1 thread (FAISS k-means especially). Restored afterwards."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
