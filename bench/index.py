"""Benchmark the catalogue's FAISS indexes (flat, HNSW, IVF-PQ) against a numpy brute-force baseline.

Data: unit 512-d vectors drawn around a few thousand Gaussian cluster centres (uniform random vectors
have no neighbourhoods, which makes every approximate index look broken). Queries are fresh draws
from the same distribution. For each size it measures, per index: build ("add") time, single-query
latency p50/p99, recall@10 against exact search, and memory (RSS growth while building).

Two paths:
* `vectors` — index/faiss_index.py's VectorIndex directly, segment level; every size. With
  `--backend faiss,milvus` the same vectors and queries also go through index/milvus.py's
  MilvusSpaceIndex (flat → FLAT, hnsw → HNSW, ivfpq → IVF_FLAT), one gRPC round trip per query with
  Strong consistency, on `--milvus-uri` or on a throwaway server started for the run
  (tests/servers/milvus.py); its mem column is the server's RSS growth.
* `catalog` — the full Catalog (SQLite commit per item, grouping, IVF-PQ re-ranking), item level,
  recall against `Catalog.search(exact=True)`; only for sizes ≤ --catalog-max (ingesting 1M
  vectors one item at a time through SQLite with fsync is slow on a shared 2-core box).

Usage: python bench/index.py --sizes 100000,1000000 --queries 300
       python bench/index.py --sizes 100000 --backend faiss,milvus --paths vectors
Prints a markdown table; writes JSON with machine facts to bench/results/index.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from index import Catalog, IndexOptions  # noqa: E402
from index.faiss_index import VectorIndex  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="100000", help="comma-separated database sizes (vectors)")
    p.add_argument("--dim", type=int, default=512, help="vector dimension")
    p.add_argument("--centres", type=int, default=4000, help="Gaussian cluster centres")
    p.add_argument("--noise", type=float, default=0.6, help="spread around a centre (a centre has norm 1)")
    p.add_argument("--intrinsic", type=int, default=32, help="dimension of the subspace the spread lives in")
    p.add_argument("--queries", type=int, default=300, help="single queries timed per index")
    p.add_argument("--k", type=int, default=10, help="recall@k")
    p.add_argument("--types", default="flat,hnsw,ivfpq", help="index types to measure")
    p.add_argument("--hnsw-m", type=int, default=32, help="HNSW graph degree")
    p.add_argument("--ef-construction", type=int, default=80, help="HNSW build beam")
    p.add_argument("--ef-search", default="64,96,128,192", help="HNSW search beams to sweep")
    p.add_argument("--nprobe", default="16,64", help="IVF lists probed, swept")
    p.add_argument("--refine", type=int, default=8, help="IVF-PQ: also time re-ranking refine·k candidates exactly")
    p.add_argument("--search-threads", type=int, default=1, help="FAISS threads for single queries")
    p.add_argument("--build-threads", type=int, default=1,
                   help="FAISS threads for building, 0: all cores (on a shared, busy 2-core box OpenMP "
                        "with 2 threads was several times slower)")
    p.add_argument("--paths", default="vectors,catalog", help="which paths to run: vectors, catalog")
    p.add_argument("--backend", default="faiss", help="vector indexes of the vectors path: faiss, milvus or both")
    p.add_argument("--milvus-uri", default=None,
                   help="milvus://host:port to measure; default: start a throwaway server for the run")
    p.add_argument("--milvus-tick-ms", type=int, default=20,
                   help="throwaway server's proxy.timeTickInterval (Milvus's default: 200); a Strong search "
                        "waits for the next tick")
    p.add_argument("--catalog-max", type=int, default=100_000, help="largest size also run through Catalog")
    p.add_argument("--segments-per-item", type=int, default=10, help="catalog path: segments per item")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "index.json"), help="JSON output")
    return p.parse_args(argv)


def clustered(n: int, dim: int, centres: np.ndarray, basis: np.ndarray, noise: float,
              rng: np.random.Generator) -> np.ndarray:
    """Unit vectors around random centres.

    The spread around a centre lives mostly in a shared low-dimensional subspace (`basis`, like the low
    intrinsic dimension of real embeddings) plus a little isotropic noise; purely isotropic noise in 512-d
    makes all same-cluster distances equal, so "the" top-10 would be decided by noise alone. Vectors are
    drawn independently, also across an item's segments in the catalog path: segments sharing one centre
    would leave 1–3 items per cluster at 100k, and the top-10 items would be near-ties far away."""
    out = np.empty((n, dim), np.float32)
    r = basis.shape[0]
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        owner = rng.integers(0, len(centres), m)
        x = (centres[owner] + (noise / np.sqrt(r)) * rng.standard_normal((m, r), dtype=np.float32) @ basis
             + (0.1 * noise / np.sqrt(dim)) * rng.standard_normal((m, dim), dtype=np.float32))
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> dict[str, Any]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem = next((int(ln.split()[1]) // 1024 for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_mb": mem, "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "faiss": faiss.__version__,
            "faiss_opts": faiss.get_compile_options().strip(), "loadavg_start": os.getloadavg(),
            "blas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS")}


def ground_truth(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids for all queries, batched through BLAS (not timed)."""
    s = q @ x.T
    top = np.argpartition(-s, k, axis=1)[:, :k]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), axis=1), 1)


