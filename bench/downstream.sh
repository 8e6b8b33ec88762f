#!/usr/bin/env bash
# Downstream proof at CPU scale: pretrain the tiny preset on the synthetic corpus, then
# (a) fine-tune its video backbone on the motion label and (b) linear-probe its frozen features,
# and do exactly the same to a randomly initialised backbone (same config, same fine-tuning
# steps). Prints held-out accuracy beside chance and writes bench/results/downstream.json.
#
#   bench/downstream.sh [WORK_DIR]                          (default: bench/results/downstream)
#   N=120 PRETRAIN_STEPS=300 FT_STEPS=60 bench/downstream.sh  (knobs below)
#   PRETRAINED=app/demo_model bench/downstream.sh            (skip pretraining: use that model directory)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-bench/results/downstream}"
N="${N:-120}"
HELDOUT="${HELDOUT:-30}"
PRETRAIN_STEPS="${PRETRAIN_STEPS:-300}"
FT_STEPS="${FT_STEPS:-60}"
LABEL="${LABEL:-motion}"
PROBE_LABEL="${PROBE_LABEL:-colour}"
SEED="${SEED:-0}"
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
mkdir -p "$WORK"
"$PY" -c 'import os; print("load average before: %.2f %.2f %.2f" % os.getloadavg())'
start=$(date +%s)
[ -f "$WORK/corpus/train.jsonl" ] || "$PY" -m training.synthetic --out "$WORK/corpus" --n "$N" --n-heldout "$HELDOUT" --seed "$SEED" --workers 2
mapfile -t RECIPE < <("$PY" -c 'from training.synthetic import RECIPE; print("\n".join(RECIPE))')
PRE="${PRETRAINED:-$WORK/runs/pre/model}"
if [ -z "${PRETRAINED:-}" ] && [ ! -f "$WORK/runs/pre/model/config.json" ]; then
  rm -rf "$WORK/runs/pre"
  "$PY" -m training.pretrain --train-manifest "$WORK/corpus/train.jsonl" --output-dir "$WORK/runs" --name pre \
    --steps "$PRETRAIN_STEPS" --batch-size 16 --seed "$SEED" "${RECIPE[@]}" --log-every 100 --eval-every 0 --checkpoint-every "$PRETRAIN_STEPS"
fi
pre_done=$(date +%s)
# the random backbone: the same model config, freshly initialised
"$PY" - "$WORK" "$PRE" <<'PYEOF'
import sys
from pathlib import Path
import torch
from model import VATT, load_pretrained, save_pretrained
work = Path(sys.argv[1])
torch.manual_seed(0)
save_pretrained(VATT(load_pretrained(sys.argv[2]).config), work / "random")
PYEOF
for init in pretrained random; do
  src="$PRE"; [ "$init" = random ] && src="$WORK/random"
  "$PY" -m training.finetune --model "$src" --modality video --label "$LABEL" \
    --train-manifest "$WORK/corpus/train.jsonl" --eval-manifest "$WORK/corpus/heldout.jsonl" --output-dir "$WORK/ft-$init" \
    --steps "$FT_STEPS" --batch-size 16 --warmup-steps 5 --lr 0.05 --workers 1 --no-augment --eval-clips 2 --eval-crops 3 \
    --seed "$SEED" --log-every 20 > "$WORK/ft-$init.log"
  "$PY" -m training.probe --model "$src" --label "$PROBE_LABEL" --train-manifest "$WORK/corpus/train.jsonl" \
    --eval-manifest "$WORK/corpus/heldout.jsonl" --clips 2 --output "$WORK/probe-$init.json" > /dev/null
done
end=$(date +%s)
"$PY" - "$WORK" "$((pre_done - start))" "$((end - pre_done))" "$LABEL" "$PROBE_LABEL" "${PRETRAINED:-$PRETRAIN_STEPS}" "$FT_STEPS" <<'PYEOF'
import json, os, sys
from pathlib import Path
work, pre_s, down_s, label, probe_label, pre_steps, ft_steps = sys.argv[1:]
work = Path(work)
rows, out = [], {"pretrain_steps": pre_steps, "finetune_steps": int(ft_steps), "pretrain_s": int(pre_s),
                 "downstream_s": int(down_s)}
for init in ("pretrained", "random"):
    ft = json.loads((work / f"ft-{init}/config.json").read_text())["metadata"]["eval"]
    pr = json.loads((work / f"probe-{init}.json").read_text())
    out[init] = {"finetune": ft, "probe": pr}
    rows.append(f"| {init} | fine-tune {label} top-1 | {ft['top1']:.3f} | {ft['top1_chance']:.3f} | {ft['n']} |")
    rows.append(f"| {init} | SVM probe {probe_label} top-1 | {pr['top1_mean']:.3f} | {pr['chance']:.3f} | {pr['n_test']['1']} |")
print(f"pretraining ({pre_steps} steps, or that directory): {pre_s} s; fine-tuning {ft_steps} steps + probes (both inits): {down_s} s")
print("| backbone | task (held-out) | accuracy | chance | n |\n|---|---|---|---|---|\n" + "\n".join(rows))
print("load average after: %.2f %.2f %.2f" % os.getloadavg())
out["load_after"] = os.getloadavg()
(Path("bench/results")).mkdir(parents=True, exist_ok=True)
Path("bench/results/downstream.json").write_text(json.dumps(out, indent=1) + "\n")
PYEOF
