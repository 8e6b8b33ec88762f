"""Training throughput (clips/s): tiny and Base (vatt-ms-bbs) at batch 2, DropToken 0 vs 0.5.

One full optimizer step per iteration (video + audio + 5 captions per clip forward, NCE +
MIL-NCE, backward, Adam) on fixed random inputs of each preset's shape, so data loading is not
measured. Every configuration is measured in the same run on the same machine; the DropToken
speed-up (clips/s at 0.5 over clips/s at 0) is the figure to read.

    python bench/train_throughput.py                     # CPU, tiny 10 steps, Base 2 steps
    python bench/train_throughput.py --device cuda --base-steps 10

Prints a markdown table and writes JSON (with machine facts) under bench/results/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import VATT, VattConfig  # noqa: E402
from training.losses import mil_nce_loss, nce_loss, total_loss  # noqa: E402
from training.pretrain import PretrainModel  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(preset: str, rate: float, *, batch: int, steps: int, warmup: int, device: torch.device) -> dict:
    """Seconds per optimizer step and clips/s for one preset and DropToken rate."""
    cfg = VattConfig.preset(preset, drop_token_rate=rate)
    torch.manual_seed(0)
    net = PretrainModel(VATT(cfg)).to(device).train()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-5, eps=1e-7)
    inp = cfg.input
    gen = torch.Generator().manual_seed(0)
    video = (torch.rand(batch, 3, inp.num_frames, inp.image_size, inp.image_size, generator=gen) * 2 - 1).to(device)
    audio = (torch.rand(batch, inp.num_samples, generator=gen) * 2 - 1).to(device)
    text = torch.randint(1, cfg.text_vocab_size, (batch, 5, inp.text_len), generator=gen).to(device)

    def step() -> float:
        v_va, v_vt, a_va, t_vt = net(video, audio, text)
        loss = total_loss(mil_nce_loss(v_vt, t_vt), nce_loss(v_va, a_va))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    params = sum(p.numel() for p in net.parameters())
    del net, opt
    return {"model": preset, "batch": batch, "drop_token_rate": rate, "steps": steps, "s_per_step": seconds,
            "clips_per_s": batch / seconds, "params_m": params / 1e6,
            "input": f"{inp.num_frames}x{inp.image_size}^2 @ {inp.fps} fps, {inp.num_samples} samples"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--batch", type=int, default=2, help="clips per step")
    p.add_argument("--tiny-steps", type=int, default=10, help="timed steps for the tiny preset")
    p.add_argument("--base-steps", type=int, default=2, help="timed steps for vatt-ms-bbs (seconds per step on CPU)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.5], help="DropToken rates; the first is the baseline")
    p.add_argument("--models", nargs="+", default=["tiny", "vatt-ms-bbs"], help="presets to measure")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for the JSON result")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for preset in args.models:
        steps = args.tiny_steps if preset.startswith("tiny") else args.base_steps
        for rate in args.rates:
            row = measure(preset, rate, batch=args.batch, steps=steps, warmup=args.warmup, device=device)
            base = next((r for r in rows if r["model"] == preset), row)
            row["speedup_vs_first_rate"] = row["clips_per_s"] / base["clips_per_s"]
            rows.append(row)
            print(f"measured {preset} DropToken {rate}: {row['s_per_step']:.3f} s/step", file=sys.stderr, flush=True)
    print("| model | params (M) | batch | DropToken | s/step | clips/s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params_m']:.1f} | {r['batch']} | {r['drop_token_rate']} | {r['s_per_step']:.3f} | "
              f"{r['clips_per_s']:.2f} | {r['speedup_vs_first_rate']:.2f}x |")
    machine = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
               "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"train_throughput-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps({"machine": machine, "args": vars(args), "rows": rows}, indent=1) + "\n")
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
