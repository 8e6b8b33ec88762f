"""Metadata filters: the SQL they compile to, what they select, and filtered search returning k items."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from index_helpers import SPACES, Clusters, add_video

from index import Catalog, FilterError
from index.filters import compile_where

META = [
    {"year": 1995, "lang": "en", "tags": ["cat", "dog"], "author": {"name": "ann"}},
    {"year": 2001, "lang": "fr", "tags": ["dog"], "rating": 4.5},
    {"year": 2005, "lang": "en", "tags": [], "flag": True},
    {"year": 2009, "lang": "de", "author": {"name": "bob"}, "flag": False},
    {"year": 2010, "lang": "en", "tags": ["cat"]},
    {"lang": "en", "note": None},
]


@pytest.fixture
def filled(catalog: Catalog, clusters: Clusters) -> tuple[Catalog, list[str]]:
    ids = [add_video(catalog, i, 2, clusters, metadata=m).id for i, m in enumerate(META)]
    ids.append(add_video(catalog, "audio", 2, clusters, kind="audio", spaces=("va",),
                         metadata={"year": 2003, "lang": "en"}).id)
    return catalog, ids


@pytest.mark.parametrize("where, expected", [
    ({"lang": "en"}, [0, 2, 4, 5, 6]),
    ({"year": {"gte": 2000, "lt": 2010}}, [1, 2, 3, 6]),
    ({"year": {"gt": 2005}}, [3, 4]),
    ({"year": {"lte": 1995}}, [0]),
    ({"lang": {"in": ["fr", "de"]}}, [1, 3]),
    ({"lang": {"nin": ["en"]}}, [1, 3]),
    ({"year": {"nin": [2001]}}, [0, 2, 3, 4, 5, 6]),  # a missing field is "not in"
    ({"lang": {"in": []}}, []),
    ({"tags": {"contains": "cat"}}, [0, 4]),
    ({"rating": {"exists": True}}, [1]),
    ({"year": {"exists": False}}, [5]),
    ({"note": None}, [0, 1, 2, 3, 4, 5, 6]),  # null and missing are alike
    ({"author.name": "bob"}, [3]),
    ({"flag": True}, [2]),
    ({"flag": {"ne": True}}, [0, 1, 3, 4, 5, 6]),
    ({"lang": "en", "year": {"gte": 2003}}, [2, 4, 6]),
])
def test_filters_select_the_right_items(filled: tuple[Catalog, list[str]], where: dict, expected: list[int]) -> None:
    cat, ids = filled
    assert {it.id for it in cat.list_items(where=where)} == {ids[i] for i in expected}
    assert cat.count(where=where) == len(expected)
    # the same filter inside search (va holds every item)
    hits = cat.search("va", np.ones(32), k=20, where=where)
    assert {h.item.id for h in hits} == {ids[i] for i in expected}


def test_kinds_filter(filled: tuple[Catalog, list[str]]) -> None:
    cat, ids = filled
    assert [h.item.id for h in cat.search("va", np.ones(32), k=20, kinds="audio")] == [ids[6]]
    assert len(cat.search("va", np.ones(32), k=20, kinds=["video", "text"])) == 6
    assert cat.search("vt", np.ones(16), k=20, kinds="audio") == []  # audio has no vt


def test_values_are_parameters_not_sql() -> None:
    sql, params = compile_where({"lang": "en' OR 1=1 --", "year": {"in": [1, 2]}})
    assert "OR 1=1" not in sql and "en' OR 1=1 --" in params
    assert sql.count("?") == len(params)
    with pytest.raises(FilterError, match="bad filter field"):
        compile_where({"a') OR 1=1 --": 1})


@pytest.mark.parametrize("where, message", [
    ({"year": {"between": [1, 2]}}, "unknown filter operator 'between' for 'year'; accepted: eq, ne, gt, gte"),
    ({"year": {"gte": [2000]}}, "operator 'gte' takes a number or a string, got list"),
    ({"year": {"gt": True}}, "operator 'gt' takes a number or a string, got bool"),
    ({"tag": {"in": "abc"}}, "operator 'in' takes a list of values, got str"),
    ({"tag": {}}, "empty operator dict"),
    ({"tag": ["a"]}, "expected a value or an operator dict"),
    ({"9lives": 1}, "bad filter field '9lives'"),
    ({"x": {"exists": 1}}, "operator 'exists' takes true or false"),
    (["year"], "`where` must be a dict"),
])
def test_bad_filters_say_what_is_accepted(where: object, message: str) -> None:
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_where(where)  # type: ignore[arg-type]


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivfpq"])
def test_selective_filter_still_returns_k_items(open_catalog: Callable[..., Catalog],
                                                tmp_path: Path, index_type: str) -> None:
    gen = Clusters(seed=11)
    opts = {"train_min": 800} if index_type == "ivfpq" else {}
    with open_catalog(tmp_path / "cat", spaces=SPACES, index_type=index_type, index_options=opts) as cat:
        for i in range(300):
            add_video(cat, i, 4, gen, metadata={"group": i % 50, "half": i % 2}, spaces=("va",))
        assert cat.stats()["spaces"]["va"]["structure"] == index_type
        q = gen(1, 32)[0]
        for where, n_match in [({"group": 7}, 6), ({"half": 1}, 150)]:
            assert cat.count(where=where) == n_match
            hits = cat.search("va", q, k=5, where=where)
            assert len(hits) == 5, where
            key, val = next(iter(where.items()))
            assert all(h.item.metadata[key] == val for h in hits)
            exact = cat.search("va", q, k=5, where=where, exact=True)
            assert len(exact) == 5 and exact[0].item.id == hits[0].item.id
        assert len(cat.search("va", q, k=10, where={"group": 7})) == 6  # fewer match than k: all of them
        assert cat.search("va", q, k=10, where={"group": 99}) == []


@pytest.mark.parametrize("index_type", ["hnsw", "ivfpq"])
def test_filtered_approximate_path_widens_then_falls_back_to_exact(open_catalog: Callable[..., Catalog],
                                                                   tmp_path: Path, index_type: str) -> None:
    gen = Clusters(seed=12)
    # exact_below=1: the selector path even for tiny allowed sets (normally they go straight to exact search)
    opts = {"train_min": 800, "nprobe": 1, "exact_below": 1} if index_type == "ivfpq" else \
        {"ef_search": 16, "exact_below": 1}
    with open_catalog(tmp_path / "cat", spaces=SPACES, index_type=index_type, index_options=opts) as cat:
        for i in range(300):
            add_video(cat, i, 4, gen, metadata={"group": i % 100}, spaces=("va",))
        assert cat.stats()["spaces"]["va"]["structure"] == index_type
        for q in gen(5, 32):
            hits = cat.search("va", q, k=3, moments=1, where={"group": 42})
            exact = cat.search("va", q, k=3, moments=1, where={"group": 42}, exact=True)
            assert len(hits) == 3 and all(h.item.metadata["group"] == 42 for h in hits)
            assert {h.item.id for h in hits} == {h.item.id for h in exact}


MIXED = [{"v": 5}, {"v": "abc"}, {"v": True}, {"v": 1}, {"v": 2.5}, {"v": None}, {}, {"v": [1, "x"]},
         {"v": {"w": 1}}, {"v": "5"}, {"v": False}, {"v": 0}]


@pytest.mark.parametrize("where, expected", [
    ({"v": {"gt": 3}}, [0]),  # numbers compare with numbers only: not "abc", arrays or objects
    ({"v": {"lt": 3}}, [3, 4, 11]),  # … and never with true/false
    ({"v": {"gt": 0.5}}, [0, 3, 4]),
    ({"v": {"gte": "a"}}, [1]),  # strings with strings
    ({"v": {"lt": "z"}}, [1, 9]),
    ({"v": 1}, [3]), ({"v": True}, [2]), ({"v": 0}, [11]), ({"v": False}, [10]),  # 1 is not true, 0 not false
    ({"v": "5"}, [9]), ({"v": 5}, [0]), ({"v": 2.5}, [4]),
    ({"v": {"ne": 1}}, [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]),
    ({"v": {"in": [1, "abc"]}}, [1, 3]),
    ({"v": {"nin": [1]}}, [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]),
    ({"v": {"contains": 1}}, [7]), ({"v": {"contains": "x"}}, [7]), ({"v": {"contains": True}}, []),
    ({"v": {"exists": True}}, [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]), ({"v": None}, [5, 6]), ({"v.w": 1}, [8]),
])
def test_mixed_types_give_the_same_answers_on_every_store(catalog: Catalog, where: dict, expected: list[int]) -> None:
    ids = [add_video(catalog, f"m{i}", 1, Clusters(seed=i), metadata=m).id for i, m in enumerate(MIXED)]
    assert sorted(ids.index(it.id) for it in catalog.list_items(where=where)) == expected


@pytest.mark.parametrize("where, expected", [
    ({"$or": [{"lang": "fr"}, {"year": {"gte": 2009}}]}, [1, 3, 4]),
    ({"$not": {"lang": "en"}}, [1, 3]),
    ({"$not": {"year": {"gte": 2005}}}, [0, 1, 5, 6]),  # a missing year is not >= 2005: NOT gives true
    ({"$not": {"tags": {"contains": "cat"}}}, [1, 2, 3, 5, 6]),
    ({"lang": "en", "$or": [{"flag": True}, {"tags": {"contains": "cat"}}]}, [0, 2, 4]),
    ({"$and": [{"$or": [{"lang": "en"}, {"lang": "de"}]}, {"$or": [{"year": {"lt": 2000}}, {"year": 2009}]}]},
     [0, 3]),
    ({"$not": {"$or": [{"lang": "en"}, {"author.name": {"exists": True}}]}}, [1]),
    ({"$not": {"$not": {"rating": {"exists": True}}}}, [1]),
])
def test_boolean_groups_select_the_right_items(filled: tuple[Catalog, list[str]], where: dict,
                                               expected: list[int]) -> None:
    cat, ids = filled
    assert {it.id for it in cat.list_items(where=where)} == {ids[i] for i in expected}
    assert cat.count(where=where) == len(expected)
    hits = cat.search("va", np.ones(32), k=20, where=where)
    assert {h.item.id for h in hits} == {ids[i] for i in expected}


def _nest(depth: int) -> dict:
    where: dict = {"lang": "en"}
    for _ in range(depth):
        where = {"$not": where}
    return where


@pytest.mark.parametrize("where, message", [
    ({"$xor": [{"a": 1}]}, "unknown filter group '$xor'; accepted: $and, $or, $not (field names cannot start"),
    ({"$or": []}, "`where` $or takes a non-empty list of filters, got an empty list"),
    ({"$and": {"a": 1}}, "`where` $and takes a non-empty list of filters, got dict"),
    ({"$not": [{"a": 1}]}, "`where` must be a dict"),
    (_nest(9), "deeper than 8 levels; the limit is 8"),
    ({"$or": [{"a": i} for i in range(65)]}, "more than 64 conditions; the limit is 64"),
    ({"$or": [{"$and": [{"a": i} for i in range(40)]}, {"$not": {"b": {"in": [1], "ne": 2}}}, {"x": 1},
              {"$and": [{"a": i} for i in range(22)]}]}, "more than 64 conditions"),
])
def test_bad_groups_say_what_is_accepted(where: object, message: str) -> None:
    with pytest.raises(FilterError, match=re.escape(message)):
        compile_where(where)  # type: ignore[arg-type]
    with pytest.raises(FilterError, match=re.escape(message)):
        compile_where(where, dialect="postgresql")  # type: ignore[arg-type]


def test_deepest_allowed_nesting_compiles() -> None:
    sql, params = compile_where(_nest(8))
    assert sql.count("NOT COALESCE") == 8 and sql.count("?") == len(params)


# ---- a Python evaluation of the grammar: the oracle for random filters on random items ----

def _typed_eq(a: object, b: object) -> bool:
    """JSON equality as the stores see it: numbers with numbers (not booleans), strings, booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return isinstance(a, str) and isinstance(b, str) and a == b


