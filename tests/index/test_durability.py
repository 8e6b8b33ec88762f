"""A writer SIGKILLed in the middle of a stream of adds leaves a catalogue that opens, passes check(),
and holds every item whose add_item had returned — on SQLite and on PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from index import Catalog

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    from index import Catalog

    path, index_type, flush, store = sys.argv[1:5]
    rng = np.random.default_rng(0)
    cat = Catalog(path, spaces={"va": 32, "vt": 16}, index_type=index_type,
                  flush_every=None if flush == "never" else 1, store=store)
    i = 0
    while True:
        n = int(rng.integers(1, 6))
        item = cat.add_item(kind="video", source=f"{i}.mp4", sha256=hashlib.sha256(str(i).encode()).hexdigest(),
                            segments=[[j, j + 1.0] for j in range(n)],
                            vectors={"va": rng.standard_normal((n, 32)), "vt": rng.standard_normal((n, 16))},
                            metadata={"i": i})
        if i % 3 == 0:
            cat.update_metadata(item.id, {"seen": True})
        if i % 7 == 6:
            cat.delete_item(item.id)  # deletions are in the stream too; announced as such
            print("deleted", item.id, flush=True)
        else:
            print("added", item.id, flush=True)
        if flush == "always":
            cat.flush()  # a FAISS file is being written most of the time: the kill often lands inside one
        i += 1
""")


@pytest.mark.parametrize("index_type, flush", [("flat", "always"), ("hnsw", "always"), ("hnsw", "never"),
                                               ("flat", "auto")])
def test_sigkill_mid_stream_loses_nothing_returned(tmp_path: Path, index_type: str, flush: str, store: str) -> None:
    path = tmp_path / "cat"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), index_type, flush, store], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    added: list[str] = []
    deleted: list[str] = []
    try:
        assert child.stdout is not None
        while len(added) + len(deleted) < 60:
            line = child.stdout.readline()
            assert line, f"child exited early: {child.stderr.read() if child.stderr else ''}"
            what, item_id = line.split()
            (added if what == "added" else deleted).append(item_id)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    with Catalog(path, store=store) as cat:
        report = cat.check()
        assert report.ok, report.problems
        ids = {it.id for it in cat.list_items(limit=10_000)}
        assert set(added) <= ids  # every returned add survived …
        assert not set(deleted) & ids  # … and every returned delete too
        for item_id in added[::5]:
            segs, x = cat.item_vectors(item_id, "va")
            assert cat.search("va", x[0], k=1)[0].moments[0].segment_id == segs[0].id
        assert not list(path.glob(".*.tmp"))  # a half-written FAISS file never survives an open
    with Catalog(path, readonly=True, store=store) as cat:
        assert cat.check().ok
