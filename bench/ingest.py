"""Ingest pipeline: windows/s of decode alone, encode alone and the service's decode-ahead pipeline.

One long generated video per preset goes through three measurements in the same run:
  decode   `iter_windows` + tensor conversion, nothing else (the decode thread's work);
  encode   the same windows, already in memory, through the model in chunks (pure inference);
  pipeline `Encoder.embed_file` through the `Batcher`: decoding in its own thread ahead of the
           batched forwards, as `POST /items` runs it.
The overlap ratio is pipeline / encode: 1.0 means decoding is fully hidden behind inference
(the target is <= 1.2 when encoding is the slower side); pipeline / (decode + encode) is what a
serial loop would cost. Base on a 10-minute video is hours on a small CPU: `--base-windows`
caps its video to that many windows, and the table says so.

    python bench/ingest.py [--presets tiny,vatt-ms-bbs] [--precisions fp32,int8,bf16,auto] [--minutes 10] [--base-windows 8]

Precisions are applied as the service applies them (`model.inference.prepare_for_inference`);
the table names what `auto` resolved to, and the same-run fp32 and bf16 matmul rates are printed.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.services.batcher import Batcher  # noqa: E402
from app.services.encoder import Encoder  # noqa: E402
from model import VATT, VattConfig, WordTokenizer, probe_capability  # noqa: E402
from model.capability import matmul_gflops  # noqa: E402
from model.inference import prepare_for_inference  # noqa: E402
from model.media import WindowSpec, count_windows, iter_windows  # noqa: E402


def _video(path: Path, seconds: float, size: tuple[int, int]) -> Path:
    from _media import make_video  # bench/_media.py, beside this script

    return make_video(path, duration=seconds, fps=10, width=size[0], height=size[1], codec="h264", audio=True)


def _decode(path: Path, spec: WindowSpec) -> tuple[list[torch.Tensor], float]:
    t0 = time.perf_counter()
    tensors = [w.video_tensor() for w in iter_windows(path, spec, audio=False)]
    return tensors, time.perf_counter() - t0


def _encode(model: VATT, tensors: list[torch.Tensor], chunk: int) -> float:
    """Pure inference, as the batcher runs it (pinned transfer and bf16 autocast on CUDA)."""
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    t0 = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        for i in range(0, len(tensors), chunk):
            x = torch.stack(tensors[i : i + chunk])
            model.encode_video((x.pin_memory() if cuda else x).to(device, non_blocking=True))["va"].cpu()
    return time.perf_counter() - t0


def _pipeline(model: VATT, path: Path, chunk: int, max_rows: int) -> tuple[int, float]:
    batcher = Batcher(model, max_rows=max_rows, wait_ms=0).start()
    try:
        encoder = Encoder(model, WordTokenizer(["<pad>", "<unk>"]), batcher, chunk=chunk, prefetch=2 * chunk)
        t0 = time.perf_counter()
        emb = encoder.embed_file(path)
        return emb.n_segments, time.perf_counter() - t0
    finally:
        batcher.close()


def bench(name: str, precision: str, path: Path, chunk: int, capped: str, device: str) -> dict:
    torch.manual_seed(0)
    model = VATT(VattConfig.preset(name), device=device).requires_grad_(False)
    model = prepare_for_inference(model, precision=precision)
    spec = WindowSpec.from_input(model.config.input)
    _encode(model, [torch.zeros(3, spec.num_frames, spec.size, spec.size)] * min(chunk, 2), chunk)  # warm-up
    tensors, decode_s = _decode(path, spec)
    encode_s = _encode(model, tensors, chunk)
    n, pipeline_s = _pipeline(model, path, chunk, max_rows=2 * chunk)
    assert n == len(tensors)
    return {"preset": name, "precision": model.precision_choice.precision, "asked": precision, "video": capped,
            "windows": n, "chunk": chunk,
            "decode_s": decode_s, "encode_s": encode_s, "pipeline_s": pipeline_s,
            "decode_wps": n / decode_s, "encode_wps": n / encode_s, "pipeline_wps": n / pipeline_s,
            "overlap_ratio": pipeline_s / encode_s, "vs_serial": pipeline_s / (decode_s + encode_s),
            "vs_slower_stage": pipeline_s / max(decode_s, encode_s)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="tiny,vatt-ms-bbs")
    p.add_argument("--precisions", default="fp32,int8")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the generated video")
    p.add_argument("--base-windows", type=int, default=8, help="windows for non-tiny presets (their video is cut to this)")
    p.add_argument("--chunk", type=int, default=8, help="windows per forward (the service's ingest_chunk)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--device", default="cpu", help="cpu, or cuda (pinned-memory transfers)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "ingest.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    small = 2048 if probe_capability(args.device).bf16_units else 256  # emulated bf16: a small GEMM
    rates = {"fp32": matmul_gflops(torch.float32, 2048, device=args.device),
             "bf16": matmul_gflops(torch.bfloat16, small, device=args.device)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets.split(","):
            inp = VattConfig.preset(name).input
            seconds = args.minutes * 60
            capped = f"{args.minutes:g} min"
            if name != "tiny":
                seconds = args.base_windows * inp.clip_seconds
                full = count_windows(args.minutes * 60, WindowSpec.from_input(inp))
                capped = f"{seconds:.1f} s ({args.base_windows} windows; 10 min would be {full})"
            path = _video(Path(tmp) / f"{name}.mp4", seconds, (320, 240))
            for precision in args.precisions.split(","):
                rows.append(bench(name, precision, path, args.chunk, capped, args.device))
                print(f"done {name} {precision}", file=sys.stderr)
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {args.threads} threads; matmul "
          f"fp32 {rates['fp32']:.1f} GFLOP/s, bf16 {rates['bf16']:.1f} GFLOP/s (same run)\n")
    print("| preset | precision | video | windows | decode w/s | encode w/s | pipeline w/s | pipeline / encode "
          "| pipeline / (decode + encode) | pipeline / slower stage |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        label = r["precision"] if r["asked"] == r["precision"] else f"{r['asked']}={r['precision']}"
        print(f"| {r['preset']} | {label} | {r['video']} | {r['windows']} | {r['decode_wps']:.2f} "
              f"| {r['encode_wps']:.2f} | {r['pipeline_wps']:.2f} | {r['overlap_ratio']:.2f} | {r['vs_serial']:.2f} "
              f"| {r['vs_slower_stage']:.2f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                                           "torch": torch.__version__},
                               "load_average": {"before": load_before, "after": load_after}, "matmul_gflops": rates,
                               "capability": probe_capability(args.device).summary(), "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