def _ordered(a: object, b: object) -> bool:
    num = (int, float)
    return (isinstance(a, num) and not isinstance(a, bool) and isinstance(b, num) and not isinstance(b, bool)) \
        or (isinstance(a, str) and isinstance(b, str))


def _op(meta: dict, field: str, op: str, v: object) -> bool:
    x = meta.get(field)
    if op in ("eq", "ne"):
        hit = x is None if v is None else _typed_eq(x, v)
        return hit if op == "eq" else not hit
    if op in ("gt", "gte", "lt", "lte"):
        if not _ordered(x, v):
            return False
        return {"gt": x > v, "gte": x >= v, "lt": x < v, "lte": x <= v}[op]  # type: ignore[operator]
    if op in ("in", "nin"):
        hit = any(_typed_eq(x, e) for e in v)  # type: ignore[union-attr]
        return hit if op == "in" else not hit
    if op == "contains":
        return isinstance(x, list) and any(_typed_eq(e, v) for e in x)
    assert op == "exists"
    return (x is not None) == v


def _evaluate(where: dict, meta: dict) -> bool:
    for key, spec in where.items():
        if key == "$or":
            ok = any(_evaluate(w, meta) for w in spec)
        elif key == "$and":
            ok = all(_evaluate(w, meta) for w in spec)
        elif key == "$not":
            ok = not _evaluate(spec, meta)
        elif isinstance(spec, dict):
            ok = all(_op(meta, key, op, v) for op, v in spec.items())
        else:
            ok = _op(meta, key, "eq", spec)
        if not ok:
            return False
    return True


