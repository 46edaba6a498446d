"""Snapshots of dedicated volumes through the real Kubernetes machinery (issue 16).

The upstream snapshot controller and csi-snapshotter (built from external-snapshotter's module, the CRDs read
from its module cache) drive our controller against the CFS emulator on a real API server: a claim is bound, a
file written into its file system, a VolumeSnapshot taken, the file changed, and a new claim restored from the
snapshot has the old content. Deleting the VolumeSnapshot deletes the CFS snapshot. The file is written into the
emulator's export directory rather than through a pod: this control plane has no node (the storage suite on the
real node covers the pod side).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from tencentcloud.cfs.v20190719 import cfs_client, models
from tencentcloud.common.credential import Credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from cfs_csi.devcluster import snapshots
from cfs_csi.devcluster.cluster import ControlPlane, spawn
from cfs_csi.devcluster.tools import ensure
from cfs_csi.volume.exports import ExportRoot
from tests.conftest import SECRET_ID, SECRET_KEY, Emulator
from tests.e2e.conftest import Dedicated, Kube, Supervised, wait_for
from tests.e2e.test_dedicated import bound, cleanup, pvc_body, seed

GROUP, VERSION = "snapshot.storage.k8s.io", "v1"
NAMESPACE = "snapshots"


@pytest.fixture(scope="module")
def snapshot_machinery(control_plane: ControlPlane) -> None:
    """The CRDs and the snapshot controller, once for the control plane (they stay: a cluster keeps them)."""
    found = ensure(["kubectl", "snapshot-controller"])
    snapshots.install_crds(control_plane, found["kubectl"])
    if not any(process.name == "snapshot-controller" for process in control_plane.processes):
        snapshots.start_controller(control_plane, found["snapshot-controller"])


@pytest.fixture
def snapshotter(snapshot_machinery: None, dedicated: Dedicated, control_plane: ControlPlane) -> Iterator[Supervised]:
    binary = ensure(["csi-snapshotter"])["csi-snapshotter"]
    logs = Path(tempfile.mkdtemp(prefix="cfs-snap-"))
    sidecar = Supervised(lambda: spawn("csi-snapshotter", [
        str(binary), f"--csi-address={dedicated.controller.socket}", f"--kubeconfig={control_plane.kubeconfig}",
        "--leader-election=false", "--timeout=60s", "--v=3",
    ], logs))  # fmt: skip
    try:
        yield sidecar
    finally:
        sidecar.stop()
        shutil.rmtree(logs, ignore_errors=True)


def snapshot_object(kube: Kube, kind: str, name: str, namespace: str | None = None) -> Any:
    plural = {"VolumeSnapshot": "volumesnapshots", "VolumeSnapshotClass": "volumesnapshotclasses",
              "VolumeSnapshotContent": "volumesnapshotcontents"}[kind]  # fmt: skip
    api = kube.custom
    try:
        if namespace:
            return api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        return api.get_cluster_custom_object(GROUP, VERSION, plural, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def cfs_snapshot_ids(emulator: Emulator) -> set[str]:
    """Every snapshot the emulator holds, asked through the official SDK as a user of the cloud would."""
    http = HttpProfile(endpoint=emulator.url.removeprefix("http://"), protocol="http", reqTimeout=10)
    client = cfs_client.CfsClient(Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", ClientProfile(httpProfile=http))
    answer = client.DescribeCfsSnapshots(models.DescribeCfsSnapshotsRequest())
    return {snapshot.SnapshotId for snapshot in answer.Snapshots or []}


def data_dir(dedicated: Dedicated, kube: Kube, claim: str) -> Path:
    """The restored or original claim's file system, as the emulator keeps it."""
    pvc = kube.core.read_namespaced_persistent_volume_claim(claim, NAMESPACE)
    attributes = kube.core.read_persistent_volume(pvc.spec.volume_name).spec.csi.volume_attributes
    return ExportRoot(dedicated.emulator.export_root).directory_for(attributes["host"], attributes["fsid"])


def test_restore_from_a_snapshot_has_the_content_of_when_it_was_taken(
    kube: Kube, dedicated: Dedicated, snapshotter: Supervised
) -> None:
    try:
        kube.create(seed("csidriver.yaml"))
    except ApiException as exc:
        if exc.status != 409:
            raise
    kube.create(seed("storageclass-cfs-normal.yaml"))
    kube.custom.create_cluster_custom_object(GROUP, VERSION, "volumesnapshotclasses",
                                             seed("volumesnapshotclass-cfs.yaml"))  # fmt: skip
    kube.namespace(NAMESPACE)
    try:
        kube.create(pvc_body("original", NAMESPACE))
        wait_for("the original claim bound", lambda: bound(kube, NAMESPACE, "original"), timeout=120)
        original = data_dir(dedicated, kube, "original")
        (original / "data.txt").write_text("before the snapshot\n")

        kube.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "volumesnapshots", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "VolumeSnapshot",
            "metadata": {"name": "snap", "namespace": NAMESPACE},
            "spec": {"volumeSnapshotClassName": "cfs-snapshot", "source": {"persistentVolumeClaimName": "original"}},
        })  # fmt: skip

        def ready() -> Any:
            found = snapshot_object(kube, "VolumeSnapshot", "snap", NAMESPACE)
            return found if (found or {}).get("status", {}).get("readyToUse") else None

        snap = wait_for("the snapshot ready to use", ready, timeout=120)
        content = snapshot_object(kube, "VolumeSnapshotContent", snap["status"]["boundVolumeSnapshotContentName"])
        handle = content["status"]["snapshotHandle"]
        assert handle in cfs_snapshot_ids(dedicated.emulator)
        (original / "data.txt").write_text("after the snapshot\n")

        restored_body = pvc_body("restored", NAMESPACE)
        restored_body["spec"]["dataSource"] = {"apiGroup": GROUP, "kind": "VolumeSnapshot", "name": "snap"}
        kube.create(restored_body)
        wait_for("the restored claim bound", lambda: bound(kube, NAMESPACE, "restored"), timeout=180)
        restored = data_dir(dedicated, kube, "restored")
        assert restored != original
        assert (restored / "data.txt").read_text() == "before the snapshot\n"
        assert (original / "data.txt").read_text() == "after the snapshot\n"

        kube.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "volumesnapshots", "snap")
        wait_for("the CFS snapshot deleted",
                 lambda: handle not in cfs_snapshot_ids(dedicated.emulator),
                 timeout=120)  # fmt: skip
        assert (restored / "data.txt").read_text() == "before the snapshot\n"  # a restore outlives its snapshot
    finally:
        cleanup(kube, NAMESPACE, dedicated)
        kube.custom.delete_cluster_custom_object(GROUP, VERSION, "volumesnapshotclasses", "cfs-snapshot")
        kube.storage.delete_storage_class("cfs-normal")
