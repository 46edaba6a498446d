"""Desired state of shared mode, as plain dicts: the Tcfs of a StorageClass, the provisioner Deployment of a
Tcfs, and what to do to get from what exists to what is wanted. Pure: tested with tables, applied elsewhere.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cfs_csi import DRIVER_NAME
from cfs_csi.operator.ownership import TCFS_UID, Owner, not_ours
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
    #: The node's network namespace: where pods have no network of their own (a dev node with no pod network).
    host_network: bool = False
    #: ``(host, port)`` of the API server for the pod's client, where the ``kubernetes`` Service's address is
    #: routed by nothing (no kube-proxy); ``None`` leaves the address the kubelet injects.
    api_server: tuple[str, str] | None = None
    #: The cloud flags the provisioner runs with (:func:`provisioner_cloud_args`), so that it sets directory
    #: quotas on the operator's cloud; empty: none (its claims get no quota, with a Warning event).
    cloud_args: tuple[str, ...] = ()
    #: The Secret with the cloud keys (the operator's own), mounted at :data:`CREDENTIALS_MOUNT`; "" for none.
    credentials_secret: str = ""
    #: ``--log-format`` of the provisioner pods (the operator's own); passed only when not the default text, so
    #: that Deployments made before the flag keep their spec hash and are not rolled out on upgrade.
    log_format: str = "text"
    #: ``--health-port`` of the provisioner pods, with a liveness probe on it; 0: neither (host-network pods of
    #: several classes on one node would fight over one port).
    health_port: int = 0
    #: ``--metrics-port`` of the provisioner pods, on a container port named ``metrics``; 0: none (as above).
    metrics_port: int = 0


#: Where the provisioner pod has the cloud keys' Secret (as the chart mounts it in the controller pod).
CREDENTIALS_MOUNT = "/etc/cfs-csi/credentials"

#: Flags of :func:`cfs_csi.cloud.factory.add_backend_arguments` passed on when the operator has them set, by
#: option name: the tencent backend's (the local backend's file systems are in the operator's own state
#: directory, which a provisioner pod cannot see, so it gets none).
_PASSED_ON = ("cfs_endpoint", "region", "zone", "cluster_id", "metadata_url", "cloud_timeout")


def provisioner_cloud_args(options: Mapping[str, Any], credentials_secret: str = "") -> tuple[str, ...]:
    """The provisioner's cloud flags, from the operator's own (``vars(args)``): the same cloud, region, cluster
    id and endpoint; the keys from the Secret mounted at :data:`CREDENTIALS_MOUNT` when there is one (else from
    the pod's environment or the CVM role, as the backend resolves them)."""
    if options.get("backend") != "tencent":
        return ()
    flags = ["--backend=tencent"]
    for name in _PASSED_ON:
        value = options.get(name)
        if value not in (None, ""):
            flags.append(f"--{name.replace('_', '-')}={value}")
    if credentials_secret:
        flags.append(f"--credentials-dir={CREDENTIALS_MOUNT}")
    return tuple(flags)


def log_flags(log_format: str) -> list[str]:
    """The global flags that give the provisioner the operator's log format (none for the default)."""
    return [] if log_format == "text" else [f"--log-format={log_format}"]


def health_flags(port: int) -> list[str]:
    return [f"--health-port={port}"] if port else []


def metrics_flags(port: int) -> list[str]:
    return [f"--metrics-port={port}"] if port else []


def metrics_ports(port: int) -> dict[str, Any]:
    """The container port named ``metrics`` that the chart's Service and ServiceMonitor scrape, if any."""
    return {"ports": [{"name": "metrics", "containerPort": port}]} if port else {}


def liveness_probe(port: int) -> dict[str, Any]:
    """The container's liveness probe on its ``/healthz`` (a stuck Lease loop or watch), if it serves one."""
    if not port:
        return {}
    probe = {"httpGet": {"path": "/healthz", "port": port}, "initialDelaySeconds": 30, "periodSeconds": 30,
             "timeoutSeconds": 10, "failureThreshold": 3}  # fmt: skip
    return {"livenessProbe": probe}


@dataclass(frozen=True)
class SharedFileSystem:
    """Where a Tcfs's file system is: what the status records."""

    server: str
    fsid: str
    cloud_id: str = ""


def parse_api_server(text: str) -> tuple[str, str]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as the ``(host, port)`` of :attr:`ProvisionerTemplate.api_server`."""
    host, sep, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not sep or not host or (":" in host and not bracketed) or not (port.isascii() and port.isdigit()):
        raise ValueError(f"not HOST:PORT: {text!r}")
    if not 0 < int(port) < 65536:
        raise ValueError(f"port out of range: {text!r}")
    return host, port


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
    labels = dict(deployment_owner(tcfs).labels)
    path = nfs_path(spec, fs.fsid)
    share = share_volume_name(str(metadata["name"]), fs)  # mounted by the node plugin: see desired_share_volume
    env = [
        {"name": "PROVISIONER_NAME", "value": name},
        {"name": "NFS_SERVER", "value": fs.server},
        {"name": "NFS_PATH", "value": path},
        {"name": "NFS_FSID", "value": fs.fsid},
        {"name": "NFS_VERS", "value": str(spec.get("vers") or "3")},
        {"name": "SHARE_MOUNT_PATH", "value": SHARE_MOUNT},
        *([{"name": "CFS_ID", "value": fs.cloud_id}] if fs.cloud_id else []),  # what directory quotas are set on
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    if template.api_server is not None:
        host, port = template.api_server
        env += [{"name": "KUBERNETES_SERVICE_HOST", "value": host}, {"name": "KUBERNETES_SERVICE_PORT", "value": port}]
    mounts: list[dict[str, Any]] = [{"name": "cfs-share", "mountPath": SHARE_MOUNT}]
    volumes: list[dict[str, Any]] = [{"name": "cfs-share", "persistentVolumeClaim": {"claimName": share}}]
    if template.credentials_secret:
        mounts.append({"name": "cloud-credentials", "mountPath": CREDENTIALS_MOUNT, "readOnly": True})
        volumes.append({"name": "cloud-credentials",
                        "secret": {"secretName": template.credentials_secret, "defaultMode": 0o440}})  # fmt: skip
    pod_spec: dict[str, Any] = {
        "serviceAccountName": template.service_account,
        "containers": [{
            "name": "subdir-provisioner",
            "image": template.image,
            "imagePullPolicy": template.image_pull_policy,
            "command": ["cfs-csi", *log_flags(template.log_format), "subdir-provisioner", "--leader-elect",
                        *template.cloud_args, *health_flags(template.health_port),
                        *metrics_flags(template.metrics_port)],
            **liveness_probe(template.health_port),
            **metrics_ports(template.metrics_port),
            "env": env,
            "volumeMounts": mounts,
            "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            # Root: it creates, renames and removes directories in the share's root, which root owns; the
            # image's default user is unprivileged.
            "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": False},
        }],
        "volumes": volumes,
    }  # fmt: skip
    if template.host_network:  # only then: the spec (and its hash) of every other install stays as it was
        pod_spec |= {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}
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


def deployment_owner(tcfs: Mapping[str, Any]) -> Owner:
    """Who a provisioner Deployment must prove it belongs to: this Tcfs (by uid), with both our labels."""
    name = str(tcfs["metadata"]["name"])
    return Owner(name, str(tcfs["metadata"].get("uid") or ""), {"app": APP_LABEL, TCFS_LABEL: tcfs_label(name)})


def share_owner(tcfs: Mapping[str, Any]) -> Owner:
    """Who a share PV or PVC must prove it belongs to: this Tcfs (by uid), with its label."""
    name = str(tcfs["metadata"]["name"])
    return Owner(name, str(tcfs["metadata"].get("uid") or ""), {TCFS_LABEL: tcfs_label(name)})


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


def desired_share_volume(
    tcfs: Mapping[str, Any], fs: SharedFileSystem, claim_uid: str = ""
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PV and PVC through which a provisioner pod gets the whole share.

    A static volume of our own CSI driver, so that the node plugin mounts it exactly like every other CFS volume
    (NFSv3 with ``nolock,noresvport,proto=tcp``). An in-tree ``nfs`` volume cannot carry those options and needs
    the NFS client on the host. The two are bound to each other by name; the PV is Retain (deleting it never
    touches data, and nothing calls DeleteVolume for it) and owned by the StorageClass, the PVC by the Tcfs, so
    deleting the class removes both by garbage collection. With ``claim_uid`` (the PVC, once created) the PV
    names its claim by uid as well, so that it can bind to no other object of that name.
    """
    metadata = tcfs["metadata"]
    spec = tcfs.get("spec") or {}
    name = share_volume_name(str(metadata["name"]), fs)
    labels = dict(share_owner(tcfs).labels)
    access = {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeMode": "Filesystem"}
    class_owners = [
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "name": o["name"], "uid": o["uid"],
         "blockOwnerDeletion": False}
        for o in metadata.get("ownerReferences") or [] if o.get("kind") == "StorageClass"
    ]  # fmt: skip
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        # The annotation is the PV's proof of ownership (see :mod:`.ownership`): it can name no Tcfs as owner.
        "metadata": {"name": name, "labels": labels, "annotations": {TCFS_UID: str(metadata["uid"])},
                     "ownerReferences": class_owners},
        "spec": {
            **access,
            "capacity": {"storage": SHARE_CAPACITY},
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": metadata["namespace"],
                         "name": name, **({"uid": claim_uid} if claim_uid else {})},
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
    #: An object of that name exists and is not ours: left alone, and reported.
    NOT_OURS = "not-ours"


def deployment_action(existing: Mapping[str, Any] | None, desired: Mapping[str, Any] | None, owner: Owner) -> Action:
    """What to do with the Deployment named by the Tcfs.

    One that exists is replaced or deleted only if it proves it is ``owner``'s (:func:`.ownership.not_ours`);
    otherwise it is never touched, whatever is desired. Ours is compared by the hash of the desired spec we
    stamped on it, not field by field: the API server fills in defaults, so a field-by-field comparison would
    always see a difference.
    """
    if existing is not None and not_ours(existing.get("metadata"), owner) is not None:
        return Action.NOT_OURS
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


#: Ready condition reasons (and Warning event reasons) for an object in our way that is not ours.
DEPLOYMENT_NOT_OWNED = "DeploymentNotOwned"
SHARE_VOLUME_NOT_OWNED = "ShareVolumeNotOwned"


@dataclass(frozen=True)
class Conflict:
    """An object the operator needs to manage, that exists under our name and is not ours."""

    reason: str
    message: str


def conflict(reason: str, what: str, metadata: Mapping[str, Any] | None, owner: Owner, *,
             by_annotation: bool = False) -> Conflict | None:  # fmt: skip
    """The conflict of an existing object ``what`` (kind and name), or ``None`` when it is ours."""
    why = not_ours(metadata, owner, by_annotation=by_annotation)
    if why is None:
        return None
    return Conflict(reason, f"{what} exists but is not managed by Tcfs {owner.name} ({why}); it was left alone: "
                            "delete or rename it, or change the Tcfs")  # fmt: skip


def readiness(fs: SharedFileSystem, conflicts: Sequence[Conflict]) -> tuple[bool, str, str]:
    """The Ready condition (status, reason, message) of a Tcfs whose file system is ready.

    A conflict makes it not Ready under the conflict's reason (the first one's when there are several), and the
    message still says the file system is ready, so that nobody goes looking for a cloud problem.
    """
    where = f"{fs.server}:/{fs.fsid}/ ({fs.cloud_id or 'id unknown'})"
    if not conflicts:
        return True, "FileSystemReady", where
    return False, conflicts[0].reason, "; ".join([*(c.message for c in conflicts), f"file system {where} is ready"])
