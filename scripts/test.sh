#!/usr/bin/env bash
# Set up and run every test: lint, types, generated-code check, unit, integration (real gRPC over unix
# sockets, real bind mounts) and the csi-sanity conformance suite. Extra arguments go to pytest.
#
# Needs root (mounts). Everything runs in a private mount namespace on tmpfs roots, so no mount leaks
# onto the host even when a test fails half-way.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "$(id -u)" != 0 ]]; then
  echo "test: the integration tests mount file systems and need root" >&2; exit 1
fi
command -v unshare >/dev/null || { echo "test: unshare (util-linux) is required" >&2; exit 1; }

scripts/setup.sh
bin_dir="$(scripts/go-tools.sh)"
export CSI_SANITY="$bin_dir/csi-sanity"

echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
exec unshare --mount --propagation private env CFS_CSI_MOUNT_NS=private \
  .venv/bin/python -m pytest -ra -p no:cacheprovider "$@"
