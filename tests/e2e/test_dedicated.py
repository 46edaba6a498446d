"""Dedicated mode end to end: PVC -> csi-provisioner -> our controller -> CFS API (emulator) -> PV, and back."""

from __future__ import annotations

import copy
import signal
import time
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import EXAMPLES, Dedicated, Kube, pv_gone, wait_for

DRIVER = "com.tencent.cloud.csi.cfs"


def seed(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return loaded


@pytest.fixture
def storage_class(kube: Kube, dedicated: Dedicated) -> Any:
    """The seed's CSIDriver and cfs-normal class (removed again after the test)."""
    try:
        kube.create(seed("csidriver.yaml"))
    except ApiException as exc:
        if exc.status != 409:
            raise
    kube.create(seed("storageclass-cfs-normal.yaml"))
    yield "cfs-normal"
    kube.storage.delete_storage_class("cfs-normal")


def pvc_body(name: str, namespace: str, storage_class: str = "cfs-normal") -> dict[str, Any]:
    body = copy.deepcopy(seed("pvc-cfs-normal.yaml"))
    body["metadata"] = {"name": name, "namespace": namespace}
    body["spec"]["storageClassName"] = storage_class
    return body


def bound(kube: Kube, namespace: str, name: str) -> k8s.V1PersistentVolumeClaim | None:
    pvc = kube.core.read_namespaced_persistent_volume_claim(name, namespace)
    return pvc if pvc.status.phase == "Bound" else None


def cleanup(kube: Kube, namespace: str, dedicated: Dedicated) -> None:
    """Delete every PVC of the namespace and wait for their PVs and file systems to go."""
    volumes = [pvc.spec.volume_name for pvc in kube.pvcs(namespace) if pvc.spec.volume_name]
    kube.core.delete_collection_namespaced_persistent_volume_claim(namespace)
    for volume in volumes:
        wait_for(f"PV {volume} deleted", lambda v=volume: pv_gone(kube, v), timeout=180)
    wait_for("the cloud emptied", lambda: dedicated.emulator.file_systems() == [], timeout=60)


def test_seed_pvc_binds_and_is_deleted(kube: Kube, dedicated: Dedicated, storage_class: str) -> None:
    kube.create(pvc_body("cfs-normal", "default"))
    pvc = wait_for("the seed PVC bound", lambda: bound(kube, "default", "cfs-normal"))
    pv = kube.core.read_persistent_volume(pvc.spec.volume_name)
    [fs] = dedicated.emulator.file_systems()
    assert pv.spec.csi.driver == DRIVER
    assert pv.spec.csi.volume_handle == fs["FileSystemId"]
    attributes = pv.spec.csi.volume_attributes
    assert attributes["host"].startswith("127.") and attributes["fsid"]
    assert {k: attributes[k] for k in ("pgroupid", "storagetype", "subnetid", "vers", "vpcid", "zone")} == {
        "pgroupid": "pgroup-lrquouvl", "storagetype": "SD", "subnetid": "subnet-rtwb42lu", "vers": "3",
        "vpcid": "vpc-oilua6pt", "zone": "ap-guangzhou-3",
    }  # fmt: skip
    assert fs["FsName"] == f"cls-test_{pvc.spec.volume_name}"
    assert pv.spec.capacity["storage"] == "10Gi"
    assert pv.spec.persistent_volume_reclaim_policy == "Delete"

    kube.core.delete_namespaced_persistent_volume_claim("cfs-normal", "default")
    wait_for("the PV deleted", lambda: pv_gone(kube, pvc.spec.volume_name), timeout=120)
    wait_for("the file system deleted", lambda: dedicated.emulator.file_systems() == [], timeout=30)


def test_fifty_pvcs_at_once(
    kube: Kube, dedicated: Dedicated, storage_class: str, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = kube.namespace("fifty")
    started = time.monotonic()
    for index in range(50):
        kube.create(pvc_body(f"claim-{index:02d}", namespace))
    wait_for("50 PVCs bound", lambda: all(p.status.phase == "Bound" for p in kube.pvcs(namespace)), timeout=300)
    elapsed = time.monotonic() - started
    systems = dedicated.emulator.file_systems()
    handles = {
        kube.core.read_persistent_volume(p.spec.volume_name).spec.csi.volume_handle for p in kube.pvcs(namespace)
    }
    with capsys.disabled():
        print(f"\n50 PVCs: creation to last Bound {elapsed:.1f}s; {len(systems)} file systems in the emulator")
    assert len(systems) == 50 and len({fs["FsName"] for fs in systems}) == 50
    assert handles == {fs["FileSystemId"] for fs in systems}
    cleanup(kube, namespace, dedicated)


def test_bad_parameter_stays_pending_with_an_event(kube: Kube, dedicated: Dedicated) -> None:
    body = seed("storageclass-cfs-normal.yaml")
    body["metadata"]["name"] = "cfs-broken"
    body["parameters"]["storagetyp"] = "SD"  # a typo
    kube.create(body)
    try:
        namespace = kube.namespace("broken")
        kube.create(pvc_body("claim", namespace, "cfs-broken"))

        def failure() -> str:
            for event in kube.events_for(namespace, "claim"):
                if event.reason == "ProvisioningFailed":
                    return str(event.message)
            return ""

        message = wait_for("a ProvisioningFailed event", failure, timeout=60)
        assert "storagetyp" in message and "InvalidArgument" in message
        assert kube.core.read_namespaced_persistent_volume_claim("claim", namespace).status.phase == "Pending"
        assert dedicated.emulator.file_systems() == []
        kube.core.delete_namespaced_persistent_volume_claim("claim", namespace)
    finally:
        kube.storage.delete_storage_class("cfs-broken")


def test_controller_killed_while_provisioning(
    kube: Kube, dedicated: Dedicated, storage_class: str, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = kube.namespace("crash")
    dedicated.emulator.set_faults(create_delay=3.0)
    for index in range(20):
        kube.create(pvc_body(f"claim-{index:02d}", namespace))
    wait_for("creations under way", lambda: len(dedicated.emulator.file_systems()) >= 5, timeout=60, interval=0.1)
    dedicated.restart_controller(signal.SIGKILL)
    wait_for("20 PVCs bound", lambda: all(p.status.phase == "Bound" for p in kube.pvcs(namespace)), timeout=300)
    systems = dedicated.emulator.file_systems()
    with capsys.disabled():
        print(
            f"\ncontroller killed mid-provisioning: {len(systems)} file systems for 20 PVCs "
            f"(csi-provisioner restarted {dedicated.provisioner.restarts} times after losing the socket)"
        )
    assert len(systems) == 20 and len({fs["FsName"] for fs in systems}) == 20
    cleanup(kube, namespace, dedicated)
