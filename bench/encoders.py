"""Encoder throughput: clips/s per modality per precision, and the share of this machine's matmul rate.

The figure that matters is `achieved / matmul`: how close the encoders run to the machine's own
dense matmul rate measured in the same run (fp32 GEMM for fp32, int8 dynamic Linear for int8,
bf16 GEMM for bf16). Precisions: fp32; int8 (the x86 engine, as served) and int8-fbgemm /
int8-onednn (the engines compared); bf16 (weights cast, as served) and bf16-autocast (the
alternative it was chosen over); auto (what `precision="auto"` resolves to on this machine).
The bf16 matmul rate tells whether this CPU has bf16 units: without them bf16 is emulated, ~100x
slower than fp32, so keep bf16 to the tiny preset there.
FLOPs are counted exactly from the config (the formula is printed under the table), not by
FlopCounterMode, which misses SDPA's products on some builds and all quantised kernels.
`--keep-tokens 1,0.75,0.5` adds the token budget: speed and the cosine of each head to the
full-token embedding. Also decoded windows/s for a 10 s 320x240 H.264+AAC file.

    python bench/encoders.py [--presets tiny,vatt-ms-bbs] [--precisions fp32,int8,bf16,auto] [--keep-tokens 1,0.75,0.5]
    python bench/encoders.py --device cuda --batch 32     # bf16 autocast, pinned-memory transfers
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import VATT, VattConfig, cast_bf16, probe_capability, quantize_int8, set_token_budget  # noqa: E402
from model.capability import matmul_gflops as dtype_matmul_gflops  # noqa: E402
from model.inference import prepare_for_inference  # noqa: E402
from model.config import EncoderConfig  # noqa: E402
from model.layers import keep_count  # noqa: E402
from model.media import WindowSpec, iter_windows  # noqa: E402

FORMULA = ("FLOPs per clip = sum over encoder layers of [8*N*d*h (q, k, v, o) + 4*N^2*h (QK^T and PV) "
           "+ 4*N*d*f (MLP)] + 2*P*K*d (patch projection: P patches of K values) + heads; N = tokens incl. AGG, "
           "d = d_model, h = heads*d_kv, f = d_ff (= 16*N*d^2 for the MLP when f = 4d, as in every preset)")


def _stack(cfg: EncoderConfig, n: int) -> int:
    h = cfg.num_heads * cfg.d_kv
    return cfg.num_layers * (8 * n * cfg.d_model * h + 4 * n * n * h + 4 * n * cfg.d_model * cfg.d_ff)


def clip_flops(cfg: VattConfig, modality: str, keep: float = 1.0) -> int:
    """Exact matmul FLOPs of one clip through an MS model (multiply-add = 2 FLOPs)."""
    if cfg.arch != "ms":
        raise ValueError("the exact count covers MS models (the presets benchmarked here)")
    c, heads = cfg.input, cfg.heads
    if modality == "video":
        v = cfg.video
        pt, ph, pw = v.patch_size
        patches = (c.num_frames // pt) * (c.image_size // ph) * (c.image_size // pw)
        n = keep_count(1 - keep, patches) if keep < 1 else patches
        return (2 * patches * 3 * pt * ph * pw * v.d_model + _stack(v, n + 1)
                + 2 * (v.d_model * heads.d_va + heads.d_va * heads.d_va + heads.d_va * heads.d_vt))
    if modality == "audio":
        a = cfg.audio
        patches = c.num_samples // a.patch_size
        n = keep_count(1 - keep, patches) if keep < 1 else patches
        return 2 * patches * a.patch_size * a.d_model + _stack(a, n + 1) + 2 * a.d_model * heads.d_va
    t = cfg.text
    n = c.text_len + 1
    return 2 * n * t.d_embedding * t.d_model + _stack(t, n) + 2 * t.d_model * heads.d_vt


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    return dtype_matmul_gflops(torch.float32, n, repeats)


def bf16_matmul_gflops() -> float:
    """The bf16 ceiling; a small GEMM where the CPU emulates bf16 (it runs ~1 GFLOP/s there)."""
    return dtype_matmul_gflops(torch.bfloat16, 2048 if probe_capability().bf16_units else 256, 3)


def int8_matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The int8 path's own ceiling: a dynamic int8 Linear [n, n] on n rows (quantise + GEMM), as the encoders use."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(n, n)), {torch.nn.Linear: per_channel_dynamic_qconfig},
                                 dtype=torch.qint8)
    x = torch.randn(n, n)
    with torch.no_grad():
        return 2 * n**3 / time_call(lambda: layer(x), repeats) / 1e9


def time_call(fn, repeats: int, sync=lambda: None) -> float:
    fn()  # warm-up
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeats


def _inputs(cfg: VattConfig, batch: int) -> dict[str, torch.Tensor]:
    c = cfg.input
    return {"video": torch.rand(batch, 3, c.num_frames, c.image_size, c.image_size) * 2 - 1,
            "audio": torch.rand(batch, c.num_samples) * 2 - 1,
            "text": torch.randint(1, cfg.text_vocab_size, (batch, c.text_len))}


def bench_preset(name: str, batch: int, repeats: int, precisions: list[str], keeps: list[float],
                 device: str, modalities: list[str]) -> list[dict]:
    cfg = VattConfig.preset(name)
    torch.manual_seed(0)
    fp32 = VATT(cfg).eval().requires_grad_(False)
    inputs = _inputs(cfg, batch)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows, reference = [], {}
    for precision in precisions:
        for keep in keeps:
            model = copy.deepcopy(fp32)
            label = precision
            if precision.startswith("int8"):
                quantize_int8(model, None if precision == "int8" else precision.split("-")[1])
            elif precision == "bf16":
                cast_bf16(model)
            elif precision == "auto":
                model = prepare_for_inference(model, precision="auto")
                label = f"auto={model.precision_choice.precision}"
            set_token_budget(model.to(device), keep)
            for modality in modalities:
                if modality == "text" and keep < 1:
                    continue  # the budget is for video and audio tokens
                x = inputs[modality].pin_memory() if cuda else inputs[modality]
                encode = getattr(model, f"encode_{modality}")

                autocast = cuda or precision == "bf16-autocast"

                def call():
                    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                                                                enabled=autocast):
                        return encode(x.to(device, non_blocking=True))

                seconds = time_call(call, repeats, sync)
                out = {k: v.float().cpu() for k, v in call().items() if k in ("va", "vt")}
                if precision == precisions[0] and keep == 1.0:
                    reference[modality] = out
                cos = min(F.cosine_similarity(out[k], reference[modality][k], dim=-1).min().item() for k in out)
                flops = clip_flops(cfg, modality, keep) * batch
                rows.append({"preset": name, "modality": modality, "precision": "bf16" if cuda else label,
                             "keep_tokens": keep, "batch": batch, "seconds_per_batch": seconds,
                             "clips_per_s": batch / seconds, "gflop_per_clip": flops / batch / 1e9,
                             "achieved_gflops": flops / seconds / 1e9, "cosine_to_reference": cos})
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
    parser.add_argument("--presets", default="tiny,vatt-ms-bbs", help="comma-separated VattConfig presets (MS)")
    parser.add_argument("--precisions", default="fp32,int8,auto",
                        help="fp32 first (the baseline), then any of int8, int8-fbgemm, int8-onednn, bf16, "
                             "bf16-autocast, auto (CPU); cuda runs bf16 autocast")
    parser.add_argument("--keep-tokens", default="1", help="comma-separated token budgets, e.g. 1,0.75,0.5")
    parser.add_argument("--modalities", default="video,audio,text")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (bf16 autocast, pinned-memory transfers)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-decode", action="store_true", help="skip the decode row")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "encoders.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    precisions = ["fp32"] if cuda else args.precisions.split(",")
    keeps = [float(k) for k in args.keep_tokens.split(",")]
    load_before = os.getloadavg()

    int8 = any(p.startswith("int8") for p in precisions)
    bf16 = any(p.startswith("bf16") for p in precisions) or ("auto" in precisions and probe_capability().bf16_units)
    baseline = {"fp32": matmul_gflops(), **({"int8": int8_matmul_gflops()} if int8 else {}),
                **({"bf16": bf16_matmul_gflops()} if bf16 else {})}
    rows = [r for name in args.presets.split(",")
            for r in bench_preset(name, args.batch, args.repeats, precisions, keeps, args.device, args.modalities.split(","))]
    decode = None if args.no_decode else bench_decode(args.repeats)
    after = {"fp32": matmul_gflops(), **({"int8": int8_matmul_gflops()} if int8 else {}),
             **({"bf16": bf16_matmul_gflops()} if bf16 else {})}
    load_after = os.getloadavg()
    ref = {k: (baseline[k] + after[k]) / 2 for k in baseline}

    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {args.threads} threads; device {args.device}")
    print(f"capability: {probe_capability().summary()}")
    print("same-run matmul baselines (fp32 and int8 2048^3; bf16 256^3 where emulated): " + ", ".join(
        f"{k} {baseline[k]:.1f} GFLOP/s before, {after[k]:.1f} after" for k in baseline) + "\n")
    print("| preset | modality | precision | keep | batch | clips/s | speed vs fp32 full | cosine to fp32 full "
          "| GFLOP/clip | achieved GFLOP/s | / fp32 matmul | / own matmul |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    base_speed = {(r["preset"], r["modality"]): r["clips_per_s"] for r in rows
                  if r["precision"] == rows[0]["precision"] and r["keep_tokens"] == 1.0}
    for r in rows:
        kind = r["precision"].removeprefix("auto=").split("-")[0]
        own = ref.get(kind, ref["fp32"])
        r["ratio_to_fp32_matmul"] = r["achieved_gflops"] / ref["fp32"]
        r["ratio_to_own_matmul"] = r["achieved_gflops"] / own
        r["speedup"] = r["clips_per_s"] / base_speed[(r["preset"], r["modality"])]
        print(f"| {r['preset']} | {r['modality']} | {r['precision']} | {r['keep_tokens']:g} | {r['batch']} "
              f"| {r['clips_per_s']:.2f} | {r['speedup']:.2f}x | {r['cosine_to_reference']:.4f} | {r['gflop_per_clip']:.2f} "
              f"| {r['achieved_gflops']:.1f} | {r['ratio_to_fp32_matmul']:.2f} | {r['ratio_to_own_matmul']:.2f} |")
    print(f"\nFLOP count: {FORMULA}. A token budget k keeps int(k*P) patch tokens after the patch projection.")
    if decode:
        print(f"\n| decode | windows | s/file | windows/s |\n|---|---|---|---|\n| {decode['file']} | {decode['windows']} "
              f"| {decode['seconds_per_file']:.2f} | {decode['windows_per_s']:.1f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "threads": args.threads, "torch": torch.__version__, "device": args.device,
                    "gpu": torch.cuda.get_device_name() if cuda else None},
        "load_average": {"before": load_before, "after": load_after}, "flop_formula": FORMULA,
        "capability": probe_capability().summary(),
        "matmul_gflops": {"before": baseline, "after": after}, "encoders": rows, "decode": decode,
    }, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
