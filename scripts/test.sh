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

# Debian packages some tests need (the real node of the e2e suite, image builds), installed when missing so that a
# fresh machine runs the same tests as a warm one. Without apt (not Debian) the tests that need them skip with why.
ensure_debs() {
  local missing=()
  for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || { echo "test: no apt-get; not installing ${missing[*]}" >&2; return 0; }
  echo "== installing Debian packages: ${missing[*]}"
  if [[ -z "${CFS_CSI_APT_UPDATED:-}" ]]; then
    timeout 600 apt-get update -qq || echo "test: WARNING: apt-get update failed" >&2
    export CFS_CSI_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "test: WARNING: installing ${missing[*]} failed; the tests that need them will skip" >&2
}
# One line per feature (add yours below):
ensure_debs podman mmdebstrap runc  # image builds (tests/image: our image and csi-provisioner's, cached)
ensure_debs containerd runc containernetworking-plugins busybox-static  # the real node of the e2e suite
# The ecosystem's Go programs (csi-sanity, etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# csi-provisioner, helm), built by package name from the Go module proxy once and cached in
# ${CFS_CSI_CACHE:-~/.cache/cfs-csi}.
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
