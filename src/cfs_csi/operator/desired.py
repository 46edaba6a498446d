"""Desired state of shared mode, as plain dicts: the Tcfs of a StorageClass, the provisioner Deployment of a
Tcfs, and what to do to get from what exists to what is wanted. Pure: tested with tables, applied elsewhere.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cfs_csi import DRIVER_NAME
from cfs_csi.operator.shared import TCFS_GROUP, TCFS_VERSION, SharedClass
from cfs_csi.volume.params import NfsVersion

SPEC_HASH = "cfs-csi.tencent.com/spec-hash"
APP_LABEL = "cfs-csi-subdir-provisioner"
SHARE_MOUNT = "/persistentvolumes"
TCFS_LABEL = "tcfsoperator.k8s.io/tcfs"
#: Size the share's PV and PVC declare: required by the API, meaningless for an elastic file system.
SHARE_CAPACITY = "1Mi"


@dataclass(frozen=True)
class ProvisionerTemplate:
    """Operator-wide settings of every provisioner Deployment (from the operator's flags)."""

    image: str
    service_account: str = "cfs-csi-subdir-provisioner"
    replicas: int = 1
    image_pull_policy: str = "IfNotPresent"


@dataclass(frozen=True)
class SharedFileSystem:
    """Where a Tcfs's file system is: what the status records."""

    server: str
    fsid: str
    cloud_id: str = ""


def tcfs_object(shared: SharedClass, namespace: str) -> dict[str, Any]:
    """The Tcfs for a shared StorageClass, owned by it so that deleting the class deletes the Tcfs (and, through
    the Tcfs, the provisioner Deployment) by garbage collection; the file system itself is never touched."""
    return {
        "apiVersion": f"{TCFS_GROUP}/{TCFS_VERSION}",
        "kind": "Tcfs",
        "metadata": {
            "name": shared.name,
            "namespace": namespace,
            "ownerReferences": [{
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "name": shared.name,
                "uid": shared.uid, "blockOwnerDeletion": False,
            }],
        },
        "spec": shared.tcfs_spec(),
    }  # fmt: skip


def nfs_path(spec: Mapping[str, Any], fsid: str) -> str:
    """The share's export (the provisioner's ``NFS_PATH``): ``/<fsid>/`` for NFSv3, ``/`` for NFSv4, as the node
    plugin mounts it."""
    return "/" if str(spec.get("vers") or "3") == NfsVersion.V4.value else f"/{fsid}/"


def desired_deployment(tcfs: Mapping[str, Any], fs: SharedFileSystem, template: ProvisionerTemplate) -> dict[str, Any]:
    """The sub-directory provisioner Deployment of one Tcfs."""
    metadata = tcfs["metadata"]
    spec = tcfs.get("spec") or {}
    name = str(spec.get("provisionername") or "")
    labels = {"app": APP_LABEL, TCFS_LABEL: tcfs_label(str(metadata["name"]))}
    path = nfs_path(spec, fs.fsid)
    share = share_volume_name(str(metadata["name"]), fs)  # mounted by the node plugin: see desired_share_volume
    env = [
        {"name": "PROVISIONER_NAME", "value": name},
        {"name": "NFS_SERVER", "value": fs.server},
        {"name": "NFS_PATH", "value": path},
        {"name": "NFS_FSID", "value": fs.fsid},
        {"name": "NFS_VERS", "value": str(spec.get("vers") or "3")},
        {"name": "SHARE_MOUNT_PATH", "value": SHARE_MOUNT},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    pod_spec = {
        "serviceAccountName": template.service_account,
        "containers": [{
            "name": "subdir-provisioner",
            "image": template.image,
            "imagePullPolicy": template.image_pull_policy,
            "command": ["cfs-csi", "subdir-provisioner", "--leader-elect"],
            "env": env,
            "volumeMounts": [{"name": "cfs-share", "mountPath": SHARE_MOUNT}],
            "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            # Root: it creates, renames and removes directories in the share's root, which root owns; the
            # image's default user is unprivileged.
            "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": False},
        }],
        "volumes": [{"name": "cfs-share", "persistentVolumeClaim": {"claimName": share}}],
    }  # fmt: skip
    deployment_spec = {
        "replicas": template.replicas,
        "selector": {"matchLabels": labels},
        "strategy": {"type": "Recreate"},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": metadata["namespace"],
            "labels": labels,
            "annotations": {SPEC_HASH: spec_hash(deployment_spec)},
            "ownerReferences": [{
                "apiVersion": f"{TCFS_GROUP}/{TCFS_VERSION}", "kind": "Tcfs", "name": metadata["name"],
                "uid": metadata["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": deployment_spec,
    }  # fmt: skip


def _shortened(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its head and a hash of the whole (still unique)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{text[: limit - 11].rstrip('.-')}-{digest}"


def tcfs_label(tcfs_name: str) -> str:
    """The value of the ``tcfsoperator.k8s.io/tcfs`` label: the Tcfs name, shortened past the 63-character limit
    of label values (a StorageClass name may have 253)."""
    return _shortened(tcfs_name, 63)


def share_volume_name(tcfs_name: str, fs: SharedFileSystem) -> str:
    """Name of the share's PV and PVC; it names the FSID, so another file system gets new objects."""
    return f"tcfs-{_shortened(tcfs_name, 253 - len(f'tcfs--{fs.fsid}'))}-{fs.fsid}"


def desired_share_volume(tcfs: Mapping[str, Any], fs: SharedFileSystem) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PV and PVC through which a provisioner pod gets the whole share.

    A static volume of our own CSI driver, so that the node plugin mounts it exactly like every other CFS volume
    (NFSv3 with ``nolock,noresvport,proto=tcp``). An in-tree ``nfs`` volume cannot carry those options and needs
    the NFS client on the host. The two are bound to each other by name; the PV is Retain (deleting it never
    touches data, and nothing calls DeleteVolume for it) and owned by the StorageClass, the PVC by the Tcfs, so
    deleting the class removes both by garbage collection.
    """
    metadata = tcfs["metadata"]
    spec = tcfs.get("spec") or {}
    name = share_volume_name(str(metadata["name"]), fs)
    labels = {TCFS_LABEL: tcfs_label(str(metadata["name"]))}
    access = {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeMode": "Filesystem"}
    class_owners = [
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "name": o["name"], "uid": o["uid"],
         "blockOwnerDeletion": False}
        for o in metadata.get("ownerReferences") or [] if o.get("kind") == "StorageClass"
    ]  # fmt: skip
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels, "ownerReferences": class_owners},
        "spec": {
            **access,
            "capacity": {"storage": SHARE_CAPACITY},
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": metadata["namespace"],
                         "name": name},
            "csi": {"driver": DRIVER_NAME, "volumeHandle": name,
                    "volumeAttributes": {"host": fs.server, "fsid": fs.fsid, "vers": str(spec.get("vers") or "3")}},
        },
    }  # fmt: skip
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name, "namespace": metadata["namespace"], "labels": labels,
            "ownerReferences": [{
                "apiVersion": f"{TCFS_GROUP}/{TCFS_VERSION}", "kind": "Tcfs", "name": metadata["name"],
                "uid": metadata["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {**access, "volumeName": name, "resources": {"requests": {"storage": SHARE_CAPACITY}}},
    }  # fmt: skip
    return pv, pvc


def spec_hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


class Action(enum.Enum):
    NONE = "none"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


def deployment_action(existing: Mapping[str, Any] | None, desired: Mapping[str, Any] | None) -> Action:
    """Compare by the hash of the desired spec we stamped on the Deployment, not field by field: the API
    server fills in defaults, so a field-by-field comparison would always see a difference."""
    if desired is None:
        return Action.DELETE if existing is not None else Action.NONE
    if existing is None:
        return Action.CREATE
    stamped = ((existing.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH)
    return Action.NONE if stamped == desired["metadata"]["annotations"][SPEC_HASH] else Action.UPDATE


def ready_condition(ready: bool, reason: str, message: str, now: str, previous: list[Any] | None) -> list[Any]:
    """The ``conditions`` list with Ready set; the transition time moves only when the status changes."""
    status = "True" if ready else "False"
    old = next((c for c in previous or [] if c.get("type") == "Ready"), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now
    others = [c for c in previous or [] if c.get("type") != "Ready"]
    return [*others, {"type": "Ready", "status": status, "reason": reason, "message": message,
                      "lastTransitionTime": since}]  # fmt: skip
