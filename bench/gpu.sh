#!/usr/bin/env bash
# Every GPU measurement in one go, for a machine with CUDA (this repository's CPU hosts have none):
# encoders at bf16 autocast with large batches and pinned-memory transfers, then the ingest pipeline.
#     bench/gpu.sh [BATCH]          (default 32); results under bench/results/*_cuda.json
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
BATCH="${1:-32}"
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: bench/gpu.sh needs a GPU")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" "$ROOT/bench/encoders.py" --device cuda --batch "$BATCH" --presets tiny,vatt-ms-bbs,vatt-ms-mbs \
  --keep-tokens 1,0.75,0.5 --repeats 10 --out "$ROOT/bench/results/encoders_cuda.json"
"$PY" "$ROOT/bench/encoders.py" --device cuda --batch 1 --presets vatt-ms-bbs --repeats 10 --no-decode \
  --out "$ROOT/bench/results/encoders_cuda_b1.json"
VATT_DEVICE=cuda "$PY" "$ROOT/bench/ingest.py" --device cuda --precisions fp32 --chunk "$BATCH" --base-windows 64 \
  --out "$ROOT/bench/results/ingest_cuda.json"
