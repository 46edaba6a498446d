"""Issue 11, findings 12 and 13, on the real API server: the operator changes, deletes or uses only objects that
prove they are its Tcfs's, and a misconfigured shared class is reported on the claim instead of ignored.

Each case waits for the Warning event the operator must emit (never a blind sleep), then compares the object in
its way with what it was before: same uid (not deleted and re-created), same generation and spec (not replaced),
no deletion timestamp. resourceVersion is not compared: the API server's own controllers update the status of a
Deployment, PV or PVC on their own.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.conftest import cloud_create
from tests.e2e.conftest import GROUP, NAMESPACE, PLURAL, VERSION, Kube, Operator, wait_for
from tests.e2e.test_operator import claim, delete_class, deployment, mount_target, share_class, tcfs

TCFS_LABEL = "tcfsoperator.k8s.io/tcfs"
#: The cloud half of a Tcfs spec, as the storageclass controller writes it for the seed class.
CLOUD_SPEC = {
    "pgroupid": "pgroup-lrquouvl", "reclaimpolicy": "Retain", "storagetype": "SD", "subnetid": "subnet-rtwb42lu",
    "vpcid": "vpc-oilua6pt", "zone": "ap-guangzhou-3", "vers": "3",
}  # fmt: skip


def hand_made_tcfs(name: str, provisioner: str, **spec: str) -> dict[str, Any]:
    """A Tcfs as an admin writes it (no StorageClass owns it), naming ``provisioner`` as its Deployment."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Tcfs", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {**CLOUD_SPEC, "provisionername": provisioner, **spec}}  # fmt: skip


def victim_deployment(name: str) -> dict[str, Any]:
    """A plain application Deployment that nothing owns, in the operator's namespace."""
    labels = {"app": name}
    container = {"name": "app", "image": "busybox:1.36", "command": ["sleep", "infinity"]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}  # fmt: skip


def fingerprint(kube: Kube, found: Any) -> dict[str, Any]:
    """What must not change about an object that is not ours (status and controller bookkeeping excluded)."""
    body = kube.api.sanitize_for_serialization(found)
    metadata = body["metadata"]
    # Without the Deployment controller's revision annotation, which it adds on its own.
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items()
                   if not k.startswith("deployment.kubernetes.io/")}  # fmt: skip
    return {
        "uid": metadata["uid"], "generation": metadata.get("generation"), "labels": metadata.get("labels"),
        "annotations": annotations, "ownerReferences": metadata.get("ownerReferences"),
        "deletionTimestamp": metadata.get("deletionTimestamp"), "spec": body["spec"],
    }  # fmt: skip


def warning(kube: Kube, name: str, reason: str, namespace: str = NAMESPACE) -> str:
    """The message of a Warning event ``reason`` on object ``name``, or "" while there is none."""
    for event in kube.events_for(namespace, name):
        if event.reason == reason and event.type == "Warning":
            return str(event.message)
    return ""


def ready_condition(kube: Kube, name: str) -> dict[str, Any]:
    found = tcfs(kube, name) or {}
    conditions = (found.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), {})


def change_spec(kube: Kube, name: str) -> int:
    """Change a field of Tcfs ``name`` that nothing acts on (a new generation: reconciled at once); the generation."""
    found = tcfs(kube, name) or {}
    policy = "Delete" if found["spec"].get("reclaimpolicy") == "Retain" else "Retain"
    patch = {"spec": {"reclaimpolicy": policy}}
    changed: Any = kube.custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name, patch)
    return int(changed["metadata"]["generation"])


def observed(kube: Kube, name: str, generation: int) -> bool:
    """Whether the operator has reconciled generation ``generation`` of Tcfs ``name`` (its status says so)."""
    return bool(((tcfs(kube, name) or {}).get("status") or {}).get("observedGeneration") == generation)


