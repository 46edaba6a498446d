"""Shared mode, part 2, on the real control plane: the operator's provisioner Deployment, run as a process with
the environment the operator gave it, turns claims into directories and CSI PVs, and cleans up after them."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes.client.exceptions import ApiException

from cfs_csi.client import CsiClient
from cfs_csi.csi import csi_pb2
from cfs_csi.devcluster.cluster import ControlPlane, Process, spawn
from tests.conftest import CLOUD_ENV, start_driver
from tests.e2e.conftest import NAMESPACE, Kube, Operator, pv_gone, wait_for
from tests.e2e.test_operator import claim, delete_class, deployment, ready_tcfs, share_class

T = TypeVar("T")


class Share:
    """One shared StorageClass with its Tcfs, file system and running provisioner(s)."""

    def __init__(
        self, kube: Kube, operator: Operator, root: Path, name: str, reclaim: str = "Retain", **params: str
    ) -> None:
        self.kube, self.name, self.root = kube, name, root
        self.provisioner_name = f"com.tencent.cloud.csi.tcfs.{name}"
        body = share_class(name, **params)
        body["reclaimPolicy"] = reclaim
        kube.create(body)
        kube.create(claim(f"{name}-trigger", name, "default"))  # a claim makes the operator prepare the class
        self.tcfs = wait_for(f"Tcfs {name}", lambda: ready_tcfs(kube, name), timeout=120)
        dep = wait_for("its Deployment", lambda: deployment(kube, self.provisioner_name), timeout=60)
        container = dep.spec.template.spec.containers[0]
        self.env = {e.name: e.value for e in container.env if e.value is not None}
        self._located(operator)

    def _located(self, operator: Operator) -> None:
        status = self.tcfs["status"]
        # Where the pod would have the share mounted: the emulator's directory for this file system.
        self.mount = operator.emulator.export_root / status["cfsserver"] / status["cfsfilesystemid"]
        self.env["SHARE_MOUNT_PATH"] = str(self.mount)
        self.env.setdefault("CFS_ID", status["cfsid"])  # the Deployment's, where the operator sets it
        self.emulator = operator.emulator
        self.processes: list[Process] = []

    def start_provisioner(self, kubeconfig: Path, tag: str = "p", *extra: str, log_format: str = "text") -> Process:
        """The provisioner with the Deployment's environment and the cloud flags the operator runs with."""
        process = spawn(f"provisioner-{self.name}-{tag}", [
            sys.executable, "-m", "cfs_csi", "--log-level", "INFO", f"--log-format={log_format}", "subdir-provisioner",
            f"--kubeconfig={kubeconfig}",
            f"--namespace={NAMESPACE}", "--backend=tencent", f"--cfs-endpoint={self.emulator.url}",
            "--region=ap-guangzhou", "--zone=ap-guangzhou-3", "--cluster-id=cls-test", *extra,
        ], self.root, env={**self.env, **CLOUD_ENV, "POD_NAMESPACE": NAMESPACE})  # fmt: skip
        self.processes.append(process)
        return process

    def listing(self) -> list[str]:
        return sorted(str(p.relative_to(self.mount)) for p in self.mount.rglob("*"))

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
            print(f"--- {process.name} (tail) ---\n{process.tail(30)}")
        delete_class(self.kube, self.name)


def bound_claims(kube: Kube, namespace: str) -> bool:
    claims = kube.pvcs(namespace)
    return bool(claims) and all(c.status.phase == "Bound" for c in claims)


def test_seed_claim_binds_and_the_node_plugin_mounts_it(
    kube: Kube, operator: Operator, control_plane: ControlPlane, mount_root: Path
) -> None:
    share = Share(kube, operator, operator.root, "cfs-share")
    share.start_provisioner(control_plane.kubeconfig)
    try:
        kube.create(claim("cfs-share-1", "cfs-share"))
        pvc = wait_for("cfs-share-1 bound", lambda: _bound(kube, "default", "cfs-share-1"), timeout=90)
        pv = kube.core.read_persistent_volume(pvc.spec.volume_name)
        directory = f"default-cfs-share-1-{pv.metadata.name}"
        assert pv.metadata.name == f"pvc-{pvc.metadata.uid}"
        assert pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] == share.provisioner_name
        assert pv.spec.csi.driver == "com.tencent.cloud.csi.cfs"
        status = share.tcfs["status"]
        assert pv.spec.csi.volume_attributes == {
            "host": status["cfsserver"], "fsid": status["cfsfilesystemid"], "path": directory, "vers": "3",
            "quotaBytes": str(10 * 1024**3),  # the claim's 10Gi, as a directory quota
        }  # fmt: skip
        assert pv.spec.persistent_volume_reclaim_policy == "Retain"
        assert (pv.spec.capacity["storage"], pv.spec.access_modes) == ("10Gi", ["ReadWriteMany"])
        assert (share.mount / directory).is_dir()
        wait_for("the Provisioning and ProvisioningSucceeded events", lambda: {"Provisioning", "ProvisioningSucceeded"}
                 <= {e.reason for e in kube.events_for("default", "cfs-share-1")}, timeout=30)  # fmt: skip

        # The node plugin publishes it: a bind mount of the directory through the local export mapping.
        node = start_driver(mount_root, "--component", "node", "--mounter", "bind",
                            "--export-root", str(operator.emulator.export_root), name="node")  # fmt: skip
        try:
            _publish_and_write(node.endpoint, pv, node.pods / "pod" / "mount")
            # The provisioner pod's own view of the share comes through the node plugin the same way.
            share_pv = kube.core.read_persistent_volume(f"tcfs-cfs-share-{status['cfsfilesystemid']}")
            assert directory in _published_listing(node.endpoint, share_pv, node.pods / "provisioner-pod")
        finally:
            node.stop()
        assert (share.mount / directory / "written-by-pod.txt").read_text() == "hello from the pod"
    finally:
        share.stop()