def latency(fn: Callable[[int], Any], n: int) -> tuple[float, float, list[Any]]:
    """p50 / p99 milliseconds of fn(i) over n calls, after a short warm-up; returns outputs."""
    for i in range(min(10, n)):
        fn(i)
    times, outs = [], []
    for i in range(n):
        t = time.perf_counter()
        outs.append(fn(i))
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), outs


def numpy_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    s = x @ q
    top = np.argpartition(-s, k)[:k]
    return top[np.argsort(-s[top])]


def recall(found: list[Any], truth: list[Any] | np.ndarray, k: int) -> float:
    """Mean |found ∩ truth| / min(k, |truth|) over queries (ids may be ints or item id strings)."""
    return float(np.mean([len(set(list(f)[:k]) & set(list(t)[:k])) / max(1, min(k, len(t)))
                          for f, t in zip(found, truth)]))


def bench_vectors(args: argparse.Namespace, x: np.ndarray, q: np.ndarray, truth: np.ndarray) -> list[dict]:
    n, k, rows = len(x), args.k, []
    # numpy baseline: what "just keep a matrix" costs per query (BLAS gemv + argpartition)
    p50, p99, outs = latency(lambda i: numpy_topk(x, q[i], k), args.queries)
    rows.append({"path": "vectors", "n": n, "index": "numpy brute force", "params": "x @ q, argpartition",
                 "add_s": 0.0, "p50_ms": p50, "p99_ms": p99, "recall": recall(outs, truth, k),
                 "mem_mb": x.nbytes / 2**20})
    print(_row(rows[-1]), flush=True)
    ids = np.arange(n, dtype=np.int64)
    for t in args.types.split(","):
        gc.collect()
        before = rss_mb()
        faiss.omp_set_num_threads(args.build_threads or os.cpu_count() or 1)
        opts = IndexOptions(hnsw_m=args.hnsw_m, ef_construction=args.ef_construction, train_min=1)
        start = time.perf_counter()
        vi = VectorIndex.build("va", x.shape[1], t, opts, n,
                               chunks=lambda: ((ids[s:s + 50_000], x[s:s + 50_000]) for s in range(0, n, 50_000)),
                               sample=lambda m: x[np.sort(np.random.default_rng(0).choice(n, m, replace=False))])
        add_s = time.perf_counter() - start
        mem = rss_mb() - before
        faiss.omp_set_num_threads(args.search_threads)
        sweeps: list[tuple[str, dict]] = [("", {})]
        if t == "hnsw":
            sweeps = [(f"M={args.hnsw_m} efC={args.ef_construction} ef={ef}", {"ef_search": int(ef)})
                      for ef in args.ef_search.split(",")]
        elif t == "ivfpq":
            sweeps = [(f"{vi.factory} nprobe={p}", {"nprobe": int(p)}) for p in args.nprobe.split(",")]
        for label, o in sweeps:
            vi.set_options(IndexOptions(**{**opts.to_dict(), **o}))
            p50, p99, outs = latency(lambda i: vi.search(q[i:i + 1], k)[1][0], args.queries)
            rows.append({"path": "vectors", "n": n, "index": t, "params": label or vi.factory, "add_s": add_s,
                         "p50_ms": p50, "p99_ms": p99, "recall": recall(outs, truth, k), "mem_mb": mem})
            print(_row(rows[-1]), flush=True)
            if t == "ivfpq" and args.refine > 1:  # what the Catalog does: PQ candidates, exact re-rank
                def refined(i: int) -> np.ndarray:
                    cand = vi.search(q[i:i + 1], k * args.refine)[1][0]
                    cand = cand[cand >= 0]
                    return cand[np.argsort(-(x[cand] @ q[i]))[:k]]
                p50, p99, outs = latency(refined, args.queries)
                rows.append({"path": "vectors", "n": n, "index": t, "params": f"{label} + re-rank {args.refine}·k",
                             "add_s": add_s, "p50_ms": p50, "p99_ms": p99, "recall": recall(outs, truth, k),
                             "mem_mb": mem})
                print(_row(rows[-1]), flush=True)
        del vi
    return rows