def warnings_of(kube: Kube, name: str, reason: str, namespace: str = NAMESPACE) -> list[Any]:
    return [e for e in kube.events_for(namespace, name) if e.reason == reason and e.type == "Warning"]


def read_or_none(read: Any, *args: str) -> Any:
    try:
        return read(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


@pytest.fixture
def served(kube: Kube, operator: Operator) -> Operator:
    """The operator, once the Tcfs API it installs is served (these tests create Tcfs objects themselves)."""

    def listed() -> bool:
        try:
            kube.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    wait_for("the Tcfs API served", listed, timeout=60, interval=0.2)
    return operator


@pytest.fixture
def victim(kube: Kube) -> Iterator[str]:
    name = "victim-app"
    kube.apps.create_namespaced_deployment(NAMESPACE, victim_deployment(name))
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            kube.apps.delete_namespaced_deployment(name, NAMESPACE)


def test_a_deployment_the_tcfs_names_but_does_not_own_is_left_alone(kube: Kube, served: Operator, victim: str) -> None:
    operator = served
    before = fingerprint(kube, kube.apps.read_namespaced_deployment(victim, NAMESPACE))
    # Objects that carry the Tcfs's label but are not its own: the clean-up of old share volumes must skip them.
    decoy_pv = kube.core.create_persistent_volume({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "decoy", "labels": {TCFS_LABEL: "cfs-v"}},
        "spec": {"capacity": {"storage": "1Mi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "decoy-pv",
                 "csi": {"driver": "other.example.com", "volumeHandle": "decoy"}},
    })  # fmt: skip
    decoy_pvc = kube.core.create_namespaced_persistent_volume_claim(NAMESPACE, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "decoy", "labels": {TCFS_LABEL: "cfs-v"}},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "decoy-pvc",
                 "resources": {"requests": {"storage": "1Mi"}}},
    })  # fmt: skip
    try:
        kube.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, hand_made_tcfs("cfs-v", victim))
        message = wait_for("a DeploymentNotOwned warning on the Tcfs",
                           lambda: warning(kube, "cfs-v", "DeploymentNotOwned"), timeout=90)  # fmt: skip
        assert f"Deployment {NAMESPACE}/{victim} exists but is not managed by Tcfs cfs-v" in message
        assert "no ownerReferences" in message
        condition = ready_condition(kube, "cfs-v")
        assert (condition["status"], condition["reason"]) == ("False", "DeploymentNotOwned")
        status = (tcfs(kube, "cfs-v") or {})["status"]
        [fs] = operator.emulator.file_systems()  # the file system is found and recorded all the same
        assert status["cfsid"] == fs["FileSystemId"]
        where = f"{status['cfsserver']}:/{status['cfsfilesystemid']}/ ({fs['FileSystemId']})"
        assert f"file system {where} is ready" in condition["message"]

        assert fingerprint(kube, kube.apps.read_namespaced_deployment(victim, NAMESPACE)) == before
        # The share volume was created (the clean-up of "others" ran after it) and the decoys are still there.
        assert kube.core.read_namespaced_persistent_volume_claim(f"tcfs-cfs-v-{status['cfsfilesystemid']}", NAMESPACE)
        assert fingerprint(kube, kube.core.read_persistent_volume("decoy")) == fingerprint(kube, decoy_pv)
        assert fingerprint(kube, kube.core.read_namespaced_persistent_volume_claim("decoy", NAMESPACE)) == (
            fingerprint(kube, decoy_pvc)
        )
        # Reported by the operator under its own name (not kopf's).
        [event] = warnings_of(kube, "cfs-v", "DeploymentNotOwned")
        assert event.source.component == "cfs-csi-operator" and event.involved_object.kind == "Tcfs"
        # More reconciles with nothing changed repeat no warning: one per change of the condition. The status
        # records the generation reconciled; a warning of the first reconcile is posted before the second ends.
        for _ in range(2):
            generation = change_spec(kube, "cfs-v")
            wait_for("the spec change reconciled", functools.partial(observed, kube, "cfs-v", generation), timeout=60)
        [again] = warnings_of(kube, "cfs-v", "DeploymentNotOwned")
        assert (again.metadata.uid, again.count) == (event.metadata.uid, 1)
        assert fingerprint(kube, kube.apps.read_namespaced_deployment(victim, NAMESPACE)) == before
    finally:
        kube.core.delete_namespaced_persistent_volume_claim("decoy", NAMESPACE)
        kube.core.delete_persistent_volume("decoy")
        for pv in kube.core.list_persistent_volume(label_selector=f"{TCFS_LABEL}=cfs-v").items:
            if pv.metadata.name != "decoy":
                kube.core.delete_persistent_volume(pv.metadata.name)  # a hand-made Tcfs's share PV has no owner


