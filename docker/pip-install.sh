#!/bin/sh
# pip install for the image build (docker/Dockerfile): from the wheelhouse copied to /wheels
# alone when it holds wheels (closed networks; docker/wheelhouse.sh fills docker/wheels/), from
# the index given with --index-url otherwise. The PIP_* build arguments (PIP_INDEX_URL for a
# PyPI mirror, PIP_FIND_LINKS for a wheel server, PIP_TRUSTED_HOST) reach pip as environment
# variables; empty ones are dropped. CA certificates copied to /certs (a TLS-intercepting
# proxy's) are trusted by pip on top of the system's.
set -eu
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_TRUSTED_HOST; do
  eval "value=\${$var:-}"
  if [ -z "$value" ]; then unset "$var"; fi
done
if ls /certs/*.crt /certs/*.pem >/dev/null 2>&1; then
  cat /etc/ssl/certs/ca-certificates.crt /certs/*.crt /certs/*.pem > /tmp/pip-ca.pem 2>/dev/null || true
  export PIP_CERT=/tmp/pip-ca.pem
fi
if ls /wheels/*.whl >/dev/null 2>&1; then
  if [ "${1:-}" = "--index-url" ]; then shift 2; fi
  echo "pip-install: from the wheelhouse ($(ls /wheels/*.whl | wc -l) wheels), no index" >&2
  exec pip install --no-cache-dir --no-index --find-links /wheels "$@"
fi
exec pip install --no-cache-dir "$@"
