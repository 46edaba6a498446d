"""Volume snapshots on the dev control plane: the VolumeSnapshot CRDs and the snapshot controller.

Kubernetes ships neither: a cluster gets them from the external-snapshotter project. Here both come from the Go
module proxy like the other tools: the controller is built by package name (:mod:`cfs_csi.devcluster.tools`), and
the CRDs are read from the module cache (the ``client/v8`` module's ``config/crd``), never copied into this
repository. The driver-side ``csi-snapshotter`` sidecar runs in the chart's controller pod.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

from cfs_csi.devcluster.cluster import ControlPlane, Process, spawn
from cfs_csi.devcluster.tools import SNAPSHOTTER, BuildError, gomod_download

log = logging.getLogger(__name__)

CLIENT_MODULE = "github.com/kubernetes-csi/external-snapshotter/client/v8"
#: The three CRDs the snapshot controller and csi-snapshotter need (group snapshots are left out: not ours).
CRD_FILES = (
    "snapshot.storage.k8s.io_volumesnapshotclasses.yaml",
    "snapshot.storage.k8s.io_volumesnapshotcontents.yaml",
    "snapshot.storage.k8s.io_volumesnapshots.yaml",
)


def crd_paths(version: str = SNAPSHOTTER, timeout: float = 600) -> list[Path]:
    """The CRD files of ``client/v8``@``version`` in the module cache (downloaded once)."""
    info = json.loads(gomod_download(CLIENT_MODULE, version, timeout))
    directory = Path(info["Dir"]) / "config" / "crd"
    paths = [directory / name for name in CRD_FILES]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise BuildError(f"{CLIENT_MODULE}@{version} has no {', '.join(missing)}")
    return paths


def install_crds(plane: ControlPlane, kubectl: Path, timeout: float = 120) -> None:
    """Create (or update) the VolumeSnapshot CRDs and wait until the API server serves them."""
    files = [arg for path in crd_paths() for arg in ("-f", str(path))]
    base = [str(kubectl), f"--kubeconfig={plane.kubeconfig}"]
    subprocess.run([*base, "apply", "--server-side", *files], check=True, capture_output=True, timeout=timeout)
    names = [f"crd/{name.split('_', 1)[1].removesuffix('.yaml')}.{name.split('_', 1)[0]}" for name in CRD_FILES]
    subprocess.run([*base, "wait", "--for=condition=Established", f"--timeout={int(timeout)}s", *names],
                   check=True, capture_output=True, timeout=timeout + 10)  # fmt: skip


def start_controller(plane: ControlPlane, binary: Path) -> Process:
    """Run the snapshot controller next to kube-controller-manager, with the admin's credentials.

    It is part of the cluster, not of the driver (a cluster has one, whatever CSI drivers it runs), so it is the
    control plane's process and stops with it.
    """
    process = spawn("snapshot-controller", [
        str(binary), f"--kubeconfig={plane.kubeconfig}", "--leader-election=false", "--v=2",
    ], plane.root / "logs")  # fmt: skip
    plane.processes.append(process)
    log.info("snapshot controller started (log %s)", process.log)
    return process