def test_a_missing_file_system_does_not_delete_a_deployment_that_is_not_ours(
    kube: Kube, served: Operator, victim: str
) -> None:
    operator = served
    before = fingerprint(kube, kube.apps.read_namespaced_deployment(victim, NAMESPACE))
    # The status must name the missing file system before the operator first sees the Tcfs.
    operator.process.stop()
    kube.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, hand_made_tcfs("cfs-gone", victim))
    gone = {"cfsserver": "10.0.0.9", "cfsfilesystemid": "deadbeef", "cfsid": "cfs-deadbeef"}
    kube.custom.patch_namespaced_custom_object_status(GROUP, VERSION, NAMESPACE, PLURAL, "cfs-gone", {"status": gone})
    operator.process = operator.start()

    message = wait_for("a DeploymentNotOwned warning on the Tcfs",
                       lambda: warning(kube, "cfs-gone", "DeploymentNotOwned"), timeout=90)  # fmt: skip
    assert f"Deployment {NAMESPACE}/{victim} exists but is not managed by Tcfs cfs-gone" in message
    assert "cfs-deadbeef" in warning(kube, "cfs-gone", "FileSystemMissing")
    condition = ready_condition(kube, "cfs-gone")
    assert (condition["status"], condition["reason"]) == ("False", "FileSystemMissing")
    assert "cfs-deadbeef" in condition["message"] and f"Deployment {NAMESPACE}/{victim}" in condition["message"]
    assert fingerprint(kube, kube.apps.read_namespaced_deployment(victim, NAMESPACE)) == before
    assert operator.emulator.file_systems() == []  # and no replacement was created

    # Each reconcile says so again; the repeats are counted on the one Event, not posted as new ones.
    generation = change_spec(kube, "cfs-gone")
    wait_for("the spec change reconciled", lambda: observed(kube, "cfs-gone", generation), timeout=60)
    repeated = wait_for("the FileSystemMissing warning counted again",
                        lambda: [e for e in warnings_of(kube, "cfs-gone", "FileSystemMissing") if e.count >= 2],
                        timeout=30)  # fmt: skip
    assert len(repeated) == 1 and len(warnings_of(kube, "cfs-gone", "FileSystemMissing")) == 1
    assert repeated[0].source.component == "cfs-csi-operator"
    assert fingerprint(kube, kube.apps.read_namespaced_deployment(victim, NAMESPACE)) == before
    assert operator.emulator.file_systems() == []


