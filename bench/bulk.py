"""Bulk embedding and import: files/s and windows/s for 1 and 2 torchrun processes, import time.

Each (preset, processes) row runs `torchrun --standalone --nproc_per_node P -m app.bulk` on a
freshly generated synthetic corpus (training.synthetic, through its JSON Lines manifest) with a
randomly initialised model of the preset, and reads the run's summary.json; `wall_s` adds
process start and model loading. The import row writes generated shards of N segments
(va 512 + vt 256, 5 segments per item) and times `import_shards` into a new catalogue.

    python bench/bulk.py [--files 24] [--base-files 2] [--segments 100000] [--index-type flat] [--precisions fp32,bf16]

`--precisions` runs every (preset, processes) row once per precision (app.bulk --precision); the
table names what each resolved to (auto's choice, from summary.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/index.py would otherwise shadow the index package

from index import Catalog  # noqa: E402
from index.importer import import_shards  # noqa: E402
from index.shards import ShardItem, ShardManifest, write_shard  # noqa: E402
from model import VATT, VattConfig, WordTokenizer, save_pretrained  # noqa: E402
from training.synthetic import generate  # noqa: E402

VOCAB = ["<pad>", "<unk>", "a", "video"]


def embed_rows(preset: str, n_files: int, procs: list[int], tmp: Path, precisions: list[str]) -> list[dict]:
    corpus = tmp / f"corpus-{preset}"
    generate(corpus, n=n_files, n_heldout=1, seed=0, min_seconds=3.2, max_seconds=6.4)
    torch.manual_seed(0)
    model = save_pretrained(VATT(VattConfig.preset(preset)), tmp / f"model-{preset}", tokenizer=WordTokenizer(VOCAB))
    rows = []
    for precision, p in ((x, p) for x in precisions for p in procs):
        out = tmp / f"shards-{preset}-{precision}-{p}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(p),
               "-m", "app.bulk", "--model", str(model), "--out", str(out), "--no-progress",
               "--shard-files", "8", "--precision", precision, str(corpus / "train.jsonl")]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        wall = time.perf_counter() - t0
        if done.returncode:
            raise RuntimeError(f"{preset} x{p} failed:\n{done.stderr[-2000:]}")
        s = json.loads((out / "summary.json").read_text())
        rows.append({"preset": preset, "precision": "/".join(s["precision"]), "asked": precision, "procs": p,
                     "files": s["files"], "windows": s["segments"],
                     "errors": s["errors"], "run_s": s["seconds"], "wall_s": wall, "files_per_s": s["files_per_s"],
                     "windows_per_s": s["windows_per_s"]})
        print(f"  {preset} {precision} x{p}: {s['files']} files, {s['segments']} windows in {s['seconds']:.1f} s "
              f"({s['windows_per_s']:.2f} windows/s); wall {wall:.1f} s", flush=True)
    return rows


def import_row(n_segments: int, index_type: str, tmp: Path) -> dict:
    spaces, per_item, per_shard = {"va": 512, "vt": 256}, 5, 2000
    rng = np.random.default_rng(0)
    shards = tmp / "import-shards"
    n_items = n_segments // per_item
    t0 = time.perf_counter()
    for s in range(0, n_items, per_shard):
        items = []
        for k in range(s, min(n_items, s + per_shard)):
            vecs = {d: rng.standard_normal((per_item, dim)).astype(np.float32) for d, dim in spaces.items()}
            vecs = {d: v / np.linalg.norm(v, axis=1, keepdims=True) for d, v in vecs.items()}
            items.append(ShardItem(key=hashlib.sha256(str(k).encode()).hexdigest(), source=f"/lib/{k}.mp4",
                                   kind="video", duration=16.0, metadata={"n": k},
                                   starts=[3.2 * i for i in range(per_item)],
                                   ends=[3.2 * (i + 1) for i in range(per_item)], vectors=vecs))
        write_shard(shards, ShardManifest(name=f"gen-{s:08d}", model={"name": "bench", "config_hash": "0" * 64},
                                          spaces=spaces), items)
    write_s = time.perf_counter() - t0
    with Catalog(tmp / "catalog", spaces=spaces, index_type=index_type) as cat:
        report = import_shards(cat, shards)
    again_t0 = time.perf_counter()
    with Catalog(tmp / "catalog") as cat:
        again = import_shards(cat, shards)
    again_s = time.perf_counter() - again_t0
    return {"segments": n_segments, "items": n_items, "shards": report.shards, "index_type": index_type,
            "write_shards_s": write_s, "import_s": report.seconds, "index_build_s": report.index_seconds,
            "segments_per_s": n_segments / report.seconds, "reimport_s": again_s, "reimport_added": again.items_added}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=24, help="synthetic clips for the tiny preset")
    p.add_argument("--base-files", type=int, default=2, help="synthetic clips for the Base preset (slow on CPU)")
    p.add_argument("--base", default="vatt-ms-bbs", help="the Base preset")
    p.add_argument("--procs", default="1,2", help="torchrun process counts")
    p.add_argument("--import-only", action="store_true", help="only the import benchmark")
    p.add_argument("--segments", type=int, default=100_000, help="segments in the import benchmark")
    p.add_argument("--index-type", default="flat", help="index type of the import benchmark")
    p.add_argument("--precisions", default="auto", help="comma-separated: auto, fp32, int8, bf16 (the first is the baseline)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "bulk.json"), help="JSON output")
    args = p.parse_args()
    precisions = args.precisions.split(",")
    facts = {"cores": os.cpu_count(), "torch": torch.__version__, "loadavg_start": os.getloadavg()}
    print(f"{facts['cores']} cores, load {facts['loadavg_start']}", flush=True)
    procs = [int(x) for x in args.procs.split(",")]
    with tempfile.TemporaryDirectory(prefix="vatt-bench-bulk-") as tmp:
        rows = [] if args.import_only else embed_rows("tiny", args.files, procs, Path(tmp), precisions)
        if args.base_files and not args.import_only:
            rows += embed_rows(args.base, args.base_files, procs, Path(tmp), precisions)
        imp = import_row(args.segments, args.index_type, Path(tmp))
    facts["loadavg_end"] = os.getloadavg()
    print("\n| preset | precision | procs | files | windows | run s | wall s | files/s | windows/s | x vs first row |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = next(b for b in rows if b["preset"] == r["preset"])
        ratio = r["windows_per_s"] / base["windows_per_s"]
        print(f"| {r['preset']} | {r['asked']}={r['precision']} | {r['procs']} | {r['files']} | {r['windows']} "
              f"| {r['run_s']:.1f} | {r['wall_s']:.1f} "
              f"| {r['files_per_s']:.2f} | {r['windows_per_s']:.2f} | {ratio:.2f} |")
    print(f"\nimport of {imp['segments']} segments ({imp['items']} items, {imp['shards']} shards, "
          f"{imp['index_type']}): {imp['import_s']:.1f} s ({imp['segments_per_s']:.0f} segments/s, "
          f"index build {imp['index_build_s']:.1f} s); "
          f"again: {imp['reimport_s']:.1f} s, {imp['reimport_added']} added; writing the shards took "
          f"{imp['write_shards_s']:.1f} s")
    print(f"load average start {facts['loadavg_start']}, end {facts['loadavg_end']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": facts, "args": vars(args), "embed": rows, "import": imp}, indent=2))
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
