"""Soak benchmark: bounded mixed load on a real server, and the "hog" case for admission control.

1. Mixed load: 16 and 32 clients for a fixed time each, every client looping over text /search
   (70 %), /embed of a 5 s file (15 %) and POST /items of a small new file (15 %). Prints req/s,
   p50/p99 per route, 429s (admission refusals, not errors), errors (5xx or transport) and the
   server's RSS before and after.
2. Hog: text /search p50/p95 idle, while N clients post hour-long audio to /embed, and 10 s after
   those clients disconnect (their encodes must be cancelled and text must never queue behind them).

The server is uvicorn in a subprocess on the bundled demo model. Prints a markdown table and writes
JSON to bench/results/soak.json, with the load average before and after (the machine may be shared).

    python bench/soak.py [--seconds 10] [--clients 16 32] [--hogs 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _media import make_audio

REPO = Path(__file__).resolve().parents[1]
KEY = "soak-key"
HEADERS = {"X-API-Key": KEY}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000


def start_server(data: Path, encodes: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "VATT_MODEL_DIR": str(REPO / "app" / "demo_model"),
           "VATT_DATA_DIR": str(data), "VATT_API_KEY": KEY, "VATT_MAX_CONCURRENT_ENCODES": str(encodes),
           "VATT_MAX_DURATION_S": "4000"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--port", str(port),
                             "--log-level", "warning"], cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


async def mixed_load(url: str, clients: int, seconds: float, small: Path, uploads: list[Path]) -> dict:
    lat: dict[str, list[float]] = {"search": [], "embed": [], "upload": []}
    refused = {k: 0 for k in lat}
    errors = {k: 0 for k in lat}
    counter = iter(range(10**9))
    deadline = time.monotonic() + seconds

    async def one(c: httpx.AsyncClient, rng: random.Random) -> None:
        roll = rng.random()
        route = "search" if roll < 0.7 else "embed" if roll < 0.85 else "upload"
        t0 = time.perf_counter()
        try:
            if route == "search":
                r = await c.post("/search", json={"text": rng.choice(["a red square", "a tone", "noise"]), "k": 5})
            elif route == "embed":
                r = await c.post("/embed", headers=HEADERS, files={"file": (small.name, small.read_bytes())})
            else:
                path = uploads[next(counter) % len(uploads)]
                r = await c.post("/items", headers=HEADERS, files={"file": (path.name, path.read_bytes())})
        except httpx.HTTPError:
            errors[route] += 1
            return
        if r.status_code == 429:
            refused[route] += 1
            await asyncio.sleep(float(r.headers.get("retry-after", "1")) * rng.random())
        elif r.status_code >= 500:
            errors[route] += 1
        else:
            lat[route].append(time.perf_counter() - t0)

    async def client(i: int) -> None:
        rng = random.Random(i)
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            while time.monotonic() < deadline:
                await one(c, rng)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    done = sum(len(v) for v in lat.values())
    return {"clients": clients, "seconds": elapsed, "req_per_s": done / elapsed,
            "routes": {k: {"n": len(v), "p50_ms": _pct(v, 0.5), "p99_ms": _pct(v, 0.99), "refused_429": refused[k],
                           "errors": errors[k]} for k, v in lat.items()}}


async def text_latency(url: str, seconds: float) -> dict:
    lat: list[float] = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            r = await c.post("/search", json={"text": "a tone", "k": 5})
            if r.status_code == 200:
                lat.append(time.perf_counter() - t0)
    return {"n": len(lat), "p50_ms": _pct(lat, 0.5), "p95_ms": _pct(lat, 0.95)}


async def hog_case(url: str, hogs: int, long_file: Path, seconds: float) -> dict:
    idle = await text_latency(url, seconds)
    body = long_file.read_bytes()
    statuses: list[int] = []

    async def hog() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=3600) as c:
            while True:  # a refused hog retries, as a careless client would
                r = await c.post("/embed", headers=HEADERS, files={"file": (long_file.name, body)})
                statuses.append(r.status_code)
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))

    tasks = [asyncio.create_task(hog()) for _ in range(hogs)]
    await asyncio.sleep(2.0)  # uploads land and encodes start
    during = await text_latency(url, seconds)
    for t in tasks:
        t.cancel()  # the hogs disconnect mid-encode
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(10.0)
    after = await text_latency(url, seconds)
    return {"hogs": hogs, "idle": idle, "during": during, "after_10s": after,
            "hog_statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each load phase")
    p.add_argument("--clients", type=int, nargs="+", default=[16, 32])
    p.add_argument("--hogs", type=int, default=8, help="clients embedding hour-long files")
    p.add_argument("--encodes", type=int, default=2, help="the server's max_concurrent_encodes")
    p.add_argument("--hog-minutes", type=float, default=60.0, help="length of each hog's file")
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        small = make_audio(tmp_path / "small.wav", duration=5.0, sample_rate=16000, channels=1)
        uploads = [make_audio(tmp_path / f"up{i}.wav", duration=3.0, sample_rate=16000, channels=1,
                              tone_hz=200.0 + 7.0 * i) for i in range(200)]
        long_file = make_audio(tmp_path / "hour.wav", duration=args.hog_minutes * 60, sample_rate=8000, channels=1)
        proc, url = start_server(tmp_path / "data", args.encodes)
        try:
            rss_before = _rss_mb(proc.pid)
            mixed = [asyncio.run(mixed_load(url, n, args.seconds, small, uploads)) for n in args.clients]
            rss_after = _rss_mb(proc.pid)
            hog = asyncio.run(hog_case(url, args.hogs, long_file, args.seconds))
            rss_end = _rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    load_after = os.getloadavg()
    result = {"load_before": load_before, "load_after": load_after, "cpus": os.cpu_count(), "encodes": args.encodes,
              "rss_mb": {"before": rss_before, "after_mixed": rss_after, "after_hog": rss_end},
              "mixed": mixed, "hog": hog}
    lines = [f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} ({os.cpu_count()} CPUs)",
             f"server RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after mixed load, {rss_end:.0f} MB after hogs",
             "", "| clients | req/s | route | n | p50 ms | p99 ms | 429 | errors |", "|---|---|---|---|---|---|---|---|"]
    for m in mixed:
        for route, r in m["routes"].items():
            lines.append(f"| {m['clients']} | {m['req_per_s']:.1f} | {route} | {r['n']} | {r['p50_ms']:.0f} | "
                         f"{r['p99_ms']:.0f} | {r['refused_429']} | {r['errors']} |")
    lines += ["", f"hog case: {args.hogs} clients embedding {args.hog_minutes:.0f}-minute audio "
                  f"(statuses {hog['hog_statuses']})", "| text /search | n | p50 ms | p95 ms |", "|---|---|---|---|"]
    for phase in ("idle", "during", "after_10s"):
        h = hog[phase]
        lines.append(f"| {phase} | {h['n']} | {h['p50_ms']:.0f} | {h['p95_ms']:.0f} |")
    print("\n".join(lines))
    out = REPO / "bench" / "results" / "soak.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