@pytest.mark.parametrize("kind", ["PersistentVolume", "PersistentVolumeClaim"])
def test_a_share_volume_name_taken_by_someone_else_is_neither_adopted_nor_used(
    kube: Kube, served: Operator, kind: str
) -> None:
    operator = served
    name = f"cfs-taken-{'pv' if kind == 'PersistentVolume' else 'pvc'}"
    fs_id = cloud_create(operator.emulator, "made-by-hand")
    _, fsid = mount_target(operator.emulator, fs_id)
    share = f"tcfs-{name}-{fsid}"  # the name the operator will want; the foreign object even has our label
    metadata = {"name": share, "labels": {TCFS_LABEL: name}}
    access = {"accessModes": ["ReadWriteMany"], "storageClassName": ""}
    read: Any
    if kind == "PersistentVolume":
        foreign = kube.core.create_persistent_volume({"apiVersion": "v1", "kind": kind, "metadata": metadata, "spec": {
            **access, "capacity": {"storage": "1Mi"}, "persistentVolumeReclaimPolicy": "Retain",
            "csi": {"driver": "com.tencent.cloud.csi.cfs", "volumeHandle": "someone-elses",
                    "volumeAttributes": {"host": "10.9.9.9", "fsid": "elsewhere"}}}})  # fmt: skip
        read, other = (
            (lambda: kube.core.read_persistent_volume(share)),
            (lambda: read_or_none(kube.core.read_namespaced_persistent_volume_claim, share, NAMESPACE)),
        )
    else:
        foreign = kube.core.create_namespaced_persistent_volume_claim(NAMESPACE, {
            "apiVersion": "v1", "kind": kind, "metadata": metadata,
            "spec": {**access, "resources": {"requests": {"storage": "1Mi"}}}})  # fmt: skip
        read, other = (
            (lambda: kube.core.read_namespaced_persistent_volume_claim(share, NAMESPACE)),
            (lambda: read_or_none(kube.core.read_persistent_volume, share)),
        )
    before = fingerprint(kube, foreign)
    provisioner = f"com.tencent.cloud.csi.tcfs.{name}"
    try:
        body = hand_made_tcfs(name, provisioner, fromExistCfs=fs_id)
        kube.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        message = wait_for("a ShareVolumeNotOwned warning on the Tcfs",
                           lambda: warning(kube, name, "ShareVolumeNotOwned"), timeout=90)  # fmt: skip
        where = share if kind == "PersistentVolume" else f"{NAMESPACE}/{share}"
        assert f"{kind} {where} exists but is not managed by Tcfs {name}" in message
        condition = ready_condition(kube, name)
        assert (condition["status"], condition["reason"]) == ("False", "ShareVolumeNotOwned")
        assert (tcfs(kube, name) or {})["status"]["cfsid"] == fs_id
        assert fingerprint(kube, read()) == before
        # Nothing was created that would bind to it, and no provisioner was pointed at it.
        assert other() is None
        assert deployment(kube, provisioner) is None
    finally:
        with contextlib.suppress(ApiException):
            kube.core.delete_namespaced_persistent_volume_claim(share, NAMESPACE)
        with contextlib.suppress(ApiException):
            kube.core.delete_persistent_volume(share)


def without_subdir_share(name: str) -> dict[str, Any]:
    body = share_class(name)
    body["parameters"] = {k: v for k, v in body["parameters"].items() if k != "subdir-share"}
    return body


BAD_CLASSES = [
    ("subdir-share yes", share_class("cfs-yes", **{"subdir-share": "yes"}), "subdir-share 'yes' is not"),
    ("no subdir-share", without_subdir_share("cfs-unset"), "no Tcfs names that provisioner"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "needle"), BAD_CLASSES, ids=[c[0] for c in BAD_CLASSES])
def test_a_shared_class_with_a_bad_subdir_share_gets_a_warning_on_the_claim(
    kube: Kube, operator: Operator, case: str, body: dict[str, Any], needle: str
) -> None:
    name = body["metadata"]["name"]
    kube.create(body)
    kube.create(claim(f"{name}-1", name))
    try:
        message = wait_for(
            "an InvalidSharedStorageClass warning on the claim",
            lambda: warning(kube, f"{name}-1", "InvalidSharedStorageClass", "default"),
            timeout=60,
        )
        assert needle in message and f"StorageClass {name}" in message
        assert tcfs(kube, name) is None
        assert operator.emulator.file_systems() == []
    finally:
        delete_class(kube, name)
