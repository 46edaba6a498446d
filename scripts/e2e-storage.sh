#!/usr/bin/env bash
# Run Kubernetes' External Storage e2e suite (the whole focused subset, both modes) against the chart installed on
# the real dev node, as CI does with a smaller fixed focus. Needs root and what scripts/test.sh installs (the Debian
# packages of the real node, the cached Go tools); the first run builds e2e.test, kubectl and agnhost.
#
#   scripts/e2e-storage.sh                      # both modes, every spec the focus selects
#   scripts/e2e-storage.sh -k dedicated         # one mode (extra arguments go to pytest)
#   CFS_CSI_STORAGE_SUITE=ci scripts/e2e-storage.sh   # CI's smaller focus
#
# The suite's JSON reports and logs are kept in ${CFS_CSI_STORAGE_SUITE_OUT:-/tmp/cfs-csi-storage-suite}.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "$(id -u)" != 0 ]]; then
  echo "e2e-storage: the real node mounts file systems and needs root" >&2; exit 1
fi
scripts/setup.sh
.venv/bin/cfs-csi dev-cluster tools e2e.test kubectl agnhost kubelet kube-scheduler etcd kube-apiserver \
  kube-controller-manager helm csi-provisioner >/dev/null
export CFS_CSI_STORAGE_SUITE="${CFS_CSI_STORAGE_SUITE:-full}"
export CFS_CSI_STORAGE_SUITE_OUT="${CFS_CSI_STORAGE_SUITE_OUT:-/tmp/cfs-csi-storage-suite}"
exec unshare --mount --propagation private env CFS_CSI_MOUNT_NS=private \
  .venv/bin/python -m pytest -ra -p no:cacheprovider -s tests/e2e/test_external_storage.py "$@"
