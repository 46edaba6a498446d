"""Which claims to provision, and the PersistentVolume each one gets (pure).

The PV is a CSI volume of ``com.tencent.cloud.csi.cfs`` so that the same node plugin mounts it; its
attributes carry the sub-directory (``path``) the node mounts instead of the file-system root, and the directory
quota set on it (``quotaBytes``), if any.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cfs_csi import DRIVER_NAME
from cfs_csi.provisioner.quotas import QUOTA_ATTRIBUTE

ANN_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_PROVISIONER_BETA = "volume.beta.kubernetes.io/storage-provisioner"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


@dataclass(frozen=True)
class Share:
    """The shared file system this provisioner serves (from the Deployment's environment)."""

    server: str
    fsid: str
    vers: str = "3"
    #: The file system's cloud id (``cfs-...``, ``CFS_ID``): what directory quotas are set on. ``fsid`` is the
    #: NFS export's id, which the API does not know.
    cloud_id: str = ""


def pv_name(claim: Mapping[str, Any]) -> str:
    """``pvc-<claim uid>``: what Kubernetes expects, and deterministic, so a retry finds its own PV."""
    return f"pvc-{claim['metadata']['uid']}"


def wants_us(claim: Mapping[str, Any], storage_class: Mapping[str, Any] | None, provisioner: str) -> str | None:
    """Why not to provision this claim (``None``: provision it).

    The external-provisioning protocol: a claim is ours when it is unbound, its class names us, and the
    PV controller annotated it for us.
    """
    spec = claim.get("spec") or {}
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    if spec.get("volumeName") or (claim.get("status") or {}).get("phase") not in (None, "Pending"):
        return "already bound"
    if storage_class is None or storage_class.get("provisioner") != provisioner:
        return "not our class"
    if provisioner not in (annotations.get(ANN_PROVISIONER), annotations.get(ANN_PROVISIONER_BETA)):
        return "not annotated for us yet"
    return None


def unsupported(claim: Mapping[str, Any]) -> str | None:
    """A claim this provisioner can never serve, with the reason for the ProvisioningFailed event."""
    spec = claim.get("spec") or {}
    if spec.get("volumeMode") == "Block":
        return "block volumes are not supported: CFS is a file system"
    if spec.get("selector"):
        return "claims with a selector are not supported by dynamic provisioning"
    if spec.get("dataSource") or spec.get("dataSourceRef"):
        return "volume data sources (snapshots, clones) are not supported"
    return None


def volume_handle(share: Share, directory: str) -> str:
    """Unique per directory of a file system; the node plugin takes everything it needs from the attributes."""
    return f"{share.fsid or share.server}:{directory}"


def persistent_volume(
    claim: Mapping[str, Any],
    storage_class: Mapping[str, Any],
    provisioner: str,
    share: Share,
    directory: str,
    quota_bytes: int | None = None,
) -> dict[str, Any]:
    """The PV of ``claim`` in ``directory``; ``quota_bytes``: the directory quota set on it, recorded in the
    attributes as ``quotaBytes`` (:data:`cfs_csi.provisioner.quotas.QUOTA_ATTRIBUTE`). The capacity stays the
    claim's request, whatever the quota (which may be larger: CFS quotas start at 10 GiB)."""
    metadata, spec = claim["metadata"], claim.get("spec") or {}
    attributes = {"host": share.server, "fsid": share.fsid, "path": directory, "vers": share.vers}
    if quota_bytes:
        attributes[QUOTA_ATTRIBUTE] = str(quota_bytes)
    pv: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name(claim), "annotations": {ANN_PROVISIONED_BY: provisioner}},
        "spec": {
            "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteMany"]),
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": "Filesystem",
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": metadata["namespace"],
                "name": metadata["name"], "uid": metadata["uid"],
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "csi": {"driver": DRIVER_NAME, "volumeHandle": volume_handle(share, directory),
                    "volumeAttributes": attributes},
        },
    }  # fmt: skip
    if storage_class.get("mountOptions"):
        pv["spec"]["mountOptions"] = list(storage_class["mountOptions"])
    return pv


def released_ours(pv: Mapping[str, Any], provisioner: str) -> bool:
    """A PV this provisioner made, released by its claim, whose reclaim policy asks us to clean up."""
    annotations = (pv.get("metadata") or {}).get("annotations") or {}
    spec, status = pv.get("spec") or {}, pv.get("status") or {}
    return (
        annotations.get(ANN_PROVISIONED_BY) == provisioner
        and status.get("phase") in ("Released", "Failed")
        and spec.get("persistentVolumeReclaimPolicy") == "Delete"
    )