def _publish_and_write(endpoint: str, pv: Any, target: Path) -> None:
    def write(mounted: Path) -> None:
        (mounted / "written-by-pod.txt").write_text("hello from the pod")

    _while_published(endpoint, pv, target, write)


def _published_listing(endpoint: str, pv: Any, target: Path) -> list[str]:
    return _while_published(endpoint, pv, target, lambda mounted: sorted(os.listdir(mounted)))


def _while_published(endpoint: str, pv: Any, target: Path, inside: Callable[[Path], T]) -> T:
    """Publish ``pv`` at ``target`` through the node plugin as the kubelet would, run ``inside``, unpublish."""
    import asyncio

    async def go() -> T:
        async with CsiClient(endpoint) as csi:
            volume = csi_pb2.Volume(volume_id=pv.spec.csi.volume_handle, volume_context=pv.spec.csi.volume_attributes)
            await csi.publish(volume, str(target))
            try:
                result = inside(target)
                stats = await csi.stats(volume.volume_id, str(target))
                assert stats.usage[0].total > 0
                return result
            finally:
                await csi.unpublish(volume.volume_id, str(target))

    return asyncio.run(go())


def _bound(kube: Kube, namespace: str, name: str) -> Any:
    pvc = kube.core.read_namespaced_persistent_volume_claim(name, namespace)
    return pvc if pvc.status.phase == "Bound" else None


def test_two_hundred_claims_at_once(
    kube: Kube, operator: Operator, control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    share = Share(kube, operator, operator.root, "cfs-many", reclaim="Delete", onDelete="delete")
    share.start_provisioner(control_plane.kubeconfig)
    namespace = kube.namespace("many")
    try:
        started = time.monotonic()
        for index in range(200):
            kube.create(claim(f"claim-{index:03d}", "cfs-many", namespace))
        wait_for("200 claims bound", lambda: bound_claims(kube, namespace), timeout=600, interval=1)
        elapsed = time.monotonic() - started
        volumes = {c.spec.volume_name for c in kube.pvcs(namespace)}
        directories = [d for d in share.listing() if d.startswith(f"{namespace}-")]
        with capsys.disabled():
            print(f"\n200 shared-mode claims: creation to last Bound {elapsed:.1f}s")
        assert len(volumes) == 200 and len(directories) == 200
        assert {d.rsplit("-pvc-", 1)[1] for d in directories} == {v.removeprefix("pvc-") for v in volumes}
        kube.core.delete_collection_namespaced_persistent_volume_claim(namespace)
        wait_for("their PVs deleted", lambda: all(pv_gone(kube, v) for v in volumes), timeout=300, interval=1)
        assert [d for d in share.listing() if d.startswith(f"{namespace}-")] == []
    finally:
        share.stop()


@pytest.mark.parametrize(
    ("params", "expect"),
    [({"onDelete": "delete"}, "deleted"), ({"onDelete": "retain"}, "retained"),
     ({"archiveOnDelete": "true"}, "archived"), ({"archiveOnDelete": "false"}, "deleted")],
    ids=["onDelete-delete", "onDelete-retain", "archive-true", "archive-false"],
)  # fmt: skip
def test_delete_leaves_the_share_as_specified(
    kube: Kube, operator: Operator, control_plane: ControlPlane, params: dict[str, str], expect: str
) -> None:
    name = f"cfs-del-{expect}-{'-'.join(params).lower()}"  # one class, namespace and Tcfs per case
    share = Share(kube, operator, operator.root, name, reclaim="Delete", **params)
    share.start_provisioner(control_plane.kubeconfig)
    namespace = kube.namespace(name)
    try:
        kube.create(claim("victim", name, namespace))
        pvc = wait_for("victim bound", lambda: _bound(kube, namespace, "victim"), timeout=90)
        directory = f"{namespace}-victim-{pvc.spec.volume_name}"
        (share.mount / directory / "data.txt").write_text("precious")
        # An older archive of the same name exists: it must never be overwritten.
        (share.mount / f"archived-{directory}").mkdir()
        (share.mount / f"archived-{directory}" / "old.txt").write_text("older archive")
        kube.core.delete_namespaced_persistent_volume_claim("victim", namespace)
        wait_for("the PV deleted", lambda: pv_gone(kube, pvc.spec.volume_name), timeout=90)
        listing = share.listing()
        assert (share.mount / f"archived-{directory}" / "old.txt").read_text() == "older archive"
        if expect == "deleted":
            assert directory not in listing and f"archived-{directory}-2" not in listing
        elif expect == "retained":
            assert (share.mount / directory / "data.txt").read_text() == "precious"
        else:
            assert directory not in listing
            assert (share.mount / f"archived-{directory}-2" / "data.txt").read_text() == "precious"
    finally:
        share.stop()


def _adopt(kube: Kube, operator: Operator, name: str) -> Share:
    """A Share for a class the test created itself."""
    share = Share.__new__(Share)
    share.kube, share.name, share.root = kube, name, operator.root
    share.provisioner_name = f"com.tencent.cloud.csi.tcfs.{name}"
    share.tcfs = wait_for(f"Tcfs {name}", lambda: ready_tcfs(kube, name), timeout=120)
    dep = wait_for("its Deployment", lambda: deployment(kube, share.provisioner_name), timeout=60)
    share.env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env if e.value is not None}
    share._located(operator)
    return share


