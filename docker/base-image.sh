#!/usr/bin/env bash
# Builds a stand-in for the Dockerfile's base image (python:3.11-slim) where Docker Hub cannot be
# reached: a Debian bookworm minbase with python3, python3-venv and ca-certificates made by
# debootstrap (~40 s) from the Debian mirror apt already uses, then `docker import`ed under the
# base's name so docker/Dockerfile builds unchanged. Needs root and `apt-get install debootstrap`.
#
#   docker/base-image.sh [TAG]          # TAG defaults to python:3.11-slim
#
# Does nothing when TAG is already in the engine or can be pulled. Honours DOCKER_HOST.
# VATT_BASE_CACHE=DIR keeps the root filesystem tarball there and reuses it next time.
set -euo pipefail
tag="${1:-python:3.11-slim}"
mirror="${VATT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if docker image inspect "$tag" >/dev/null 2>&1; then exit 0; fi
if timeout 60 docker pull -q "$tag" >/dev/null 2>&1; then exit 0; fi
echo "base-image: cannot pull $tag; building a Debian bookworm stand-in with debootstrap" >&2
cache="${VATT_BASE_CACHE:-}"
tarball="${cache:+$cache/bookworm-python3.tar}"
if [ -z "$tarball" ] || [ ! -s "$tarball" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # The slim image's conventions: `python` on PATH, no apt lists or caches.
  ln -sf python3 "$work/root/usr/bin/python"
  rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin
  out="${tarball:-$work/rootfs.tar}"
  mkdir -p "$(dirname "$out")"
  tar -C "$work/root" -cf "$out.tmp" . && mv "$out.tmp" "$out"
  tarball="$out"
fi
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$tarball" "$tag" >/dev/null
echo "base-image: imported $tag ($(du -h "$tarball" | cut -f1) root filesystem)" >&2
