"""A Milvus killed outright (SIGKILL) and started again on the same data comes back (issue 29, item 4).

After the crash the server recovers the loaded collection onto its old query node, whose session lingers in
etcd until its 30 s TTL ends; meanwhile searches report the collection "not loaded". The client must answer
those as the engine being unavailable (503, retry), load the collection again, and find every vector written
before the crash; writes after the restart are searchable too.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
from index.errors import StoreUnavailableError
from servers.milvus import MilvusServer

DIM = 16
RECOVER_S = 240.0  # 30 s session TTL + the load, on a loaded 2-core machine


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_killed_and_restarted_milvus_comes_back(tmp_path: Path) -> None:
    from index.milvus import MilvusSpaceIndex

    server = MilvusServer(tmp_path).start()  # its own server: the session's shared one must not be killed
    try:
        vi = MilvusSpaceIndex(f"{server.uri}/k{uuid.uuid4().hex[:10]}", space="va", dim=DIM, index_type="hnsw",
                              timeout=5)
        x = unit(300, 1)
        vi.add(np.arange(300), x, items=[f"i{i}" for i in range(300)], kinds=["video"] * 300)
        assert vi.search(x[:5], 1)[1][:, 0].tolist() == [0, 1, 2, 3, 4]

        server.kill()
        server.start()
        refused: list[str] = []
        deadline = time.monotonic() + RECOVER_S
        while True:
            try:
                found = vi.search(x[:5], 1)[1][:, 0].tolist()
                break
            except StoreUnavailableError as e:  # anything else (a 500) fails the test
                refused.append(str(e))
                assert time.monotonic() < deadline, f"not back after {RECOVER_S} s: {refused[-3:]}"
                time.sleep(1.0)
        assert found == [0, 1, 2, 3, 4], refused[-3:]  # what was written before the crash survived
        assert vi.ids().tolist() == list(range(300))

        y = unit(1, 9)
        vi.add(np.array([1000]), y, items=["later"], kinds=["audio"])
        assert vi.search(y, 1)[1][0, 0] == 1000
    finally:
        server.stop()
