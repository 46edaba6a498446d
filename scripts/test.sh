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
# The ecosystem's Go programs (csi-sanity, etcd, kube-apiserver, kube-controller-manager, csi-provisioner, helm),
# built by package name from the Go module proxy once and cached in ${CFS_CSI_CACHE:-~/.cache/cfs-csi}.
# A failed build does not stop the run: the e2e tests then report themselves skipped with go's error.
start=$SECONDS
if ! bin_dir="$(.venv/bin/cfs-csi dev-cluster tools)"; then
  echo "test: WARNING: building the Go tools failed (see above); e2e tests will be skipped" >&2
  bin_dir="${CFS_CSI_CACHE:-$HOME/.cache/cfs-csi}/bin"
fi
echo "== Go tools ready in $bin_dir ($((SECONDS - start))s)"
export CSI_SANITY="$bin_dir/csi-sanity"

echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
exec unshare --mount --propagation private env CFS_CSI_MOUNT_NS=private \
  .venv/bin/python -m pytest -ra -p no:cacheprovider "$@"
