"""Training throughput (clips/s): tiny and Base (vatt-ms-bbs) at batch 2, DropToken 0 vs 0.5, fp32 vs bf16.

One full optimizer step per iteration (video + audio + 5 captions per clip forward, NCE +
MIL-NCE, backward, Adam) on fixed random inputs of each preset's shape, so data loading is not
measured. Every configuration is measured in the same run on the same machine; the DropToken
speed-up (clips/s at 0.5 over clips/s at 0) is the figure to read.

    python bench/train_throughput.py                     # CPU, tiny 10 steps, Base 2 steps
    python bench/train_throughput.py --device cuda --base-steps 10
    python bench/train_throughput.py --precisions fp32,bf16 --rates 0 --loss-steps 20

`--precisions fp32,bf16` adds bf16 rows (training.pretrain.autocast_forward, as `vatt train
--precision bf16` runs: autocast forward, fp32 losses, weights and Adam); steps/s ratio vs fp32 in
the same run, with the same-run fp32 and bf16 matmul rates. `--loss-steps N` also trains N steps
on one fixed batch (eval mode: no dropout or DropToken) in fp32 and in bf16 from the same weights
and reports the largest per-step gap of the total, MIL-NCE and NCE losses (the test holds the
tiny/demo model to 0.03 nats). Without bf16 units (see the matmul rates) bf16 is emulated and
Base bf16 takes minutes a step: keep it to tiny there.

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
from model.capability import matmul_gflops, probe_capability  # noqa: E402
from training.pretrain import PretrainModel, autocast_forward  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(preset: str, rate: float, *, batch: int, steps: int, warmup: int, device: torch.device,
            precision: str = "fp32") -> dict:
    """Seconds per optimizer step and clips/s for one preset, DropToken rate and precision."""
    cfg = VattConfig.preset(preset, drop_token_rate=rate)
    torch.manual_seed(0)
    net = PretrainModel(VATT(cfg)).to(device).train()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-5, eps=1e-7)
    inp = cfg.input
    gen = torch.Generator().manual_seed(0)
    video = (torch.rand(batch, 3, inp.num_frames, inp.image_size, inp.image_size, generator=gen) * 2 - 1).to(device)
    audio = (torch.rand(batch, inp.num_samples, generator=gen) * 2 - 1).to(device)
    text = torch.randint(1, cfg.text_vocab_size, (batch, 5, inp.text_len), generator=gen).to(device)
    forward = autocast_forward(net, precision, device)

    def step() -> float:
        v_va, v_vt, a_va, t_vt = forward(video, audio, text)
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
    return {"model": preset, "precision": precision, "batch": batch, "drop_token_rate": rate, "steps": steps,
            "s_per_step": seconds, "steps_per_s": 1 / seconds,
            "clips_per_s": batch / seconds, "params_m": params / 1e6,
            "input": f"{inp.num_frames}x{inp.image_size}^2 @ {inp.fps} fps, {inp.num_samples} samples"}


def loss_gap(preset: str, steps: int, *, batch: int, device: torch.device) -> dict:
    """Largest per-step gap between bf16 and fp32 training losses (total, MIL-NCE, NCE) over `steps`
    Adam steps (lr 1e-4) on one fixed batch, from the same initial weights."""
    cfg = VattConfig.preset(preset, drop_token_rate=0.0)
    inp, gen = cfg.input, torch.Generator().manual_seed(0)
    video = (torch.rand(batch, 3, inp.num_frames, inp.image_size, inp.image_size, generator=gen) * 2 - 1).to(device)
    audio = (torch.randn(batch, inp.num_samples, generator=gen) * 0.3).to(device)
    text = torch.randint(1, cfg.text_vocab_size, (batch, 2, inp.text_len), generator=gen).to(device)
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        net = PretrainModel(VATT(cfg)).to(device).eval()  # eval: no dropout; gradients flow all the same
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4, eps=1e-7)
        forward, losses = autocast_forward(net, precision, device), []
        for _ in range(steps):
            v_va, v_vt, a_va, t_vt = forward(video, audio, text)
            l_vt, l_va = mil_nce_loss(v_vt, t_vt), nce_loss(v_va, a_va)
            loss = total_loss(l_vt, l_va)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append((loss.item(), l_vt.item(), l_va.item()))
        runs[precision] = losses
    gaps = [max(abs(a - b) for a, b in zip(f, h)) for f, h in zip(runs["fp32"], runs["bf16"])]
    return {"model": preset, "steps": steps, "batch": batch, "max_gap": max(gaps),
            "fp32_first_last": [runs["fp32"][0][0], runs["fp32"][-1][0]],
            "bf16_first_last": [runs["bf16"][0][0], runs["bf16"][-1][0]]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--batch", type=int, default=2, help="clips per step")
    p.add_argument("--tiny-steps", type=int, default=10, help="timed steps for the tiny preset")
    p.add_argument("--base-steps", type=int, default=2, help="timed steps for vatt-ms-bbs (seconds per step on CPU)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.5], help="DropToken rates; the first is the baseline")
    p.add_argument("--models", nargs="+", default=["tiny", "vatt-ms-bbs"], help="presets to measure")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--precisions", default="fp32", help="comma-separated fp32,bf16 (the first is the baseline)")
    p.add_argument("--loss-steps", type=int, default=0, help="also compare bf16 and fp32 losses over this many steps")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for the JSON result")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    precisions = args.precisions.split(",")
    load_before = os.getloadavg()
    bf16_n = 2048 if probe_capability(device).bf16_units else 256  # emulated bf16: a small GEMM
    rates = {"fp32": matmul_gflops(torch.float32, 2048, device=str(device)),
             **({"bf16": matmul_gflops(torch.bfloat16, bf16_n, device=str(device))} if "bf16" in precisions else {})}
    rows = []
    for preset in args.models:
        steps = args.tiny_steps if preset.startswith("tiny") else args.base_steps
        for precision in precisions:
            for rate in args.rates:
                row = measure(preset, rate, batch=args.batch, steps=steps, warmup=args.warmup, device=device,
                              precision=precision)
                base = next((r for r in rows if r["model"] == preset), row)
                row["speedup_vs_first_row"] = row["clips_per_s"] / base["clips_per_s"]
                rows.append(row)
                print(f"measured {preset} {precision} DropToken {rate}: {row['s_per_step']:.3f} s/step", file=sys.stderr,
                      flush=True)
    gaps = [loss_gap(preset, args.loss_steps, batch=args.batch, device=device) for preset in args.models] \
        if args.loss_steps else []
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; matmul (same run): "
          + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rates.items()) + "\n")
    print("| model | params (M) | precision | batch | DropToken | s/step | steps/s | clips/s | vs first row |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params_m']:.1f} | {r['precision']} | {r['batch']} | {r['drop_token_rate']} "
              f"| {r['s_per_step']:.3f} | {r['steps_per_s']:.3f} | {r['clips_per_s']:.2f} | {r['speedup_vs_first_row']:.2f}x |")
    for g in gaps:
        print(f"\nbf16 vs fp32 losses, {g['model']}, {g['steps']} steps on one batch of {g['batch']}: largest gap "
              f"{g['max_gap']:.4f} nats (fp32 {g['fp32_first_last'][0]:.3f} -> {g['fp32_first_last'][1]:.3f}, "
              f"bf16 {g['bf16_first_last'][0]:.3f} -> {g['bf16_first_last'][1]:.3f})")
    machine = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
               "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "load_average": {"before": load_before, "after": load_after}, "matmul_gflops": rates,
               "capability": probe_capability(device).summary()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"train_throughput-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps({"machine": machine, "args": vars(args), "rows": rows, "loss_gaps": gaps}, indent=1) + "\n")
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