def _group_rss_mb(pgid: int) -> float:
    """RSS of every process in a process group (a Milvus server we started), MiB."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # fields after the command name: state, ppid, pgrp, ...
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, IndexError, ValueError):
            continue
    return total


def bench_milvus(args: argparse.Namespace, uri: str, pgid: int | None, x: np.ndarray, q: np.ndarray,
                 truth: np.ndarray) -> list[dict]:
    """The vectors path on Milvus: insert everything FLAT, then build each index type (rebuild), time queries."""
    from index.milvus import MilvusSpaceIndex

    n, k, rows = len(x), args.k, []
    ids = np.arange(n, dtype=np.int64)
    for t in args.types.split(","):
        opts = IndexOptions(hnsw_m=args.hnsw_m, ef_construction=args.ef_construction, train_min=n)
        before = _group_rss_mb(pgid) if pgid else float("nan")
        vi = MilvusSpaceIndex(f"{uri}/bench{os.getpid()}", space=f"va_{t}", dim=x.shape[1], index_type=t,
                              options=opts, timeout=60)
        try:
            start = time.perf_counter()
            for s in range(0, n, 20_000):
                vi.add(ids[s:s + 20_000], x[s:s + 20_000], items=["i"] * len(ids[s:s + 20_000]),
                       kinds=["video"] * len(ids[s:s + 20_000]))
            vi.rebuild()  # seals what was inserted and builds the index type over all of it
            add_s = time.perf_counter() - start
            mem = _group_rss_mb(pgid) - before if pgid else float("nan")
            sweeps: list[tuple[str, dict]] = [("FLAT", {})]
            if t == "hnsw":
                sweeps = [(f"HNSW M={args.hnsw_m} efC={args.ef_construction} ef={ef}", {"ef_search": int(ef)})
                          for ef in args.ef_search.split(",")]
            elif t == "ivfpq":
                sweeps = [(f"IVF_FLAT nprobe={p}", {"nprobe": int(p)}) for p in args.nprobe.split(",")]
            for label, o in sweeps:
                vi.options = IndexOptions(**{**opts.to_dict(), **o})
                p50, p99, outs = latency(lambda i: vi.search(q[i:i + 1], k)[1][0], args.queries)
                rows.append({"path": "vectors", "n": n, "index": f"milvus {t}", "params": label, "add_s": add_s,
                             "p50_ms": p50, "p99_ms": p99, "recall": recall(outs, truth, k), "mem_mb": mem})
                print(_row(rows[-1]), flush=True)
        finally:
            vi.drop()
    return rows


def start_milvus(tick_ms: int) -> tuple[str, int, Callable[[], None]]:
    """A throwaway Milvus server for the run (tests/servers/milvus.py): (uri, process group, stop)."""
    import shutil

    sys.path.insert(0, str(ROOT / "tests"))
    from servers.milvus import MilvusServer

    root = Path(tempfile.mkdtemp(prefix="vatt-bench-milvus-"))
    server = MilvusServer(root, tick_ms=tick_ms).start()
    print(f"milvus: started in {server.started_in:.1f} s on {server.uri}, time tick {tick_ms} ms", flush=True)

    def stop() -> None:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return server.uri, server.proc.pid, stop


def bench_catalog(args: argparse.Namespace, x: np.ndarray, q: np.ndarray) -> list[dict]:
    """The same vectors through Catalog: items of --segments-per-item segments, item-level recall."""
    n, k, per, rows = len(x), args.k, args.segments_per_item, []
    faiss.omp_set_num_threads(args.build_threads or os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="vatt-bench-") as tmp:
        opts = {"hnsw_m": args.hnsw_m, "ef_construction": args.ef_construction}
        start = time.perf_counter()
        with Catalog(tmp, spaces={"va": x.shape[1]}, index_options=opts, flush_every=None) as cat:
            for j, s in enumerate(range(0, n, per)):
                cat.add_item(kind="video", source=f"{j}.mp4", sha256=hashlib.sha256(str(j).encode()).hexdigest(),
                             segments=[[3.2 * i, 3.2 * (i + 1)] for i in range(min(per, n - s))],
                             vectors={"va": x[s:s + per]}, metadata={"year": 1990 + j % 30})
            ingest_s = time.perf_counter() - start
            faiss.omp_set_num_threads(args.search_threads)
            _, _, truth_hits = latency(lambda i: cat.search("va", q[i], k=k, moments=1, exact=True), args.queries)
            truth = [[h.item.id for h in r] for r in truth_hits]
            for t in args.types.split(","):
                faiss.omp_set_num_threads(args.build_threads or os.cpu_count() or 1)
                start = time.perf_counter()
                cat.rebuild(index_type=t, index_options=opts)  # the catalogue's defaults for search knobs
                build_s = time.perf_counter() - start if t != "flat" else ingest_s
                faiss.omp_set_num_threads(args.search_threads)
                for where in (None, {"year": {"gte": 2015}}):
                    p50, p99, hits = latency(lambda i: cat.search("va", q[i], k=k, moments=1, where=where),
                                             args.queries)
                    found = [[h.item.id for h in r] for r in hits]
                    exact = truth
                    if where is not None:
                        exact = [[h.item.id for h in cat.search("va", q[i], k=k, moments=1, where=where,
                                                                exact=True)] for i in range(args.queries)]
                    stats = cat.stats()["spaces"]["va"]
                    rows.append({"path": "catalog", "n": n, "index": t, "add_s": build_s,
                                 "params": stats["factory"] + (" where year≥2015" if where else ""),
                                 "p50_ms": p50, "p99_ms": p99, "recall": recall(found, exact, k),
                                 "mem_mb": stats["file_bytes"] / 2**20})
                    print(_row(rows[-1]), flush=True)
            rows.append({"path": "catalog", "n": n, "index": "exact=True", "params": "ground truth",
                         "add_s": ingest_s, "p50_ms": float("nan"), "p99_ms": float("nan"), "recall": 1.0,
                         "mem_mb": float("nan")})
    return rows


def bench_catalog_milvus(args: argparse.Namespace, uri: str, x: np.ndarray, q: np.ndarray) -> list[dict]:
    """The catalogue on Milvus (SQLite store): searches that ask Milvus for the newest recorded write timestamp
    (the default) against every search Strong (`?consistency=strong`, the behaviour before), on the same
    collection in the same run; recall against the catalogue's exact search."""
    from index.milvus import MilvusSpaceIndex

    n, k, per, rows = len(x), args.k, args.segments_per_item, []
    base = f"{uri}/bcat{os.getpid()}?timeout=120"
    with tempfile.TemporaryDirectory(prefix="vatt-bench-") as tmp:
        opts = {"hnsw_m": args.hnsw_m, "ef_construction": args.ef_construction}
        start = time.perf_counter()
        with Catalog(tmp, spaces={"va": x.shape[1]}, index_options=opts, flush_every=None, vectors=base) as cat:
            try:
                for j, s in enumerate(range(0, n, per)):
                    cat.add_item(kind="video", source=f"{j}.mp4",
                                 sha256=hashlib.sha256(str(j).encode()).hexdigest(),
                                 segments=[[3.2 * i, 3.2 * (i + 1)] for i in range(min(per, n - s))],
                                 vectors={"va": x[s:s + per]}, metadata={"year": 1990 + j % 30})
                ingest_s = time.perf_counter() - start
                for t in args.types.split(","):
                    start = time.perf_counter()
                    cat.rebuild(index_type=t, index_options=opts)
                    build_s = time.perf_counter() - start
                    with Catalog(tmp, readonly=True, vectors=f"{base}&consistency=strong") as strong:
                        for where in (None, {"year": {"gte": 2015}}):
                            exact = [[h.item.id for h in cat.search("va", q[i], k=k, moments=1, where=where,
                                                                    exact=True)] for i in range(args.queries)]
                            for label, c in (("strong (before)", strong), ("recorded ts", cat)):
                                p50, p99, hits = latency(lambda i: c.search("va", q[i], k=k, moments=1, where=where),
                                                         args.queries)
                                found = [[h.item.id for h in r] for r in hits]
                                rows.append({"path": "catalog", "n": n, "index": f"milvus {t}",
                                             "add_s": build_s if t != "flat" else ingest_s,
                                             "params": f"tick {args.milvus_tick_ms} ms, {label}"
                                                       + (" where year≥2015" if where else ""),
                                             "p50_ms": p50, "p99_ms": p99, "recall": recall(found, exact, k),
                                             "mem_mb": float("nan")})
                                print(_row(rows[-1]), flush=True)
            finally:
                MilvusSpaceIndex(base, space="va", dim=x.shape[1]).drop()
    return rows


