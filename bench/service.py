"""Service benchmark: /search (text) latency and throughput under 1, 8 and 32 concurrent clients,
and /embed latency for a text and for a 10 s video, on the tiny model; then the same searches with
`--collections` collections loaded (the extra ones empty, one pool of ingest workers polling them all)
and the server's resident memory per extra empty collection.

Baselines measured in the same run:
  * GET /healthz at the same concurrency: the HTTP floor (uvicorn + routing + JSON, no model);
  * the same work in-process, without HTTP: a text query through the batcher + catalogue search,
    a text embedding, and the 10 s video through the service's Encoder (decode + inference).

The server is `vatt serve` in a subprocess (its own GIL); the load comes from asyncio + httpx in
this process. Prints a markdown table and writes JSON (with machine facts) to
bench/results/service.json.

    python bench/service.py [--items 24] [--requests 200] [--concurrency 1 8 32] [--collections 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _media import make_video  # noqa: E402

from app.services.batcher import Batcher  # noqa: E402
from app.services.encoder import Encoder  # noqa: E402
from index import Catalog  # noqa: E402
from model import VATT, VattConfig, WordTokenizer, load_pretrained, load_tokenizer, save_pretrained  # noqa: E402

WORDS = ["<pad>", "<unk>", "a", "video", "of", "red", "green", "blue", "dog", "cat", "screen", "with", "hum"]
QUERIES = ["a red screen", "a dog with a hum", "blue cat video", "a video of a green dog"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(latencies: list[float], wall: float) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": statistics.fmean(ms), "rps": len(ms) / wall}


async def _load(url: str, method: str, path: str, n: int, concurrency: int, make_kwargs) -> dict:
    """`n` requests by `concurrency` workers, each with its own connection; warm-up excluded."""
    latencies: list[float] = []
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for i in range(min(concurrency, 8)):  # warm up connections and the model path
            (await client.request(method, path, **make_kwargs(i))).raise_for_status()

        async def worker() -> None:
            for i in counter:
                t0 = time.perf_counter()
                r = await client.request(method, path, **make_kwargs(i))
                latencies.append(time.perf_counter() - t0)
                r.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return _stats(latencies, wall)


def _time(fn, n: int) -> dict:
    for _ in range(min(3, n)):
        fn()
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    return _stats(lat, time.perf_counter() - t0)


def build(work: Path, n_items: int) -> tuple[Path, Path, list[Path]]:
    torch.manual_seed(0)
    model_dir = save_pretrained(VATT(VattConfig.preset("tiny")).eval(), work / "model", tokenizer=WordTokenizer(WORDS))
    video10 = make_video(work / "ten_seconds.mp4", duration=10.0, fps=25, width=320, height=240)
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n_items):
        rgb = rng.integers(0, 255, 3)
        frame = np.broadcast_to(rgb.astype(np.uint8), (120, 160, 3)).copy()
        clips.append(make_video(work / f"clip{i:03d}.mp4", duration=6.4, fps=10, width=160, height=120,
                                frame_fn=lambda idx, t, f=frame: np.roll(f, idx, axis=1), tone_hz=200 + 50 * i))
    return model_dir, video10, clips


def start_server(model_dir: Path, data_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "vatt_cli", "serve", "--model", str(model_dir), "--data",
                                 str(data_dir), "--port", str(port), "--log-level", "warning"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become ready")


def ingest(url: str, clips: list[Path]) -> None:
    with httpx.Client(base_url=url, timeout=120) as c:
        jobs = []
        for clip in clips:
            with open(clip, "rb") as fh:
                jobs.append(c.post("/items", files={"file": (clip.name, fh)}).json()["job_id"])
        for job in jobs:
            while c.get(f"/jobs/{job}").json()["status"] not in ("done", "failed"):
                time.sleep(0.05)


def in_process(model_dir: Path, video10: Path, catalog_dir: Path, n: int) -> dict[str, dict]:
    """The same work without HTTP: the service's Batcher/Encoder and the catalogue, in this process."""
    torch.set_num_threads(os.cpu_count() or 1)
    model = load_pretrained(model_dir)
    batcher = Batcher(model, max_rows=16, wait_ms=0).start()
    encoder = Encoder(model, load_tokenizer(model_dir), batcher)
    out = {}
    try:
        with Catalog(catalog_dir, readonly=True) as catalog:
            def search() -> None:
                q = encoder.embed_texts([QUERIES[0]])[0]
                catalog.search("vt", q, 10, kinds=["video"])
            out["search_text_direct"] = _time(search, n)
        out["embed_text_direct"] = _time(lambda: encoder.embed_texts([QUERIES[1]]), n)
        out["embed_video10_direct"] = _time(lambda: encoder.embed_file(video10), 10)
    finally:
        batcher.close()
    return out


