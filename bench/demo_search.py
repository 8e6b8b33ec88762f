"""Text search quality of a running demo: does "a red ring moves left" find a red ring moving left?

For every colour x shape x motion that the catalogue holds (synthetic corpus labels in item
metadata), query ``POST /search`` with the plain narration "a {colour} {shape} {verb}" and check
the rank-1 item's labels. Prints a table beside chance and writes JSON.

    make demo &                                   # or: vatt demo --data data
    python bench/demo_search.py --url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import time
from pathlib import Path

import httpx

from training.synthetic import VERBS

ATTRS = ("colour", "shape", "motion")


def catalogue(client: httpx.Client) -> list[dict]:
    """Every item with its metadata (paged)."""
    items, offset = [], 0
    while True:
        page = client.get("/items", params={"limit": 200, "offset": offset}).raise_for_status().json()
        rows = page["items"]
        items += rows
        if len(rows) < 200:
            return items
        offset += 200


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--out", default="bench/results/demo_search.json")
    args = p.parse_args()
    with httpx.Client(base_url=args.url, timeout=30) as client:
        items = [i for i in catalogue(client) if all(a in i["metadata"] for a in ATTRS)]
        combos = collections.Counter(tuple(i["metadata"][a] for a in ATTRS) for i in items)
        split_of = {tuple(i["metadata"][a] for a in ATTRS): i["metadata"].get("split", "?") for i in items}
        rows, t0 = [], time.perf_counter()
        for colour, shape, motion in sorted(combos):
            query = f"a {colour} {shape} {VERBS[motion][0]}"
            hits = client.post("/search", json={"text": query, "k": 5}).raise_for_status().json()["results"]
            top = [tuple(h["item"]["metadata"].get(a) for a in ATTRS) for h in hits]
            want = (colour, shape, motion)
            rows.append({"query": query, "split": split_of[want], "rank1": list(top[0]) if top else None,
                         "exact_at_1": bool(top) and top[0] == want, "exact_in_5": want in top,
                         **{f"{a}_at_1": bool(top) and top[0][k] == want[k] for k, a in enumerate(ATTRS)}})
        elapsed = time.perf_counter() - t0

    def rate(key: str, split: str | None = None) -> float:
        sel = [r for r in rows if split is None or r["split"] == split]
        return sum(r[key] for r in sel) / max(1, len(sel))

    n_items = len(items)
    chance_exact = 1 / len(combos)  # a random item has the wanted combination, averaged over the queries
    values = {a: {i["metadata"][a] for i in items} for a in ATTRS}
    print(f"\n{len(rows)} queries over {n_items} items ({len(combos)} colour x shape x motion combinations) in {elapsed:.1f} s\n")
    print("| measure | all queries | seen pairs | held-out pairs | chance |")
    print("|---|---|---|---|---|")
    table = {}
    for key, chance in [("exact_at_1", chance_exact), ("exact_in_5", min(1.0, 5 * chance_exact)),
                        *[(f"{a}_at_1", 1 / len(values[a])) for a in ATTRS]]:
        table[key] = {"all": rate(key), "train": rate(key, "train"), "heldout": rate(key, "heldout"), "chance": chance}
        print(f"| {key} | {table[key]['all']:.2f} | {table[key]['train']:.2f} | {table[key]['heldout']:.2f} | {chance:.3f} |")
    misses = [r for r in rows if not r["exact_at_1"]][:10]
    if misses:
        print("\nfirst misses: " + "; ".join(f"{r['query']!r} -> {' '.join(r['rank1'] or [])}" for r in misses))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"python": platform.python_version(), "url": args.url}, "n_items": n_items,
                               "n_queries": len(rows), "results": table, "queries": rows}, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
