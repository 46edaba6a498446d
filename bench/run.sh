#!/usr/bin/env bash
# Run the CSI load benchmark (prints JSON). Root; runs in a private mount namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec unshare --mount --propagation private env CFS_CSI_MOUNT_NS=private .venv/bin/python bench/csi_load.py "$@"
