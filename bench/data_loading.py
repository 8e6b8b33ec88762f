"""Training-sample throughput: decoding a window per sample vs cutting it from preloaded clips.

Builds a synthetic corpus (64 px, 3.2-4.8 s clips), then times ``ClipDataset`` samples (random
window, crop, resize, audio noise, 5 tokenised captions) in one process, both ways, in the same
run; the ratio is the figure. ``--preload`` in the trainer is the second row.

    python bench/data_loading.py [--clips 200] [--samples 600]

Prints a markdown table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import load_tokenizer  # noqa: E402
from training.data import Augment, ClipDataset, read_manifest, transcript_texts  # noqa: E402
from training.synthetic import generate  # noqa: E402
from training.tokenizer import train_tokenizer  # noqa: E402


def rate(ds: ClipDataset, samples: int) -> float:
    """Samples per second over ``samples`` draws (cycling through epochs)."""
    t0 = time.perf_counter()
    for k in range(samples):
        ds.set_epoch(k // len(ds))
        ds[k % len(ds)]
    return samples / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--samples", type=int, default=600)
    p.add_argument("--out", default="bench/results/data_loading.json")
    args = p.parse_args()
    torch.set_num_threads(1)  # one loader process's view; workers run one such process per core
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        generate(corpus, n=args.clips, n_heldout=1, seed=0, workers=2)
        items = read_manifest(corpus / "train.jsonl")
        tok = train_tokenizer(transcript_texts(items), Path(tmp) / "tok", vocab_size=300, kind="bpe")
        tok.save(Path(tmp) / "tok")
        tok = load_tokenizer(Path(tmp) / "tok")
        aug = Augment(crop_area=(0.4, 1.0), flip=False, brightness=None, saturation=None, contrast=None, hue=None)

        def dataset() -> ClipDataset:
            return ClipDataset(items, num_frames=8, fps=2.5, image_size=64, sample_rate=16000, tokenizer=tok, augment=aug)

        decode = rate(dataset(), args.samples)
        cached = dataset()
        t0 = time.perf_counter()
        held = cached.preload(workers=min(4, os.cpu_count() or 1))
        preload_s = time.perf_counter() - t0
        preloaded = rate(cached, args.samples)
    rows = {"decode per sample": decode, "preloaded": preloaded}
    print(f"\n{args.clips} clips, {args.samples} samples, 1 thread; preload took {preload_s:.1f} s and holds "
          f"{held / 2**20:.0f} MB\n")
    print("| path | samples/s | x decode |")
    print("|---|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.1f} | {value / decode:.1f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                                           "load_average_1m": os.getloadavg()[0]},
                               "clips": args.clips, "samples": args.samples, "preload_s": preload_s, "preload_bytes": held,
                               "samples_per_s": rows, "speedup": preloaded / decode}, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
