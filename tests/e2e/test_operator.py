"""Shared mode, part 1, on the real control plane: StorageClass + PVC -> Tcfs -> file system + Deployment."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from tests.conftest import Emulator, cloud_create
from tests.e2e.conftest import EXAMPLES, GROUP, NAMESPACE, PLURAL, VERSION, Kube, Operator, wait_for


def share_class(name: str = "cfs-share", **params: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / "storageclass-cfs-share.yaml").read_text())
    body = copy.deepcopy(body)
    body["metadata"]["name"] = name
    body["provisioner"] = f"com.tencent.cloud.csi.tcfs.{name}"
    body["parameters"].update(params)
    return body


def claim(name: str, storage_class: str, namespace: str = "default") -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / "pvc-cfs-share-1.yaml").read_text())
    body["metadata"] = {"name": name, "namespace": namespace}
    body["spec"]["storageClassName"] = storage_class
    return body


def tcfs(kube: Kube, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = kube.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def ready_tcfs(kube: Kube, name: str) -> dict[str, Any] | None:
    found = tcfs(kube, name)
    if found and any(c.get("type") == "Ready" and c.get("status") == "True"
                     for c in (found.get("status") or {}).get("conditions", [])):  # fmt: skip
        return found
    return None


def deployment(kube: Kube, name: str) -> Any:
    try:
        return kube.apps.read_namespaced_deployment(name, NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def bound_share(kube: Kube, name: str) -> bool:
    claim = kube.core.read_namespaced_persistent_volume_claim(name, NAMESPACE)
    return bool(claim.status.phase == "Bound" and claim.spec.volume_name == name)


def share_gone(kube: Kube, name: str) -> bool:
    claims = kube.core.list_namespaced_persistent_volume_claim(NAMESPACE, field_selector=f"metadata.name={name}")
    volumes = kube.core.list_persistent_volume(field_selector=f"metadata.name={name}")
    return not claims.items and not volumes.items


def mount_target(emulator: Emulator, fs_id: str) -> tuple[str, str]:
    [fs] = [fs for fs in emulator.file_systems() if fs["FileSystemId"] == fs_id]
    return str(fs["IpAddress"]), str(fs["FSID"])


def delete_class(kube: Kube, name: str, namespace: str = "default") -> None:
    for pvc in kube.pvcs(namespace):
        if pvc.spec.storage_class_name == name:
            kube.core.delete_namespaced_persistent_volume_claim(pvc.metadata.name, namespace)
    try:
        kube.storage.delete_storage_class(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def test_seed_class_and_claim_give_a_ready_tcfs_and_its_deployment(kube: Kube, operator: Operator) -> None:
    kube.create(share_class())
    kube.create(claim("cfs-share-1", "cfs-share"))
    try:
        found = wait_for("Tcfs cfs-share ready", lambda: ready_tcfs(kube, "cfs-share"), timeout=90)
        assert found["spec"] == {
            "pgroupid": "pgroup-lrquouvl", "provisionername": "com.tencent.cloud.csi.tcfs.cfs-share",
            "reclaimpolicy": "Retain", "storagetype": "SD", "subnetid": "subnet-rtwb42lu", "vpcid": "vpc-oilua6pt",
            "zone": "ap-guangzhou-3", "vers": "3",
        }  # fmt: skip
        [fs] = operator.emulator.file_systems()
        assert fs["FsName"] == "cls-test_sharedCFS-cfs-share"
        status = found["status"]
        server = (status["cfsserver"], status["cfsfilesystemid"])
        assert server == mount_target(operator.emulator, str(fs["FileSystemId"]))
        assert status["cfsid"] == fs["FileSystemId"]

        dep = wait_for("the provisioner Deployment", lambda: deployment(kube, "com.tencent.cloud.csi.tcfs.cfs-share"))
        container = dep.spec.template.spec.containers[0]
        env = {e.name: e.value for e in container.env}
        assert env["PROVISIONER_NAME"] == "com.tencent.cloud.csi.tcfs.cfs-share"
        assert (env["NFS_SERVER"], env["NFS_PATH"]) == (status["cfsserver"], f"/{status['cfsfilesystemid']}/")
        assert container.volume_mounts[0].mount_path == "/persistentvolumes"
        # The share reaches the pod as a static volume of our driver, bound to its claim by the PV controller.
        share = f"tcfs-cfs-share-{status['cfsfilesystemid']}"
        assert dep.spec.template.spec.volumes[0].persistent_volume_claim.claim_name == share
        wait_for("the share claim bound", lambda: bound_share(kube, share), timeout=60)
        pv = kube.core.read_persistent_volume(share)
        assert (pv.spec.csi.driver, pv.spec.persistent_volume_reclaim_policy) == ("com.tencent.cloud.csi.cfs", "Retain")
        assert pv.spec.csi.volume_attributes == {"host": status["cfsserver"], "fsid": status["cfsfilesystemid"],
                                                 "vers": "3"}  # fmt: skip
        assert [o.kind for o in pv.metadata.owner_references] == ["StorageClass"]
        [owner] = dep.metadata.owner_references
        assert (owner.kind, owner.uid) == ("Tcfs", found["metadata"]["uid"])

        # Drift is repaired: a Deployment deleted by hand comes back.
        kube.apps.delete_namespaced_deployment("com.tencent.cloud.csi.tcfs.cfs-share", NAMESPACE)
        wait_for("the Deployment restored", lambda: deployment(kube, "com.tencent.cloud.csi.tcfs.cfs-share"),
                 timeout=90)  # fmt: skip
    finally:
        delete_class(kube, "cfs-share")

    # Deleting the class removes the Tcfs and (garbage collection) its Deployment and share volume; the file
    # system stays.
    wait_for("the Tcfs deleted", lambda: tcfs(kube, "cfs-share") is None, timeout=90)
    wait_for("the Deployment deleted", lambda: deployment(kube, "com.tencent.cloud.csi.tcfs.cfs-share") is None,
             timeout=90)  # fmt: skip
    wait_for("the share PV and PVC deleted", lambda: share_gone(kube, share), timeout=90)
    assert len(operator.emulator.file_systems()) == 1


def test_from_exist_cfs_and_the_fixed_name_reuse_file_systems(kube: Kube, operator: Operator) -> None:
    existing = cloud_create(operator.emulator, "made-by-hand")
    named = cloud_create(operator.emulator, "cls-test_sharedCFS-cfs-named")
    kube.create(share_class("cfs-exist", fromExistCfs=existing))
    kube.create(share_class("cfs-named"))
    kube.create(claim("exist-1", "cfs-exist"))
    kube.create(claim("named-1", "cfs-named"))
    try:
        from_exist = wait_for("Tcfs cfs-exist ready", lambda: ready_tcfs(kube, "cfs-exist"), timeout=90)
        by_name = wait_for("Tcfs cfs-named ready", lambda: ready_tcfs(kube, "cfs-named"), timeout=90)
        assert from_exist["spec"]["fromExistCfs"] == existing and from_exist["status"]["cfsid"] == existing
        assert by_name["status"]["cfsid"] == named
        assert (by_name["status"]["cfsserver"], by_name["status"]["cfsfilesystemid"]) == mount_target(
            operator.emulator, named
        )
        assert len(operator.emulator.file_systems()) == 2  # nothing new was created
    finally:
        delete_class(kube, "cfs-exist")
        delete_class(kube, "cfs-named")


def test_operator_restarted_mid_way_converges_without_duplicates(kube: Kube, operator: Operator) -> None:
    operator.emulator.set_faults(create_delay=4.0)
    kube.create(share_class("cfs-slow"))
    kube.create(claim("slow-1", "cfs-slow"))
    try:
        wait_for("the file system being created", lambda: operator.emulator.file_systems(), timeout=60, interval=0.1)
        operator.restart()
        wait_for("Tcfs cfs-slow ready", lambda: ready_tcfs(kube, "cfs-slow"), timeout=120)
        wait_for("the Deployment", lambda: deployment(kube, "com.tencent.cloud.csi.tcfs.cfs-slow"), timeout=60)
        assert [fs["FsName"] for fs in operator.emulator.file_systems()] == ["cls-test_sharedCFS-cfs-slow"]
    finally:
        delete_class(kube, "cfs-slow")


def test_an_invalid_shared_class_gets_a_warning_on_the_claim(kube: Kube, operator: Operator) -> None:
    body = share_class("cfs-wrong", storagetype="XL")
    kube.create(body)
    kube.create(claim("wrong-1", "cfs-wrong"))
    try:

        def warning() -> str:
            for event in kube.events_for("default", "wrong-1"):
                if event.reason == "InvalidSharedStorageClass" and event.type == "Warning":
                    return str(event.message)
            return ""

        message = wait_for("a Warning event on the claim", warning, timeout=60)
        assert "storagetype" in message
        assert tcfs(kube, "cfs-wrong") is None
        assert operator.emulator.file_systems() == []
    finally:
        delete_class(kube, "cfs-wrong")


def test_a_tcfs_left_with_kopfs_finalizer_can_still_be_deleted(kube: Kube, operator: Operator) -> None:
    """The kopf-based operator put its finalizer on every Tcfs; this one removes it, or a delete would hang."""
    existing = cloud_create(operator.emulator, "made-by-hand")
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Tcfs",
            "metadata": {"name": "cfs-kopf", "namespace": NAMESPACE,
                         "finalizers": ["kopf.zalando.org/KopfFinalizerMarker"]},
            "spec": {"provisionername": "com.tencent.cloud.csi.tcfs.cfs-kopf", "fromExistCfs": existing}}  # fmt: skip
    wait_for("the Tcfs API served", lambda: _created(kube, body), timeout=60, interval=0.2)
    wait_for("kopf's finalizer removed", lambda: not (tcfs(kube, "cfs-kopf") or {})["metadata"].get("finalizers"),
             timeout=60)  # fmt: skip
    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "cfs-kopf")
    wait_for("the Tcfs deleted", lambda: tcfs(kube, "cfs-kopf") is None, timeout=60)
    for pv in kube.core.list_persistent_volume(label_selector="tcfsoperator.k8s.io/tcfs=cfs-kopf").items:
        if pv.metadata and pv.metadata.name:
            kube.core.delete_persistent_volume(pv.metadata.name)  # a hand-made Tcfs's share PV has no owner


def _created(kube: Kube, body: dict[str, Any]) -> bool:
    try:
        kube.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
    except ApiException as exc:
        if exc.status == 404:  # the operator has not installed the CRD yet
            return False
        raise
    return True


def test_a_claim_says_why_its_tcfs_is_not_ready_once_across_restarts(kube: Kube, operator: Operator) -> None:
    kube.create(share_class("cfs-missing", fromExistCfs="cfs-doesnotexist"))
    kube.create(claim("missing-1", "cfs-missing"))

    def warnings() -> list[Any]:
        return [e for e in kube.events_for("default", "missing-1")
                if e.type == "Warning" and e.reason == "FileSystemNotFound"]  # fmt: skip

    try:
        [event] = wait_for("the claim's warning", warnings, timeout=60)
        assert "Tcfs kube-system/cfs-missing" in event.message and "cfs-doesnotexist" in event.message
        assert event.source.component == "cfs-csi-operator"
        first_count = event.count or 1
        operator.restart()  # a new process: it knows nothing of the Event posted before
        counted = wait_for("the same warning counted again",
                           lambda: [e for e in warnings() if (e.count or 1) > first_count], timeout=90)  # fmt: skip
        assert len(warnings()) == 1 and counted[0].metadata.name == event.metadata.name
        assert kube.core.read_namespaced_persistent_volume_claim("missing-1", "default").status.phase == "Pending"
    finally:
        delete_class(kube, "cfs-missing")