HEADER = ("| path | n | index | params | add s | p50 ms | p99 ms | recall@10 | mem MiB |\n"
          "|---|---:|---|---|---:|---:|---:|---:|---:|")


def _row(r: dict) -> str:
    return (f"| {r['path']} | {r['n']:,} | {r['index']} | {r['params']} | {r['add_s']:.1f} | {r['p50_ms']:.3f} | "
            f"{r['p99_ms']:.3f} | {r['recall']:.3f} | {r['mem_mb']:.0f} |")


def _run_sizes(args: argparse.Namespace, backends: set[str], milvus_uri: str | None, milvus_pgid: int | None,
               rng: np.random.Generator, centres: np.ndarray, basis: np.ndarray) -> list[dict]:
    rows: list[dict] = []
    for n in (int(s) for s in args.sizes.split(",")):
        x = clustered(n, args.dim, centres, basis, args.noise, rng)
        q = clustered(args.queries, args.dim, centres, basis, args.noise, rng)
        truth = np.concatenate([ground_truth(x, q[s:s + 50], args.k) for s in range(0, len(q), 50)])
        if "vectors" in args.paths and "faiss" in backends:
            rows += bench_vectors(args, x, q, truth)
        if "vectors" in args.paths and "milvus" in backends:
            rows += bench_milvus(args, milvus_uri, milvus_pgid, x, q, truth)
        if "catalog" in args.paths and n <= args.catalog_max and "faiss" in backends:
            rows += bench_catalog(args, x, q)
        if "catalog" in args.paths and n <= args.catalog_max and "milvus" in backends:
            rows += bench_catalog_milvus(args, milvus_uri, x, q)
        del x
        gc.collect()
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.centres, args.dim), dtype=np.float32) / np.sqrt(args.dim)
    basis = np.linalg.qr(rng.standard_normal((args.dim, args.intrinsic)))[0].T.astype(np.float32)  # [r, dim]
    facts = machine()
    print(f"machine: {facts['cpu']}, {facts['cores']} cores, load {facts['loadavg_start']}", flush=True)
    backends = set(args.backend.split(","))
    milvus_uri, milvus_pgid, stop_milvus = args.milvus_uri, None, None
    if "milvus" in backends and milvus_uri is None:
        milvus_uri, milvus_pgid, stop_milvus = start_milvus(args.milvus_tick_ms)
    print(HEADER, flush=True)
    rows: list[dict] = []
    try:
        rows = _run_sizes(args, backends, milvus_uri, milvus_pgid, rng, centres, basis)
    finally:
        if stop_milvus:
            stop_milvus()
    facts["loadavg_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": facts, "args": vars(args), "results": rows}, indent=2, default=str))
    print("\n" + HEADER + "\n" + "\n".join(_row(r) for r in rows))
    print(f"\nload average start {facts['loadavg_start']}, end {facts['loadavg_end']}; JSON: {out}")


if __name__ == "__main__":
    main()
