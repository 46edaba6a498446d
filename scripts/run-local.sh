#!/usr/bin/env bash
# Set up and run the driver (controller + node) on its embedded local backend: file systems are directories
# under $CFS_CSI_LOCAL_STATE (default /tmp/cfs-csi-local), and publishing a volume bind-mounts its directory.
# Runs in a private mount namespace so nothing is left mounted on the host when it stops (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "$(id -u)" == 0 ]] || { echo "run-local: the node plugin mounts file systems and needs root" >&2; exit 1; }

scripts/setup.sh
state="${CFS_CSI_LOCAL_STATE:-/tmp/cfs-csi-local}"
sock="$state/csi.sock"
# The node plugin publishes only below <kubelet dir>/pods; here the kubelet dir is a stand-in in the state dir.
kubelet="$state/kubelet"
mkdir -p "$state" "$kubelet/pods"
cli="$PWD/.venv/bin/cfs-csi"
cat <<MSG
cfs-csi: serving CSI on unix://$sock (backend local, state in $state)
Try it from another shell:
  $cli client --endpoint unix://$sock info
  $cli client --endpoint unix://$sock create demo --size-gib 10 --param vers=3
  $cli client --endpoint unix://$sock publish <volume_id> $kubelet/pods/demo/mount --context host=<host> --context fsid=<fsid>
  $cli client --endpoint unix://$sock stats <volume_id> $kubelet/pods/demo/mount
  $cli client --endpoint unix://$sock unpublish <volume_id> $kubelet/pods/demo/mount
  $cli client --endpoint unix://$sock delete <volume_id>
(Files written through a published target land in $state/local/exports/<host>/<fsid>/.)
MSG
exec unshare --mount --propagation private "$cli" serve --backend local --component all \
  --endpoint "unix://$sock" --state-dir "$state" --kubelet-dir "$kubelet" --node-id "$(hostname)"