def _rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _matmul_gflops(n: int = 512, reps: int = 20) -> float:
    """fp32 matmul rate of this machine now (the dtype the service runs in here): a yardstick for the run."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def with_collections(url: str, pid: int, n: int, requests: int, concurrency: list[int],
                     rows: dict[str, dict]) -> dict:
    """Searches of the default collection with 1 collection, with n (n-1 empty ones created), and with 1 again
    (deleted): the machine's drift between rounds shows as the difference of the two 1-collection rounds.
    Memory: the server's RSS before and after creating the n-1."""
    headers = {"Content-Type": "application/json"}

    def searches(label: str) -> None:
        for conc in concurrency:
            rows[f"search text c={conc}, {label}"] = asyncio.run(_load(
                url, "POST", "/search", requests, conc,
                lambda i: {"json": {"text": QUERIES[i % len(QUERIES)], "k": 10, "kinds": ["video"]}}))

    searches("1 collection")
    with httpx.Client(base_url=url, timeout=120) as c:
        time.sleep(1.0)
        before = _rss_bytes(pid)
        for i in range(1, n):
            c.post("/collections", json={"name": f"bench-{i}"}, headers=headers).raise_for_status()
        time.sleep(1.0)
        after = _rss_bytes(pid)
        loaded = len(c.get("/collections").json()["collections"])
        searches(f"{loaded} collections")
        for i in range(1, n):
            c.delete(f"/collections/bench-{i}").raise_for_status()
    searches("1 collection again")
    return {"collections": loaded, "rss_before_bytes": before, "rss_after_bytes": after,
            "rss_per_extra_collection_bytes": (after - before) / max(1, loaded - 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=24, help="clips ingested before searching")
    p.add_argument("--requests", type=int, default=200, help="timed requests per concurrency level")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--collections", type=int, default=10, help="collections loaded for the second search round")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "service.json")
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]  # other work on the machine skews every number; recorded with them
    gflops = _matmul_gflops()
    memory: dict = {}

    with tempfile.TemporaryDirectory(prefix="vatt-bench-") as tmp:
        work = Path(tmp)
        model_dir, video10, clips = build(work, args.items)
        proc, url = start_server(model_dir, work / "data", work / "server.log")
        rows: dict[str, dict] = {}
        try:
            ingest(url, clips)
            for c in args.concurrency:
                rows[f"healthz c={c}"] = asyncio.run(_load(url, "GET", "/healthz", args.requests, c, lambda i: {}))
                rows[f"search text c={c}"] = asyncio.run(_load(
                    url, "POST", "/search", args.requests, c,
                    lambda i: {"json": {"text": QUERIES[i % len(QUERIES)], "k": 10, "kinds": ["video"]}}))
            rows["embed text c=1"] = asyncio.run(_load(url, "POST", "/embed", args.requests // 2, 1,
                                                       lambda i: {"json": {"texts": [QUERIES[i % 4]]}}))
            data = video10.read_bytes()
            rows["embed 10 s video c=1"] = asyncio.run(_load(
                url, "POST", "/embed", 10, 1, lambda i: {"files": {"file": ("v.mp4", data, "video/mp4")}}))
            if args.collections > 1:
                memory = with_collections(url, proc.pid, args.collections, args.requests, args.concurrency, rows)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        rows.update(in_process(model_dir, video10, work / "data" / "catalog", args.requests))

    facts = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
             "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
             "system": f"{platform.system()} {platform.release()}", "model": "tiny (random init)",
             "items": args.items, "load_average_1m_before": load_before, "load_average_1m_after": os.getloadavg()[0],
             "matmul_fp32_gflops": gflops, "collections": memory,
             "note": "server and load generator share this machine's CPUs"}
    print(f"\n{facts}\n")
    print("| case | n | p50 ms | p99 ms | mean ms | req/s |\n|---|---:|---:|---:|---:|---:|")
    for name, s in rows.items():
        print(f"| {name} | {s['n']} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['mean_ms']:.1f} | {s['rps']:.1f} |")
    if memory:
        print(f"\n| collections | server RSS before | after | per extra empty collection |\n|---:|---:|---:|---:|\n"
              f"| {memory['collections']} | {memory['rss_before_bytes'] / 2**20:.1f} MiB | "
              f"{memory['rss_after_bytes'] / 2**20:.1f} MiB | {memory['rss_per_extra_collection_bytes'] / 2**10:.0f} KiB |")
        for conc in args.concurrency:
            many = rows[f"search text c={conc}, {memory['collections']} collections"]
            ones = [rows[f"search text c={conc}, 1 collection"], rows[f"search text c={conc}, 1 collection again"]]
            base = {q: statistics.fmean(o[q] for o in ones) for q in ("p50_ms", "p99_ms")}
            print(f"search c={conc}: p50 {many['p50_ms'] / base['p50_ms']:.2f}x, p99 {many['p99_ms'] / base['p99_ms']:.2f}x "
                  f"with {memory['collections']} collections vs 1 (the mean of the rounds before and after; those "
                  f"two differ by {ones[1]['p50_ms'] / ones[0]['p50_ms']:.2f}x in p50)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": facts, "results": rows}, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
