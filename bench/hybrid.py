"""Find what is said: top-1 item and moment accuracy of vector, keyword and hybrid search, and their latency.

A generated catalogue (SQLite + FAISS, the embedded default): `--items` clips of `--segments` 3.2 s moments,
each with vt vectors drawn around its own random "visual" direction, and spoken-style subtitles made of
pseudo-words that have nothing to do with those visuals (`--cues` per item; 2000 × 50 = 100k cues by
default). Each query names a 3-word phrase of one cue: the right answer is that cue's item and the moment
its span overlaps. The vector query is the text encoder's view of the phrase, which — the words being
unrelated to the pictures — is a direction unrelated to every clip (a random unit vector here), so vector
accuracy sits at chance; keyword and hybrid must find the words. Latency is per query, in-process, over the
calls the service makes (vector: whole_item_vector then Catalog.search, as QueryService.search does; keyword
and hybrid: the service's search_words), p50/p99, with the fused modes' overhead over vector as ratios in the
same run, the load average and the fp32 matmul rate. `--threads N` sets both torch's and FAISS's OpenMP pools
(default: theirs, all cores, as the service runs): on a loaded 2-core machine two spinning pools, one after
the other in each query, cost far more than either's work.

    .venv/bin/python bench/hybrid.py                  # 100k cues (about a minute to build)
    .venv/bin/python bench/hybrid.py --items 200      # quick
    .venv/bin/python bench/hybrid.py --threads 1      # one OpenMP thread each for torch and FAISS
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.services.hybrid import search_words  # noqa: E402
from index import Catalog, Moment  # noqa: E402
from model import whole_item_vector  # noqa: E402

MODES = ("vector", "keyword", "hybrid", "weighted")  # hybrid: rrf (rrf_k 60); weighted: alpha · vector + …
SEG = 3.2
DIM = 256
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70 syllables -> pseudo-words


def vocabulary(rng: np.random.Generator, n: int) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 4)))))
    return sorted(words)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def build(path: Path, args: argparse.Namespace, rng: np.random.Generator) -> list[tuple[str, float, float, str]]:
    """The catalogue; returns every cue as (item id, start, end, text)."""
    vocab = np.array(vocabulary(rng, args.vocab))  # an array: rng.choice would convert a list per call
    duration = SEG * args.segments
    cues_all: list[tuple[str, float, float, str]] = []
    with Catalog(path, spaces={"vt": DIM}, flush_every=None) as cat:
        batch = []
        for n in range(args.items):
            visual = rng.standard_normal(DIM)
            vt = unit(visual[None, :] + 0.5 * rng.standard_normal((args.segments, DIM)))
            starts = np.sort(rng.uniform(0, duration - 1.0, args.cues))
            cues = [(float(s), float(min(duration, s + rng.uniform(0.8, 3.0))),
                     " ".join(rng.choice(vocab, size=int(rng.integers(5, 10))))) for s in starts]
            batch.append({"kind": "video", "source": f"clip{n}.mp4",
                          "sha256": hashlib.sha256(f"clip{n}".encode()).hexdigest(),
                          "segments": [[SEG * i, SEG * (i + 1)] for i in range(args.segments)],
                          "duration": duration, "vectors": {"vt": vt}, "cues": cues, "metadata": {"n": n}})
            if len(batch) == 200:
                cat.add_items(batch, index=False)
                batch = []
        if batch:
            cat.add_items(batch, index=False)
        cat.rebuild()
        sources = {i.source: i.id for i in cat.list_items(limit=args.items + 1)}
    with Catalog(path, readonly=True) as cat:
        for item_id in sources.values():
            cues_all += [(item_id, s, e, t) for s, e, t in cat.transcript(item_id)]
    return cues_all


def overlaps(m: Moment, start: float, end: float) -> bool:
    return m.start < end and start < m.end


def matmul_gflops() -> float:
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    a @ a
    t = time.perf_counter()
    for _ in range(10):
        a @ a
    return 10 * 2 * 1024 ** 3 / (time.perf_counter() - t) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--segments", type=int, default=10)
    p.add_argument("--cues", type=int, default=50, help="cues per item")
    p.add_argument("--vocab", type=int, default=20000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--alpha", type=float, default=0.3, help="the vector share of the weighted hybrid")
    p.add_argument("--threads", type=int, default=None, help="torch and FAISS OpenMP threads (default: theirs)")
    p.add_argument("--out", default="bench/results/hybrid.json")
    args = p.parse_args()
    if args.threads:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    facts = {"cores": os.cpu_count(), "python": platform.python_version(), "loadavg_start": os.getloadavg(),
             "matmul_fp32_gflops": round(matmul_gflops(), 1)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cues = build(Path(tmp) / "cat", args, rng)
        facts["build_s"] = round(time.perf_counter() - t0, 1)
        picks = rng.choice(len(cues), size=args.queries, replace=False)
        queries = []
        for i in picks:
            item_id, s, e, text = cues[i]
            words = text.split()
            j = int(rng.integers(0, len(words) - 2))
            queries.append((" ".join(words[j:j + 3]), item_id, s, e, unit(rng.standard_normal(DIM))))
        results: dict[str, dict] = {}
        with Catalog(Path(tmp) / "cat", readonly=True) as cat:
            def run(mode: str, text: str, q: np.ndarray):
                if mode == "vector":  # the service's vector path: the query's whole-item vector, then the engine
                    return cat.search("vt", whole_item_vector(q[None, :]), args.k, moments=3)
                fusion = "weighted" if mode.startswith("weighted") else "rrf"
                return search_words(cat, "text", {"vt": q[None, :]}, text, mode="keyword" if mode == "keyword"
                                    else "hybrid", k=args.k, max_k=1000, kinds=None, where=None, space="vt",
                                    moments=3, offset=0, score_threshold=None, fusion=fusion, rrf_k=60,
                                    alpha=args.alpha)

            for mode in MODES:
                for text, _, _, _, q in queries[:5]:  # warm caches
                    run(mode, text, q)
            for mode in MODES:
                times, item_ok, moment_ok = [], 0, 0
                for text, item_id, s, e, q in queries:
                    t = time.perf_counter()
                    hits = run(mode, text, q)
                    times.append(time.perf_counter() - t)
                    if hits and hits[0].item.id == item_id:
                        item_ok += 1
                        moment_ok += bool(hits[0].moments) and overlaps(hits[0].moments[0], s, e)
                ms = np.array(times) * 1000
                results[mode] = {"top1_item": item_ok / len(queries), "top1_moment": moment_ok / len(queries),
                                 "p50_ms": round(float(np.percentile(ms, 50)), 3),
                                 "p99_ms": round(float(np.percentile(ms, 99)), 3)}
    facts["loadavg_end"] = os.getloadavg()
    # the overhead of each fused mode over vector, same run, at both percentiles (target: <= 1.5x)
    ratios = {f"{mode}_over_vector_{p}": round(results[mode][f"{p}_ms"] / results["vector"][f"{p}_ms"], 2)
              for mode in ("hybrid", "weighted") for p in ("p50", "p99")}
    out = {"config": vars(args), "cues": len(cues), "facts": facts, "results": results, **ratios,
           "chance_top1": 1 / args.items}
    print(f"{len(cues)} cues, {args.items} items x {args.segments} moments; {facts['cores']} cores, "
          f"load {facts['loadavg_start']} -> {facts['loadavg_end']}, fp32 matmul {facts['matmul_fp32_gflops']} GFLOP/s")
    print(f"{'mode':8} {'top1 item':>10} {'top1 moment':>12} {'p50 ms':>8} {'p99 ms':>8}   (weighted: alpha "
          f"{args.alpha})")
    for mode, r in results.items():
        print(f"{mode:8} {r['top1_item']:10.3f} {r['top1_moment']:12.3f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
    print(f"hybrid / vector latency: p50 {ratios['hybrid_over_vector_p50']:.2f}x, p99 "
          f"{ratios['hybrid_over_vector_p99']:.2f}x; weighted / vector: p50 {ratios['weighted_over_vector_p50']:.2f}x, "
          f"p99 {ratios['weighted_over_vector_p99']:.2f}x (chance top-1: {1 / args.items:.4f})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
