"""Side by side: one video clip through PyTorch (fp32, int8) and ONNX Runtime's CPU provider (fp32, int8).

Decides whether ONNX Runtime would be the faster int8 engine (issue 12 asked for one such run).
Needs `pip install onnxruntime onnx onnxscript` (not project dependencies: not adopted unless faster).

    python bench/onnx_runtime.py [--preset vatt-ms-bbs] [--repeats 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import VATT, VattConfig, quantize_int8  # noqa: E402


class _Video(torch.nn.Module):
    def __init__(self, model: VATT) -> None:
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.model.encode_video(video)["va"]


def _time(fn, repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="vatt-ms-bbs")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "onnx_runtime.json"))
    args = p.parse_args(argv)
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = VattConfig.preset(args.preset)
    fp32 = VATT(cfg).eval().requires_grad_(False)
    c = cfg.input
    x = torch.rand(1, 3, c.num_frames, c.image_size, c.image_size) * 2 - 1
    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    with torch.inference_mode():
        ref = fp32.encode_video(x)["va"]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_fp32, onnx_int8 = Path(tmp) / "video.onnx", Path(tmp) / "video.int8.onnx"
        torch.onnx.export(_Video(fp32).eval(), (x,), str(onnx_fp32), input_names=["video"], output_names=["va"], dynamo=True,
                          external_data=True)
        quantize_dynamic(str(onnx_fp32), str(onnx_int8), weight_type=QuantType.QInt8, per_channel=True,
                         use_external_data_format=True)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        sessions = {name: ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                    for name, path in (("onnxruntime fp32", onnx_fp32), ("onnxruntime int8", onnx_int8))}
        int8 = quantize_int8(copy.deepcopy(fp32))
        feed = {"video": x.numpy()}
        runs = {"torch fp32": lambda: fp32.encode_video(x)["va"].numpy(),
                "torch int8": lambda: int8.encode_video(x)["va"].numpy(),
                **{name: (lambda s=s: s.run(["va"], feed)[0]) for name, s in sessions.items()}}
        with torch.inference_mode():
            for name, fn in runs.items():
                out = torch.from_numpy(np.asarray(fn()))
                results[name] = {"seconds": _time(fn, args.repeats),
                                 "cosine_to_torch_fp32": torch.nn.functional.cosine_similarity(out, ref).min().item()}
    load_after = os.getloadavg()
    base = results["torch fp32"]["seconds"]
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {args.threads} threads; "
          f"{args.preset} video clip {c.num_frames}x{c.image_size}^2, batch 1\n")
    print("| engine | s/clip | speed vs torch fp32 | cosine to torch fp32 |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['seconds']:.2f} | {base / r['seconds']:.2f}x | {r['cosine_to_torch_fp32']:.4f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": args.preset, "load_average": {"before": load_before, "after": load_after},
                               "onnxruntime": ort.__version__, "torch": torch.__version__, "results": results}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
