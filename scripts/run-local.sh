#!/usr/bin/env bash
# Set up and run the driver (controller + node) on one machine, and print example calls that work as printed.
#
#   scripts/run-local.sh              # the embedded local backend: file systems are directories
#   scripts/run-local.sh --emulator   # the tencent backend against the CFS emulator (the cloud API, locally)
#
# Everything lives under $CFS_CSI_LOCAL_STATE (default /tmp/cfs-csi-local): the socket, the driver's state, the
# file systems' directories and, with --emulator, its database. Publishing a volume bind-mounts its directory
# (the kernel NFS client is not needed). The driver runs in a mount namespace of its own, so nothing stays
# mounted on the host when it stops (Ctrl-C or SIGTERM); that also means a published target shows the volume
# only inside that namespace: the printed `nsenter` line is how to look at it (a plain `ls` from another shell
# sees the empty directory underneath).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "$(id -u)" == 0 ]] || { echo "run-local: the node plugin mounts file systems and needs root" >&2; exit 1; }
backend=local
case "${1:-}" in
  "") ;;
  --emulator) backend=emulator ;;
  *) echo "usage: scripts/run-local.sh [--emulator]" >&2; exit 2 ;;
esac

scripts/setup.sh
state="${CFS_CSI_LOCAL_STATE:-/tmp/cfs-csi-local}"
sock="$state/csi.sock"
# The node plugin publishes only below <kubelet dir>/pods; here the kubelet dir is a stand-in in the state dir.
kubelet="$state/kubelet"
target="$kubelet/pods/demo/mount"
mkdir -p "$state" "$kubelet/pods"
cli="$PWD/.venv/bin/cfs-csi"

pids=()
stop() { trap - EXIT INT TERM; for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait; }
trap stop EXIT INT TERM

serve=("$cli" serve --component all --endpoint "unix://$sock" --state-dir "$state/driver"
       --kubelet-dir "$kubelet" --node-id "$(hostname)" --no-register)
if [[ "$backend" == emulator ]]; then
  # Demo keys, known to the emulator and the driver only; a real cloud's keys come from a Secret in the chart.
  export TENCENTCLOUD_API_SECRET_ID=AKIDlocaldemo TENCENTCLOUD_API_SECRET_KEY=local-demo-key
  exports="$state/emulator/exports"
  mkdir -p "$exports"
  "$cli" emulator --listen 127.0.0.1:0 --state "$state/emulator/emulator.db" --export-root "$exports" \
    --region ap-guangzhou --create-delay 1 > "$state/emulator/address" 2> "$state/emulator/log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q "http://" "$state/emulator/address" 2>/dev/null && break; sleep 0.1; done
  url="$(grep -o 'http://[^ ]*' "$state/emulator/address" | head -1)"
  [[ -n "$url" ]] || { echo "run-local: the emulator did not start:" >&2; cat "$state/emulator/log" >&2; exit 1; }
  serve+=(--backend tencent --cfs-endpoint "${url%/}" --region ap-guangzhou --zone ap-guangzhou-3
          --cluster-id cls-local --mounter bind --export-root "$exports")
  # The seed's cfs-normal class: the network, subnet and permission group a real VPC would give.
  params="--param vpcid=vpc-oilua6pt --param subnetid=subnet-rtwb42lu --param pgroupid=pgroup-lrquouvl"
  params+=" --param zone=ap-guangzhou-3 --param storagetype=SD --param vers=3"
  where="$exports/<host>/<fsid>/ (the emulator's export of the file system)"
  what="backend tencent against the CFS emulator at $url"
else
  serve+=(--backend local)
  params="--param vers=3"
  where="$state/driver/local/exports/<host>/<fsid>/"
  what="backend local"
fi

unshare --mount --propagation private "${serve[@]}" &
pids+=($!)
driver=$!
for _ in $(seq 300); do [[ -S "$sock" ]] && break; kill -0 "$driver" 2>/dev/null || exit 1; sleep 0.1; done
c="$cli client --endpoint unix://$sock"
cat <<MSG
cfs-csi: serving CSI on unix://$sock ($what; state in $state)
Try it from another shell (each line works as printed):
  $c info
  $c create demo --size 10Gi $params > $state/demo.json
  $c publish @$state/demo.json $target
  nsenter --target $driver --mount -- touch $target/hello
  nsenter --target $driver --mount -- ls -l $target
  $c stats @$state/demo.json $target
  $c unpublish @$state/demo.json $target
  $c delete @$state/demo.json
The volume is mounted inside the driver's own mount namespace (pid $driver): look at a published target with
nsenter as above. Its files live in $where
Stop with Ctrl-C (or SIGTERM to pid $$): the mounts go with the driver's namespace; the state stays.
MSG
wait "$driver"
