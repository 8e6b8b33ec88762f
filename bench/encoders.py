"""Encoder throughput: clips/s per modality and achieved GFLOP/s beside this machine's fp32 matmul.

The figure that matters is the ratio `achieved / matmul`: how close the encoders run to the
machine's own dense fp32 matmul rate measured in the same run. Also decoded windows/s for a
10 s 320x240 H.264+AAC file (PyAV decode + resample + crop), the preprocessing cost per window.

    python bench/encoders.py [--presets tiny,vatt-ms-bbs] [--repeats 3] [--threads 2]
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
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import VATT, VattConfig  # noqa: E402
from model.media import WindowSpec, iter_windows  # noqa: E402


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def time_call(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bench_preset(name: str, batch: int, repeats: int) -> list[dict]:
    cfg = VattConfig.preset(name)
    model = VATT(cfg).eval().requires_grad_(False)
    c = cfg.input
    inputs = {
        "video": (model.encode_video, torch.rand(batch, 3, c.num_frames, c.image_size, c.image_size) * 2 - 1),
        "audio": (model.encode_audio, torch.rand(batch, c.num_samples) * 2 - 1),
        "text": (model.encode_text, torch.randint(1, cfg.text_vocab_size, (batch, c.text_len))),
    }
    rows = []
    with torch.no_grad():
        # time everything first: FlopCounterMode's module hooks must not sit inside a timed call
        seconds_by = {m: time_call(lambda: fn(x), repeats) for m, (fn, x) in inputs.items()}
        flops_by = {m: count_flops(lambda: fn(x)) for m, (fn, x) in inputs.items()}
        for modality in inputs:
            seconds, flops = seconds_by[modality], flops_by[modality]
            rows.append({"preset": name, "modality": modality, "batch": batch, "seconds_per_batch": seconds,
                         "clips_per_s": batch / seconds, "gflop_per_clip": flops / batch / 1e9,
                         "achieved_gflops": flops / seconds / 1e9})
    return rows


def bench_decode(repeats: int) -> dict:
    from _media import make_video

    with tempfile.TemporaryDirectory() as tmp:
        path = make_video(Path(tmp) / "bench.mp4", duration=10.0, fps=25, width=320, height=240, codec="h264", audio=True)
        spec = WindowSpec()  # 32 frames at 10 fps, 224 px, 48 kHz: the Base input
        n = len(list(iter_windows(path, spec)))
        seconds = time_call(lambda: list(iter_windows(path, spec)), repeats)
    return {"file": "10 s 320x240 H.264+AAC 25 fps", "windows": n, "seconds_per_file": seconds, "windows_per_s": n / seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,vatt-ms-bbs", help="comma-separated VattConfig presets")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "encoders.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    baseline = matmul_gflops()
    rows = [r for name in args.presets.split(",") for r in bench_preset(name, args.batch, args.repeats)]
    decode = bench_decode(args.repeats)
    baseline_after = matmul_gflops()  # measured again: other load on the machine shows as a gap
    ref = (baseline + baseline_after) / 2

    print(f"fp32 matmul baseline (2048^3): {baseline:.1f} GFLOP/s before, {baseline_after:.1f} after, {args.threads} threads\n")
    print("| preset | modality | batch | clips/s | GFLOP/clip | achieved GFLOP/s | achieved / matmul |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        r["ratio_to_matmul"] = r["achieved_gflops"] / ref
        print(f"| {r['preset']} | {r['modality']} | {r['batch']} | {r['clips_per_s']:.2f} | {r['gflop_per_clip']:.2f} "
              f"| {r['achieved_gflops']:.1f} | {r['ratio_to_matmul']:.2f} |")
    print(f"\n| decode | windows | s/file | windows/s |\n|---|---|---|---|\n| {decode['file']} | {decode['windows']} "
          f"| {decode['seconds_per_file']:.2f} | {decode['windows_per_s']:.1f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "threads": args.threads, "torch": torch.__version__},
        "matmul_gflops": {"before": baseline, "after": baseline_after}, "encoders": rows, "decode": decode,
    }, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
