"""Fixtures for the catalogue tests: real SQLite and FAISS in temporary directories, small dimensions, and the
same tests again on a real PostgreSQL server (a throwaway cluster started once per session), with FAISS and
with a real Milvus server (tests/servers/milvus.py) as the vector index."""

from __future__ import annotations

import sys
import uuid
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

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
from servers.postgres import PostgresServer  # noqa: E402


@pytest.fixture
def clusters() -> Clusters:
    return Clusters()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session (stopped and removed even when tests fail)."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.remove()


# The catalogue suite proper (test_catalog.py) runs on PostgreSQL+Milvus too; test_milvus.py tests the Milvus
# index itself, and the filter and import tests test the stores (sqlite and postgresql cover them: the vector
# index only sees the resulting allowed ids and vectors). A Milvus catalogue costs ~8 s to create and drop
# here, so running those tests a third time would add minutes to CI and nothing to what is shown.
MILVUS_MODULES = {"test_catalog"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on a store runs on SQLite+FAISS and PostgreSQL+FAISS; the catalogue suite's tests (they use
    `vectors`, in MILVUS_MODULES) also on PostgreSQL+Milvus, the scale-out pair. (SQLite+Milvus works too; it adds nothing the
    three do not cover.)"""
    if "store" in metafunc.fixturenames:
        pairs = ["sqlite+faiss", "postgresql+faiss"]
        if "vectors" in metafunc.fixturenames and metafunc.module.__name__.rsplit(".", 1)[-1] in MILVUS_MODULES:
            pairs.append("postgresql+milvus")
        metafunc.parametrize("backend", pairs, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """"store+vectors", parametrised by pytest_generate_tests."""
    return request.param


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The catalogue's store: "sqlite" (in the catalogue directory) or a DSN naming a fresh PostgreSQL schema."""
    if backend.startswith("sqlite"):
        yield "sqlite"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    dsn = server.create_schema()
    try:
        yield dsn
    finally:
        server.drop_schema(dsn)


@pytest.fixture
def vectors(backend: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The catalogue's vector index: "faiss" (files in the catalogue directory) or this test's own collections
    on the session's Milvus server (dropped afterwards)."""
    if backend.endswith("faiss"):
        yield "faiss"
        return
    from index.milvus import MilvusSpaceIndex

    server = request.getfixturevalue("milvus_server")
    uri = f"{server.uri}/t{uuid.uuid4().hex[:12]}"
    try:
        yield uri
    finally:
        for space, dim in SPACES.items():
            MilvusSpaceIndex(uri, space=space, dim=dim).drop()


@pytest.fixture
def open_catalog(store: str, vectors: str) -> Callable[..., Catalog]:
    """`Catalog(path, **kw)` on this test's store and vector index (with PostgreSQL, `path` holds only the
    FAISS cache, if any)."""
    return partial(Catalog, store=store, vectors=vectors)


@pytest.fixture
def catalog(tmp_path: Path, open_catalog: Callable[..., Catalog]) -> Iterator[Catalog]:
    with open_catalog(tmp_path / "cat", spaces=SPACES) as cat:
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
