#!/usr/bin/env bash
# Fills docker/wheels/ with every wheel the image needs, through THIS host's pip configuration
# (its index or mirror, proxy and CA bundle: /etc/pip.conf, PIP_* variables), so that
# docker/Dockerfile then builds with no network at all (it installs from the wheelhouse alone
# when it holds wheels). For closed networks and for CI.
#
#   docker/wheelhouse.sh                 # CPU torch (TORCH_SPEC, default torch==2.13.0+cpu)
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu docker/wheelhouse.sh
#
# The +cpu build comes from the host's pip sources (a wheel index, find-links) or TORCH_INDEX_URL;
# asking for it by name keeps pip from fetching PyPI's multi-GB CUDA torch. Wheels are for
# CPython 3.11 on manylinux x86_64, the image's interpreter, whatever the host runs. Idempotent:
# wheels already there are kept, and an unchanged request returns at once. Empty the folder
# (keep README.md) to build from the index again.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=docker/wheels
torch="${TORCH_SPEC:-torch==2.13.0+cpu}"
pip="${PIP:-python3 -m pip}"
target=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
        --platform linux_x86_64 --platform any)
extra=()
if [ -n "${TORCH_INDEX_URL:-}" ]; then extra+=(--extra-index-url "$TORCH_INDEX_URL"); fi
mkdir -p "$dest"
# The project's runtime dependencies and the extras the image installs (postgres, milvus), read
# from pyproject.toml (the one list), and the build backend that `pip install .` needs.
# (a command substitution, not `< <(...)`: a failing read must stop the script under `set -e`)
deps_list="$(python3 - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)
extras = project["project"]["optional-dependencies"]
for req in project["project"]["dependencies"] + extras["postgres"] + extras["milvus"] + project["build-system"]["requires"]:
    if not req.replace(" ", "").startswith("torch"):
        print(req)
PY
)"
mapfile -t deps <<< "$deps_list"
# The same request as last time (stamp written after a complete download): nothing to do.
key="$(printf '%s\n' "$torch" "${deps[@]}" | sha256sum | cut -c1-16)"
if [ "$(cat "$dest/.complete" 2>/dev/null)" = "$key" ]; then
  echo "wheelhouse: up to date ($(ls "$dest"/*.whl | wc -l) wheels in $dest)" >&2
  exit 0
fi
rm -f "$dest/.complete"
$pip download --quiet --dest "$dest" "${target[@]}" "${extra[@]}" "$torch" "${deps[@]}"
echo "$key" > "$dest/.complete"
echo "wheelhouse: $(ls "$dest"/*.whl | wc -l) wheels, $(du -sh "$dest" | cut -f1) in $dest" >&2
