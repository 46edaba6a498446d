"""Whose is this file system? The one decision every backend makes before it deletes one (pure, table-tested).

A volume id is just a file-system id, and anyone who can create a PV (or reach the controller's socket) can
hand us any id of the account: a shared class's file system that every claim of the class keeps its data in,
one of another cluster that shares the account, or one the vendor's driver or a person created. Deleting is
the one thing that cannot be undone, so a file system is deleted only when it is proven to be a dedicated
volume that this driver created for this cluster:

- its ``cfs-csi/volume`` tag names the volume, its ``cfs-csi/cluster`` tag equals this controller's cluster id
  (and is absent when there is none), and its cloud name is exactly the one this driver gives that volume;
- neither the name nor the tag says it is a shared class's (``sharedCFS-<class>``).

Everything else is refused (FAILED_PRECONDITION over CSI) with what to do by hand, and stays.

File systems with no ``cfs-csi/`` tag at all are someone else's. Users who migrate from the vendor's Go driver
have PVs whose handle is a file system that driver created, untagged and named after the PV
(``<cluster id>_pvc-<uid>``). They are refused too, unless the controller runs with
``--delete-vendor-volumes``: then an untagged file system whose name is exactly the vendor's name of a PV of
this cluster is deleted. That is the admin's explicit choice; the name is the only proof there is.

Backends without tags (``local``) know only names: their metadata holds only what this driver created, so a
name decides whether it is a shared class's.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cfs_csi.volume.names import cut, is_shared_name
from cfs_csi.volume.params import RESERVED_TAG_PREFIX

TAG_VOLUME = RESERVED_TAG_PREFIX + "volume"
TAG_CLUSTER = RESERVED_TAG_PREFIX + "cluster"
TAG_CAPACITY = RESERVED_TAG_PREFIX + "capacity-bytes"
TAG_VERS = RESERVED_TAG_PREFIX + "nfs-vers"

_PV_NAME = re.compile(r"pvc-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

#: The controller flag that lets DeleteVolume delete the vendor driver's untagged PV file systems.
VENDOR_FLAG = "--delete-vendor-volumes"


class Origin(enum.StrEnum):
    VOLUME = "volume"  # a dedicated volume of this driver and cluster: the only kind DeleteVolume deletes
    SHARED = "shared"  # the file system of a shared StorageClass
    VENDOR = "vendor"  # untagged, named like the vendor driver's file system of a PV of this cluster
    UNTAGGED = "untagged"  # no cfs-csi tag: made by a person or another tool
    OTHER_CLUSTER = "other-cluster"  # tagged by this driver for another cluster
    INCONSISTENT = "inconsistent"  # some of our tags, but they and the name do not tell one story


@dataclass(frozen=True)
class Ownership:
    """What a backend could prove about one file system; ``detail`` says why, for messages."""

    origin: Origin
    detail: str = ""


def is_reserved_tag(key: str) -> bool:
    return key.lower().startswith(RESERVED_TAG_PREFIX)


def judge_tagged(
    cloud_name: str, tags: Mapping[str, str], cluster_id: str, cloud_name_for: Callable[[str], str]
) -> Ownership:
    """Ownership of a file system in a cloud with tags. ``cloud_name_for(volume)`` is our cloud name of a volume."""
    prefix = f"{cluster_id}_" if cluster_id else ""
    bare = cloud_name.removeprefix(prefix) if prefix and cloud_name.startswith(prefix) else cloud_name
    volume = tags.get(TAG_VOLUME, "")
    if is_shared_name(bare) or is_shared_name(volume):
        return Ownership(Origin.SHARED, f"its name {cut(cloud_name)!r} or tag says it is a shared class's")
    if not any(is_reserved_tag(key) for key in tags):
        if (not prefix or cloud_name.startswith(prefix)) and _PV_NAME.fullmatch(bare):
            return Ownership(Origin.VENDOR, f"untagged, named {cut(cloud_name)!r} like the vendor driver's")
        return Ownership(Origin.UNTAGGED, f"it has no {RESERVED_TAG_PREFIX} tags")
    cluster = tags.get(TAG_CLUSTER, "")
    if cluster != cluster_id:
        return Ownership(
            Origin.OTHER_CLUSTER,
            f"it is tagged for cluster {cut(cluster)!r}, and this controller's cluster id is {cluster_id!r}",
        )
    if not volume:
        return Ownership(Origin.INCONSISTENT, f"it has {RESERVED_TAG_PREFIX} tags but no {TAG_VOLUME} tag")
    expected = cloud_name_for(volume)
    if cloud_name != expected:
        return Ownership(
            Origin.INCONSISTENT,
            f"its tag names volume {cut(volume)!r}, whose file system would be named {cut(expected)!r}, "
            f"not {cut(cloud_name)!r}",
        )
    return Ownership(Origin.VOLUME)


def judge_named(name: str) -> Ownership:
    """Ownership in a backend without tags, whose records hold only what this driver created."""
    if is_shared_name(name):
        return Ownership(Origin.SHARED, f"its name {cut(name)!r} says it is a shared class's")
    return Ownership(Origin.VOLUME)


def deletion_refusal(fs_id: str, ownership: Ownership, delete_vendor: bool = False) -> str | None:
    """``None`` if DeleteVolume may delete this file system, else the message that says why not and what to do."""
    origin = ownership.origin
    if origin is Origin.VOLUME or (origin is Origin.VENDOR and delete_vendor):
        return None
    head = f"file system {fs_id} is not deleted: {ownership.detail}"
    if origin is Origin.SHARED:
        return (
            f"{head}. A shared StorageClass keeps every claim's data in it; DeleteVolume never deletes it. "
            "Delete the class's claims, then the file system in the CFS console"
        )
    if origin is Origin.VENDOR:
        return (
            f"{head}; this driver did not create it. Delete it in the CFS console once its data is no longer "
            f"needed, or run the controller with {VENDOR_FLAG} to let DeleteVolume delete such file systems"
        )
    if origin is Origin.UNTAGGED:
        return (
            f"{head}, so this driver did not create it. Delete it in the CFS console once its data is no "
            "longer needed, then delete the PV"
        )
    return f"{head}. Check the file system's tags in the CFS console; delete it there if it is no longer needed"
