#!/usr/bin/env bash
# Run a benchmark as root in a private mount namespace:
#   bench/run.sh [ARGS]        CSI load (controller and node pairs, JSON; bench/csi_load.py)
#   bench/run.sh node [ARGS]   node plugin side by side with csi-driver-nfs when $CFS_CSI_ANCHOR_NFS_PLUGIN names
#                              its nfsplugin binary (one table; bench/node_bench.py)
#   bench/run.sh controller [ARGS]  the controller against a zero-delay CFS emulator: pairs/s, overhead beyond the
#                              cloud's time, CPU per call, idle RSS and start-up (one table; bench/controller_load.py;
#                              needs no root: .venv/bin/python bench/controller_load.py works as well)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
script=bench/csi_load.py
if [[ "${1:-}" == node ]]; then
  script=bench/node_bench.py
  shift
elif [[ "${1:-}" == controller ]]; then
  script=bench/controller_load.py
  shift
fi
exec unshare --mount --propagation private env CFS_CSI_MOUNT_NS=private .venv/bin/python "$script" "$@"
