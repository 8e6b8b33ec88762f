"""MilvusSpaceIndex against a real Milvus server: exactness against numpy, deletes, filters, ids, reopen,
an approximate index past train_min, and an unreachable or hung server (StoreUnavailableError)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from index import milvus as milvus_mod
from index._util import brute_force
from index.errors import InvalidArgumentError, StoreUnavailableError
from index.milvus import MilvusSpaceIndex, parse_uri
from index.types import IndexOptions

DIM = 16


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def kinds_for(ids: np.ndarray) -> list[str]:
    return ["video" if i % 3 else "audio" for i in ids.tolist()]


@pytest.fixture
def open_index(milvus_server) -> Iterator:
    """`open_index(**kw)` opens a space of a catalogue unique to this test; every collection is dropped after."""
    catalog = f"t{uuid.uuid4().hex[:12]}"
    opened: list[MilvusSpaceIndex] = []

    def open_(**kw) -> MilvusSpaceIndex:
        kw = {"space": "va", "dim": DIM, **kw}
        vi = MilvusSpaceIndex(f"{milvus_server.uri}/{kw.pop('catalog', catalog)}", **kw)
        opened.append(vi)
        return vi

    yield open_
    for name in {vi.name: vi for vi in opened}.values():
        name.drop()


@pytest.fixture
def filled(open_index) -> tuple[MilvusSpaceIndex, np.ndarray, np.ndarray]:
    ids = np.arange(100, 400, dtype=np.int64)
    x = unit(len(ids), 0)
    vi = open_index()
    vi.add(ids, x, items=[f"item{i // 10}" for i in ids.tolist()], kinds=kinds_for(ids))
    return vi, ids, x


def test_search_is_exact_with_flat(filled) -> None:
    vi, ids, x = filled
    q = unit(5, 1)
    d, i = vi.search(q, 10)
    want_d, want_i = brute_force(q, x, ids, 10)
    assert (i == want_i).all()
    np.testing.assert_allclose(d, want_d, atol=1e-5)
    assert vi.live == len(ids) and vi.structure == "flat"
    assert (vi.ids() == ids).all()
    d, i = vi.search(x[:3], 1)  # a stored vector finds itself, score 1
    assert i[:, 0].tolist() == ids[:3].tolist()
    np.testing.assert_allclose(d[:, 0], 1.0, atol=1e-5)


def test_flat_stays_exact_past_interim_index_sizes(open_index) -> None:
    """Milvus builds an approximate interim index on growing segments past ~1k rows; FLAT must not be
    approximated by it (3000 rows, unflushed)."""
    vi = open_index(space="vx")
    ids = np.arange(3000, dtype=np.int64)
    x = unit(len(ids), 10)
    vi.add(ids, x, items=["a"] * len(ids), kinds=["video"] * len(ids))
    q = unit(20, 11)
    _, i = vi.search(q, 10)
    assert (i == brute_force(q, x, ids, 10)[1]).all()


def test_k_beyond_the_collection_is_padded(filled) -> None:
    vi, ids, _ = filled
    d, i = vi.search(unit(2, 2), len(ids) + 5)
    assert (i[:, :len(ids)] >= 0).all() and (i[:, len(ids):] == -1).all()
    assert np.isneginf(d[:, len(ids):]).all()


def test_remove(filled) -> None:
    vi, ids, x = filled
    gone = ids[::2]
    vi.remove(gone)
    keep = ids[1::2]
    assert vi.live == len(keep) and (vi.ids() == keep).all()
    q = unit(4, 3)
    d, i = vi.search(q, 10)
    assert (i == brute_force(q, x[1::2], keep, 10)[1]).all()
    vi.remove(gone)  # removing what is not there is a no-op
    vi.remove(np.empty(0, np.int64))
    assert vi.live == len(keep)


def test_add_again_replaces(filled) -> None:
    """Catching up may re-add ids the collection already has: no duplicates, the new vector wins."""
    vi, ids, x = filled
    vi.add(ids[:5], x[5:10], items=["other"] * 5, kinds=["text"] * 5)
    assert vi.live == len(ids)
    _, i = vi.search(x[5:6], 2)
    assert set(i[0].tolist()) == {ids[0], ids[5]}  # ids[0] now holds x[5] as well


@pytest.mark.parametrize("chunk", [None, 7])
def test_allowed_ids_and_kinds(filled, monkeypatch, chunk) -> None:
    """`allowed` is exact whether it fits one `id in [...]` or is split in chunks (here of 7) and merged."""
    vi, ids, x = filled
    if chunk:
        monkeypatch.setattr(milvus_mod, "MAX_TOPK", chunk)
    rng = np.random.default_rng(4)
    allowed = np.sort(rng.choice(ids, 40, replace=False))
    q = unit(3, 5)
    _, i = vi.search(q, 5, allowed=allowed)
    sel = np.isin(ids, allowed)
    assert (i == brute_force(q, x[sel], ids[sel], 5)[1]).all()

    audio = np.array([k == "audio" for k in kinds_for(ids)])
    _, i = vi.search(q, 5, kinds=["audio"])
    assert (i == brute_force(q, x[audio], ids[audio], 5)[1]).all()
    _, i = vi.search(q, 5, allowed=allowed, kinds=["audio"])
    both = sel & audio
    want = brute_force(q, x[both], ids[both], 5)[1]
    assert (i == want).all()


def test_empty_filters_and_empty_index(open_index, filled) -> None:
    vi, ids, _ = filled
    q = unit(2, 6)
    for kw in ({"allowed": np.empty(0, np.int64)}, {"kinds": []}, {"kinds": ["text"]}):
        d, i = vi.search(q, 3, **kw)
        assert (i == -1).all() and np.isneginf(d).all()
    empty = open_index(space="vt")
    assert empty.live == 0 and len(empty.ids()) == 0
    assert (empty.search(q, 3)[1] == -1).all()


def test_reopen_and_catalogues_share_a_server(open_index, filled) -> None:
    vi, ids, x = filled
    again = open_index()  # same catalogue and space: the same collection, as another replica sees it
    assert again.name == vi.name and again.live == len(ids)
    q = unit(2, 7)
    assert (again.search(q, 5)[1] == vi.search(q, 5)[1]).all()
    vi.remove(ids[:1])  # a write through one handle is seen by the other at once (Strong)
    assert again.live == len(ids) - 1
    other = open_index(catalog=f"o{uuid.uuid4().hex[:8]}")
    assert other.name != vi.name and other.live == 0
    with pytest.raises(InvalidArgumentError, match="16-d"):
        open_index(dim=DIM * 2)


def test_hnsw_from_the_start_ivf_past_train_min(open_index) -> None:
    """hnsw is HNSW at once (as with FAISS); ivfpq is FLAT (exact) until train_min, then IVF_FLAT, switched
    once; both still find a stored vector."""
    vh = open_index(space="vh", index_type="hnsw", options=IndexOptions(hnsw_m=8))
    assert vh.structure == "hnsw" and vh.approximate and not vh.exact_in_memory
    vi = open_index(space="vi", index_type="ivfpq", options=IndexOptions(train_min=400, nlist=8))
    ids = np.arange(600, dtype=np.int64)
    x = unit(len(ids), 8)
    vi.add(ids[:300], x[:300], items=["a"] * 300, kinds=["video"] * 300)
    assert vi.structure == "flat" and not vi.approximate and vi.exact_in_memory
    vi.add(ids[300:], x[300:], items=["b"] * 300, kinds=["video"] * 300)
    assert vi.structure == "ivfpq" and vi.live == 600
    assert vi.exact(x[:1], 1) is None  # no brute force on an IVF collection: the catalogue uses the store
    for v in (vh, vi):
        if v is vh:
            v.add(ids, x, items=["a"] * 600, kinds=["video"] * 600)
        _, i = v.search(x[::50], 1)
        assert i[:, 0].tolist() == ids[::50].tolist()


def test_uri() -> None:
    assert parse_uri("milvus://db.example:1234/lib_2") == ("db.example", 1234, "lib_2")
    assert parse_uri("milvus://127.0.0.1") == ("127.0.0.1", 19530, "vatt")
    for bad in ("http://x:1", "milvus://x:1/a-b", "milvus:///name"):
        with pytest.raises(InvalidArgumentError, match="milvus://host:port"):
            parse_uri(bad)


def test_nothing_listening_is_unavailable() -> None:
    from servers.milvus import free_ports

    with pytest.raises(StoreUnavailableError, match="unavailable"):
        MilvusSpaceIndex(f"milvus://127.0.0.1:{free_ports(1)[0]}", space="va", dim=DIM, timeout=2)


def test_hung_server_then_back(milvus_server, open_index) -> None:
    """A server that answers nothing (SIGSTOP) → StoreUnavailableError within the handle's timeout;
    once it answers again the same handle works, with nothing lost."""
    vi = open_index(space="vd", timeout=2)
    ids = np.arange(50, dtype=np.int64)
    x = unit(50, 9)
    vi.add(ids, x, items=["a"] * 50, kinds=["video"] * 50)
    milvus_server.pause()
    try:
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            vi.search(x[:1], 1)
    finally:
        milvus_server.resume()
    _, i = vi.search(x[:1], 1)
    assert i[0, 0] == 0 and vi.live == 50
