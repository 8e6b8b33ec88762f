#!/usr/bin/env bash
# Demo search quality per inference option: builds the demo catalogue once per option (fp32, int8,
# bf16, auto, token budgets 0.75 and 0.5; the corpus is generated once and shared), serves it, and
# runs bench/demo_search.py against it. Results: bench/results/demo_search_<option>.json and a table.
#     bench/demo_quality.sh [WORKDIR] [OPTION...]   (default /tmp/vatt-demo-quality, every option;
#                                                    fp32 always runs first: it is the baseline)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
VATT="${VATT_BIN:-$ROOT/.venv/bin/vatt}"
WORK="${1:-/tmp/vatt-demo-quality}"
mkdir -p "$WORK" "$ROOT/bench/results"
ALL=("fp32 fp32 1.0" "int8 int8 1.0" "bf16 bf16 1.0" "auto auto 1.0" "keep075 fp32 0.75" "keep05 fp32 0.5")
WANT=" fp32 ${*:2} "
[ $# -le 1 ] && WANT=" fp32 int8 bf16 auto keep075 keep05 "
RAN=()
for opt in "${ALL[@]}"; do
  read -r name precision keep <<<"$opt"
  [[ "$WANT" == *" $name "* ]] || continue
  RAN+=("$name")
  data="$WORK/$name"
  if [ "$name" != fp32 ] && [ ! -e "$data/corpus" ]; then mkdir -p "$data" && ln -s "$WORK/fp32/corpus" "$data/corpus"; fi
  t0=$(date +%s)
  VATT_PRECISION=$precision VATT_KEEP_TOKENS=$keep "$VATT" demo --prepare-only --data "$data" >/dev/null 2>"$WORK/$name.ingest.log"
  echo "$name: catalogue built in $(( $(date +%s) - t0 )) s (load $(cut -d' ' -f1 /proc/loadavg))"
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  VATT_PRECISION=$precision VATT_KEEP_TOKENS=$keep "$VATT" serve --model "$data/model" --data "$data" --port "$port" \
    --log-level warning 2>"$WORK/$name.serve.log" &
  server=$!
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 1; done
  curl -s "http://127.0.0.1:$port/readyz"; echo
  "$PY" "$ROOT/bench/demo_search.py" --url "http://127.0.0.1:$port" --out "$ROOT/bench/results/demo_search_$name.json" \
    | grep -E '^\| (exact|colour|shape|motion)'
  kill "$server"; wait "$server" 2>/dev/null || true
done
"$PY" - "$ROOT/bench/results" "${RAN[@]}" <<'PYEOF'
import json, sys
from pathlib import Path
res = {n: json.loads((Path(sys.argv[1]) / f"demo_search_{n}.json").read_text())["results"] for n in sys.argv[2:]}
print("\n| option | exact@1 | exact in 5 | colour@1 | shape@1 | motion@1 | exact@1 - fp32 |\n|---|---|---|---|---|---|---|")
for n, r in res.items():
    print(f"| {n} | {r['exact_at_1']['all']:.3f} | {r['exact_in_5']['all']:.3f} | {r['colour_at_1']['all']:.3f} | "
          f"{r['shape_at_1']['all']:.3f} | {r['motion_at_1']['all']:.3f} | {r['exact_at_1']['all'] - res['fp32']['exact_at_1']['all']:+.3f} |")
PYEOF