def test_hostile_patterns_and_pv_attributes_leave_the_share_untouched(
    kube: Kube, operator: Operator, control_plane: ControlPlane
) -> None:
    body = share_class("cfs-evil", pathPattern="${.PVC.annotations.dir}")
    body["reclaimPolicy"] = "Delete"
    kube.create(body)
    kube.create(claim("cfs-evil-trigger", "cfs-evil"))
    share = _adopt(kube, operator, "cfs-evil")
    (share.mount / "someone-else").mkdir()
    (share.mount / "someone-else" / "data.txt").write_text("not yours")
    share.start_provisioner(control_plane.kubeconfig)
    namespace = kube.namespace("evil")
    try:
        before = share.listing()
        for index, value in enumerate(["../../etc", "/etc", "", "a/../../b", "."]):
            body = claim(f"evil-{index}", "cfs-evil", namespace)
            body["metadata"]["annotations"] = {"dir": value}
            kube.create(body)

        def all_refused() -> bool:
            return all(any(e.reason == "ProvisioningFailed" for e in kube.events_for(namespace, f"evil-{i}"))
                       for i in range(5))  # fmt: skip

        wait_for("ProvisioningFailed for each hostile claim", all_refused, timeout=90)
        assert all(c.status.phase == "Pending" for c in kube.pvcs(namespace))

        # Released PVs that claim to be ours but point at the root, outside, or at a neighbour.
        status = share.tcfs["status"]
        # Bound to a claim that does not exist, the PV controller marks them Released at once.
        for index, path in enumerate(["", "..", "/", "someone-else/..", "../" + status["cfsfilesystemid"]]):
            kube.core.create_persistent_volume(_hostile_pv(f"hostile-{index}", share, path))

        def all_warned() -> bool:
            return all(any(e.reason == "VolumeFailedDelete" for e in kube.events_for("default", f"hostile-{i}"))
                       for i in range(5))  # fmt: skip

        wait_for("every hostile PV refused", all_warned, timeout=90)
        assert share.listing() == before
        assert (share.mount / "someone-else" / "data.txt").read_text() == "not yours"
    finally:
        for index in range(5):
            with contextlib.suppress(ApiException):
                kube.core.delete_persistent_volume(f"hostile-{index}")
        share.stop()


def _hostile_pv(name: str, share: Share, path: str) -> dict[str, Any]:
    status = share.tcfs["status"]
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": share.provisioner_name}},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Delete", "storageClassName": share.name,
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "default",
                         "name": f"ghost-{name}", "uid": "00000000-0000-0000-0000-000000000000"},
            "csi": {"driver": "com.tencent.cloud.csi.cfs", "volumeHandle": name,
                    "volumeAttributes": {"host": status["cfsserver"], "fsid": status["cfsfilesystemid"],
                                         "path": path}},
        },
    }  # fmt: skip


def test_two_replicas_provision_each_claim_exactly_once(
    kube: Kube, operator: Operator, control_plane: ControlPlane
) -> None:
    share = Share(kube, operator, operator.root, "cfs-pair")
    first = share.start_provisioner(control_plane.kubeconfig, "a")
    second = share.start_provisioner(control_plane.kubeconfig, "b")
    namespace = kube.namespace("pair")
    try:
        for index in range(30):
            kube.create(claim(f"claim-{index:02d}", "cfs-pair", namespace))
        wait_for("30 claims bound", lambda: bound_claims(kube, namespace), timeout=180)
        logs = first.log.read_text() + second.log.read_text()
        provisioned = [line for line in logs.splitlines() if " provisioned pvc-" in line and f" {namespace}/" in line]
        assert len(provisioned) == 30
        assert len({line.split(" provisioned ", 1)[1].split()[0] for line in provisioned}) == 30
        leaders = [p for p in (first, second) if " leads lease " in p.log.read_text()]
        assert len(leaders) == 1
        kube.core.delete_collection_namespaced_persistent_volume_claim(namespace)
    finally:
        share.stop()