def _random_meta(rng: random.Random) -> dict:
    meta: dict = {}
    if rng.random() < 0.85:
        meta["lang"] = rng.choice(["en", "fr", "de", "es"])
    if rng.random() < 0.8:
        meta["year"] = rng.choice([rng.randint(1990, 2025), float(rng.randint(1990, 2025)), None, "2001"])
    if rng.random() < 0.7:
        meta["tags"] = rng.sample(["cat", "dog", "x", "y"], rng.randint(0, 3))
    if rng.random() < 0.5:
        meta["flag"] = rng.choice([True, False, 1, 0])
    return meta


def _random_leaf(rng: random.Random) -> dict:
    kind = rng.randrange(7)
    if kind == 0:
        return {"lang": rng.choice(["en", "fr", "de", None])}
    if kind == 1:
        return {"year": {rng.choice(["gt", "gte", "lt", "lte"]): rng.randint(1990, 2025)}}
    if kind == 2:
        return {"lang": {rng.choice(["in", "nin"]): rng.sample(["en", "fr", "de", "es"], rng.randint(0, 2))}}
    if kind == 3:
        return {"tags": {"contains": rng.choice(["cat", "dog", "x"])}}
    if kind == 4:
        return {"flag": rng.choice([True, False, 1, {"ne": True}, {"exists": True}])}
    if kind == 5:
        return {"year": {"exists": rng.choice([True, False])}}
    return {"year": {"ne": rng.randint(1990, 2025)}, "lang": {"ne": "en"}}


