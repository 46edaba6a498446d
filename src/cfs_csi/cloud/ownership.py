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

Snapshots are proven the same way (:func:`judge_snapshot`): a ``cfs-csi/snapshot`` tag naming the CSI snapshot,
this cluster's tag, and exactly the cloud name this driver gives it. Only such a snapshot is deleted, and only
such a snapshot is restored: a snapshot id is as easy to hand us as a volume id, and restoring someone else's
snapshot would give the claim their data. For the same reason only a proven dedicated volume is snapshotted.
A clone is made through a temporary snapshot of its source (:func:`clone_refusal` says which sources may be
cloned: the same rule as snapshots). That snapshot carries this cluster's tag and a ``cfs-csi/temporary-for``
tag naming the new volume instead of a ``cfs-csi/snapshot`` tag, and the cloud name made from
:func:`temporary_key`: it is judged :attr:`Origin.TEMPORARY`, never listed, restored or deleted as a CSI
snapshot; only CreateVolume and DeleteVolume of the volume it names delete it.
Directory quotas are set only on a file system proven ours, a dedicated volume or a shared class's: a quota
on anyone else's file system could stop their writes.
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
TAG_SNAPSHOT = RESERVED_TAG_PREFIX + "snapshot"
TAG_SOURCE_FS = RESERVED_TAG_PREFIX + "source-fs"
TAG_SOURCE_SNAPSHOT = RESERVED_TAG_PREFIX + "source-snapshot"
#: On a temporary snapshot taken to clone a volume: the name of the new volume (the clone).
TAG_TEMPORARY = RESERVED_TAG_PREFIX + "temporary-for"

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
    SNAPSHOT = "snapshot"  # a snapshot this driver took for this cluster: the only kind deleted or restored
    TEMPORARY = "temporary"  # taken by this driver for this cluster to clone a volume: only the clone deletes it


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


def temporary_key(volume: str) -> str:
    """What stands for a snapshot's CSI name in the cloud name of the temporary snapshot cloning ``volume``.

    ``:`` is in no CSI name this driver accepts (:mod:`cfs_csi.volume.names`), so no CSI snapshot's cloud name is
    made from the same text.
    """
    return f"clone:{volume}"


def judge_snapshot(
    cloud_name: str, tags: Mapping[str, str], cluster_id: str, cloud_name_for: Callable[[str], str]
) -> Ownership:
    """Ownership of a snapshot in a cloud with tags. ``cloud_name_for(name)`` is our cloud name of a snapshot
    (of :func:`temporary_key` for a temporary one)."""
    if not any(is_reserved_tag(key) for key in tags):
        return Ownership(Origin.UNTAGGED, f"it has no {RESERVED_TAG_PREFIX} tags")
    cluster = tags.get(TAG_CLUSTER, "")
    if cluster != cluster_id:
        return Ownership(
            Origin.OTHER_CLUSTER,
            f"it is tagged for cluster {cut(cluster)!r}, and this controller's cluster id is {cluster_id!r}",
        )
    clone = tags.get(TAG_TEMPORARY, "")
    name = tags.get(TAG_SNAPSHOT, "")
    if clone and name:
        return Ownership(Origin.INCONSISTENT, f"it has both a {TAG_SNAPSHOT} and a {TAG_TEMPORARY} tag")
    if clone:
        expected = cloud_name_for(temporary_key(clone))
        if cloud_name != expected:
            return Ownership(
                Origin.INCONSISTENT,
                f"its tag names clone {cut(clone)!r}, whose temporary snapshot would be named {cut(expected)!r}, "
                f"not {cut(cloud_name)!r}",
            )
        return Ownership(Origin.TEMPORARY, f"the temporary snapshot of clone {cut(clone)!r}")
    if not name:
        return Ownership(Origin.INCONSISTENT, f"it has {RESERVED_TAG_PREFIX} tags but no {TAG_SNAPSHOT} tag")
    expected = cloud_name_for(name)
    if cloud_name != expected:
        return Ownership(
            Origin.INCONSISTENT,
            f"its tag names snapshot {cut(name)!r}, which would be named {cut(expected)!r}, not {cut(cloud_name)!r}",
        )
    return Ownership(Origin.SNAPSHOT)


def snapshot_refusal(snapshot_id: str, ownership: Ownership, action: str) -> str | None:
    """``None`` if ``action`` ("deleted", "restored") may be done to this snapshot, else why not."""
    if ownership.origin is Origin.SNAPSHOT:
        return None
    if ownership.origin is Origin.TEMPORARY:
        return (
            f"snapshot {cut(snapshot_id)} is not {action}: it is {ownership.detail}, not a CSI snapshot; "
            "CreateVolume of that clone deletes it once the clone is available, or DeleteVolume of the clone"
        )
    return (
        f"snapshot {cut(snapshot_id)} is not {action}: {ownership.detail}, so this driver did not take it for this "
        "cluster. Act on it in the CFS console if that is intended"
    )


def snapshot_source_refusal(fs_id: str, ownership: Ownership) -> str | None:
    """``None`` if this file system may be snapshotted (a dedicated volume of ours), else why not."""
    if ownership.origin is Origin.VOLUME:
        return None
    why = (
        "a shared class's file system holds every claim of the class"
        if ownership.origin is Origin.SHARED
        else ("this driver did not create it as a dedicated volume of this cluster")
    )
    return f"file system {cut(fs_id)} is not snapshotted: {ownership.detail}; {why}"


def clone_refusal(fs_id: str, ownership: Ownership) -> str | None:
    """``None`` if this file system may be cloned (a dedicated volume of ours: the rule of snapshots), else why not.

    A clone is a snapshot handed to a new claim at once, so whoever may name a volume id would otherwise get a
    copy of any file system of the account.
    """
    refusal = snapshot_source_refusal(fs_id, ownership)
    return None if refusal is None else refusal.replace("is not snapshotted", "is not cloned", 1)


def quota_refusal(fs_id: str, ownership: Ownership) -> str | None:
    """``None`` if directory quotas may be set or removed on this file system, else why not."""
    if ownership.origin in (Origin.VOLUME, Origin.SHARED):
        return None
    return (
        f"no directory quota is changed on file system {cut(fs_id)}: {ownership.detail}, so it is not a volume or "
        "shared class of this driver"
    )
