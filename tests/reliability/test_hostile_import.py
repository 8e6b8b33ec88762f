"""Hostile shards through `vatt index import`: each bad shard is one line on stderr, nothing of it is
imported, the good shards are, and no traceback reaches the operator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from server_proc import vatt

from index import Catalog
from index._validate import MAX_METADATA_BYTES, MAX_SOURCE_CHARS
from index.shards import ShardItem, ShardManifest, write_shard

SPACES = {"va": 8, "vt": 4}
MODEL = {"name": "tiny", "config_hash": "c" * 64}


def _items(prefix: str, n: int = 3, spaces: dict[str, int] = SPACES) -> list[ShardItem]:
    rng = np.random.default_rng(len(prefix))
    out = []
    for k in range(n):
        vectors = {s: rng.standard_normal((2, d)).astype(np.float32) for s, d in spaces.items()}
        out.append(ShardItem(key=hashlib.sha256(f"{prefix}{k}".encode()).hexdigest(), source=f"{prefix}{k}.mp4",
                             kind="video", duration=6.4, metadata={"shard": prefix, "k": k}, starts=[0.0, 3.2],
                             ends=[3.2, 6.4], vectors=vectors))
    return out


def _shard(directory: Path, name: str, items: list[ShardItem], spaces: dict[str, int] = SPACES) -> Path:
    return write_shard(directory, ShardManifest(name=name, model=MODEL, spaces=spaces), items)


def _rewrite(parquet: Path, column: str, values: list, type_: pa.DataType) -> None:
    table = pq.read_table(parquet)
    i = table.column_names.index(column)
    pq.write_table(table.set_column(i, pa.field(column, type_), pa.array(values, type_)), parquet)


def _bad_metadata(directory: Path, name: str, text: str) -> None:
    parquet = _shard(directory, name, _items(name, 1))
    _rewrite(parquet, "metadata", [text] * 2, pa.string())


def test_bad_shards_are_one_line_each_and_import_nothing(tmp_path: Path) -> None:
    shards, cat = tmp_path / "shards", tmp_path / "cat"
    good = _items("good")
    _shard(shards, "a_good", good)
    # a vector column of the wrong width: written for va=9, listed with the others' manifest
    wide = _shard(tmp_path / "other", "x", _items("wide", spaces={"va": 9, "vt": 4}), {"va": 9, "vt": 4})
    wide.rename(shards / "b_width.parquet")
    (shards / "b_width.json").write_text(json.dumps({**ShardManifest(name="b_width", model=MODEL, spaces=SPACES)
                                                     .to_dict(), "rows": 6}))
    _bad_metadata(shards, "c_not_json", "{'single': quotes}")
    _bad_metadata(shards, "d_deep_100k", "[" * 100_000 + "]" * 100_000)
    _bad_metadata(shards, "e_deep_10k", '{"a":' * 10_000 + "1" + "}" * 10_000)  # under the byte limit
    _bad_metadata(shards, "f_surrogate", '{"s": "\\ud800"}')
    _bad_metadata(shards, "g_nul", '{"s": "a\\u0000b"}')
    big = _shard(shards, "h_source_20mb", _items("big", 1))
    _rewrite(big, "source", ["x" * 20_000_000] * 2, pa.string())
    typed = _shard(shards, "i_start_text", _items("typed", 1))
    _rewrite(typed, "start", ["0", "3.2"], pa.string())
    bad_names = ["b_width", "c_not_json", "d_deep_100k", "e_deep_10k", "f_surrogate", "g_nul", "h_source_20mb",
                 "i_start_text"]

    r = vatt("index", "import", str(shards), "--catalog", str(cat))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout, r.stderr[-3000:]
    lines = r.stderr.splitlines()
    assert [line.split()[3].rstrip(":") for line in lines] == bad_names, r.stderr[-3000:]  # vatt: error: shard NAME:
    why = dict(zip(bad_names, lines))
    assert "width 9" in why["b_width"] and "8 float32 values per row (the model's va dimension)" in why["b_width"]
    assert "not valid JSON" in why["c_not_json"]
    assert f"limit is {MAX_METADATA_BYTES}" in why["d_deep_100k"]
    assert "nested too deep" in why["e_deep_10k"]
    assert "lone surrogate" in why["f_surrogate"] and "NUL" in why["g_nul"]
    assert f"source is 20000000 characters; the limit is {MAX_SOURCE_CHARS}" in why["h_source_20mb"]
    assert "'start' is string" in why["i_start_text"]
    assert all(len(line) < 600 for line in lines)  # one readable line, not the 20 MB value
    assert "imported 1 shards" in r.stdout and "3 new items" in r.stdout, r.stdout

    with Catalog(cat) as c:
        assert c.count() == len(good)
        assert {i.sha256 for i in c.list_items(limit=100)} == {it.key for it in good}
        assert c.check().ok
