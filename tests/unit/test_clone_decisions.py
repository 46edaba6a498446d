"""Clones' pure decisions, table-driven: which storage type a clone may have, whose a temporary snapshot is, which
volume may be cloned, the temporary snapshot's cloud name, and the smallest clone."""

from __future__ import annotations

import re

import pytest

from cfs_csi.cloud.base import FileSystem, FileSystemState, Snapshot, SnapshotState
from cfs_csi.cloud.ownership import (
    TAG_CLUSTER,
    TAG_SNAPSHOT,
    TAG_TEMPORARY,
    Origin,
    Ownership,
    clone_refusal,
    judge_snapshot,
    snapshot_refusal,
)
from cfs_csi.cloud.tencent import naming
from cfs_csi.driver.sources import ContentSource
from cfs_csi.volume.capacity import GIB, CapacityError
from cfs_csi.volume.clone import storage_type_refusal
from cfs_csi.volume.params import VolumeParameters

CLUSTER = "cls-a"


@pytest.mark.parametrize(
    ("source", "clone", "refused_because"),
    [
        ("SD", "SD", None),
        ("SD", "HP", None),  # both General: a General snapshot restores into either
        ("HP", "SD", None),
        ("TB", "TP", None),
        ("SD", "TB", "restores a general snapshot only into a general file system"),
        ("TP", "HP", "restores a turbo snapshot only into a turbo file system"),
        ("THP", "SD", "'THP' has no CFS snapshots"),
        ("SD", "XX", "'XX' has no CFS snapshots"),
    ],
)
def test_storage_type_of_a_clone(source: str, clone: str, refused_because: str | None) -> None:
    reason = storage_type_refusal(source, clone)
    if refused_because is None:
        assert reason is None
    else:
        assert reason is not None and refused_because in reason


def temporary_name(key: str) -> str:
    return naming.snapshot_name(CLUSTER, key)


@pytest.mark.parametrize(
    ("cloud_name", "tags", "origin"),
    [
        (naming.temporary_snapshot_name(CLUSTER, "pvc-1"), {TAG_TEMPORARY: "pvc-1", TAG_CLUSTER: CLUSTER},
         Origin.TEMPORARY),
        # Another cluster's, or one whose tag and name tell two stories: not ours to delete.
        (naming.temporary_snapshot_name(CLUSTER, "pvc-1"), {TAG_TEMPORARY: "pvc-1", TAG_CLUSTER: "cls-b"},
         Origin.OTHER_CLUSTER),
        (naming.temporary_snapshot_name(CLUSTER, "pvc-2"), {TAG_TEMPORARY: "pvc-1", TAG_CLUSTER: CLUSTER},
         Origin.INCONSISTENT),
        (naming.temporary_snapshot_name(CLUSTER, "pvc-1"),
         {TAG_TEMPORARY: "pvc-1", TAG_SNAPSHOT: "pvc-1", TAG_CLUSTER: CLUSTER}, Origin.INCONSISTENT),
        # A CSI snapshot called like the clone is not the clone's temporary snapshot.
        (naming.snapshot_name(CLUSTER, "pvc-1"), {TAG_TEMPORARY: "pvc-1", TAG_CLUSTER: CLUSTER},
         Origin.INCONSISTENT),
        (naming.snapshot_name(CLUSTER, "pvc-1"), {TAG_SNAPSHOT: "pvc-1", TAG_CLUSTER: CLUSTER}, Origin.SNAPSHOT),
    ],
)  # fmt: skip
def test_whose_temporary_snapshot(cloud_name: str, tags: dict[str, str], origin: Origin) -> None:
    owner = judge_snapshot(cloud_name, tags, CLUSTER, temporary_name)
    assert owner.origin is origin, owner
    # Only a CSI snapshot is deleted or restored through the snapshot RPCs; a temporary one says whose it is.
    refusal = snapshot_refusal("snapcfs-1", owner, "deleted")
    assert (refusal is None) == (origin is Origin.SNAPSHOT)
    if origin is Origin.TEMPORARY:
        assert refusal is not None and "temporary snapshot of clone 'pvc-1'" in refusal


@pytest.mark.parametrize("name", ["pvc-1", "clone-pvc-1", "clone.pvc-1", "clone_pvc-1", "a" * 128])
def test_no_csi_snapshot_shares_a_temporary_snapshots_cloud_name(name: str) -> None:
    temporary = naming.temporary_snapshot_name(CLUSTER, "pvc-1")
    assert naming.snapshot_name(CLUSTER, name) != temporary
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", temporary)  # what CFS accepts as a SnapshotName
    assert naming.temporary_snapshot_name(CLUSTER, "pvc-1") == temporary  # the retry finds it by this name
    assert naming.temporary_snapshot_name(CLUSTER, "pvc-2") != temporary


@pytest.mark.parametrize(
    ("origin", "cloned"),
    [
        (Origin.VOLUME, True),
        (Origin.SHARED, False),
        (Origin.VENDOR, False),
        (Origin.UNTAGGED, False),
        (Origin.OTHER_CLUSTER, False),
        (Origin.INCONSISTENT, False),
    ],
)
def test_which_volume_may_be_cloned(origin: Origin, cloned: bool) -> None:
    refusal = clone_refusal("cfs-1", Ownership(origin, "because"))
    assert (refusal is None) == cloned
    if refusal is not None:
        assert "is not cloned" in refusal and "because" in refusal


def volume(capacity: int) -> FileSystem:
    params = VolumeParameters(vpc_id="vpc-1", subnet_id="subnet-1", zone="z")
    return FileSystem("cfs-src", "pvc-src", FileSystemState.AVAILABLE, capacity, params, "h", "f")


@pytest.mark.parametrize(
    ("source", "capacity", "fits"),
    [
        (ContentSource(volume=volume(20 * GIB)), 20 * GIB, True),
        (ContentSource(volume=volume(20 * GIB)), 21 * GIB, True),
        (ContentSource(volume=volume(20 * GIB)), 19 * GIB, False),
        (ContentSource(volume=volume(0)), GIB, True),  # capacity unknown (a bad tag): no lower bound
        (ContentSource(snapshot=Snapshot("snapcfs-1", "s", "cfs-1", SnapshotState.AVAILABLE, 10 * GIB, 0.0)),
         9 * GIB, False),
        (ContentSource(), GIB, True),
    ],
)  # fmt: skip
def test_smallest_clone_or_restore(source: ContentSource, capacity: int, fits: bool) -> None:
    if fits:
        source.check_capacity(capacity)
    else:
        with pytest.raises(CapacityError, match="needs at least that"):
            source.check_capacity(capacity)