def _random_where(rng: random.Random, depth: int = 0) -> dict:
    if depth >= 3 or rng.random() < 0.3:
        return _random_leaf(rng)
    group = rng.choice(["$or", "$and", "$not", "$or", "$not"])
    if group == "$not":
        return {"$not": _random_where(rng, depth + 1)}
    where = {group: [_random_where(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if rng.random() < 0.3:
        where.update(_random_leaf(rng))  # a group beside plain fields, ANDed
    return where


def test_random_or_not_filters_equal_a_python_evaluation(catalog: Catalog) -> None:
    """200 random items, 60 random nested filters: the store selects exactly what the Python oracle selects."""
    rng = random.Random(26)
    metas = [_random_meta(rng) for _ in range(200)]
    gen = Clusters(seed=26)
    ids = [add_video(catalog, f"r{i}", 1, gen, metadata=m, spaces=("va",)).id for i, m in enumerate(metas)]
    tried = {"nonempty": 0, "partial": 0}
    for _ in range(60):
        where = _random_where(rng)
        expected = {ids[i] for i, m in enumerate(metas) if _evaluate(where, m)}
        assert {it.id for it in catalog.list_items(where=where, limit=1000)} == expected, where
        assert catalog.count(where=where) == len(expected), where
        tried["nonempty"] += bool(expected)
        tried["partial"] += 0 < len(expected) < len(ids)
    assert tried["partial"] >= 20  # the random filters really discriminate
