#!/usr/bin/env bash
# Install the Kubernetes ecosystem's own Go programs that the tests use, by package name from the Go module
# proxy, into a cache that survives between runs (only the first run pays the build).
#
#   scripts/go-tools.sh            install what is missing; prints the bin directory
#
# CFS_CSI_CACHE (default ~/.cache/cfs-csi) holds bin/ and the Go build cache.
set -euo pipefail

CACHE="${CFS_CSI_CACHE:-$HOME/.cache/cfs-csi}"
BIN="$CACHE/bin"
export GOBIN="$BIN"
export GOCACHE="${GOCACHE:-$CACHE/go-build}"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

# name  package@version (pinned: a new upstream release must not change CI on its own)
TOOLS=(
  "csi-sanity github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@v5.6.0"
)

command -v go >/dev/null || { echo "go-tools: 'go' is not installed" >&2; exit 1; }
mkdir -p "$BIN"
for entry in "${TOOLS[@]}"; do
  name="${entry%% *}"
  pkg="${entry#* }"
  stamp="$BIN/.$name.version"
  if [[ -x "$BIN/$name" && -f "$stamp" && "$(cat "$stamp")" == "$pkg" ]]; then
    continue
  fi
  echo "go-tools: building $pkg" >&2
  start=$SECONDS
  timeout 1200 go install "$pkg"
  echo "$pkg" > "$stamp"
  echo "go-tools: built $name in $((SECONDS - start))s" >&2
done
echo "$BIN"
