"""Whose is a snapshot, and who may be snapshotted or given a quota (pure, table-driven); snapshot cloud names."""

from __future__ import annotations

import re

import pytest

from cfs_csi.cloud.ownership import (
    TAG_CLUSTER,
    TAG_SNAPSHOT,
    Origin,
    Ownership,
    judge_snapshot,
    quota_refusal,
    snapshot_refusal,
    snapshot_source_refusal,
)
from cfs_csi.cloud.tencent import naming

CLUSTER = "cls-a"


def name_for(snapshot: str) -> str:
    return naming.snapshot_name(CLUSTER, snapshot)


@pytest.mark.parametrize(
    ("cloud_name", "tags", "origin"),
    [
        (name_for("snap-1"), {TAG_SNAPSHOT: "snap-1", TAG_CLUSTER: CLUSTER}, Origin.SNAPSHOT),
        (name_for("snap-1"), {}, Origin.UNTAGGED),
        (name_for("snap-1"), {"team": "x"}, Origin.UNTAGGED),
        (name_for("snap-1"), {TAG_SNAPSHOT: "snap-1", TAG_CLUSTER: "cls-b"}, Origin.OTHER_CLUSTER),
        (name_for("snap-1"), {TAG_SNAPSHOT: "snap-1"}, Origin.OTHER_CLUSTER),
        (name_for("snap-1"), {TAG_CLUSTER: CLUSTER}, Origin.INCONSISTENT),
        ("renamed-in-console", {TAG_SNAPSHOT: "snap-1", TAG_CLUSTER: CLUSTER}, Origin.INCONSISTENT),
        (name_for("snap-2"), {TAG_SNAPSHOT: "snap-1", TAG_CLUSTER: CLUSTER}, Origin.INCONSISTENT),
    ],
)
def test_judge_snapshot(cloud_name: str, tags: dict[str, str], origin: Origin) -> None:
    owner = judge_snapshot(cloud_name, tags, CLUSTER, name_for)
    assert owner.origin is origin
    refusal = snapshot_refusal("snapcfs-1", owner, "deleted")
    assert (refusal is None) == (origin is Origin.SNAPSHOT)
    if refusal:
        assert "not deleted" in refusal and owner.detail in refusal


@pytest.mark.parametrize(
    ("origin", "snapshot_ok", "quota_ok"),
    [
        (Origin.VOLUME, True, True),
        (Origin.SHARED, False, True),
        (Origin.VENDOR, False, False),
        (Origin.UNTAGGED, False, False),
        (Origin.OTHER_CLUSTER, False, False),
        (Origin.INCONSISTENT, False, False),
    ],
)
def test_who_may_be_snapshotted_or_given_a_quota(origin: Origin, snapshot_ok: bool, quota_ok: bool) -> None:
    owner = Ownership(origin, "because")
    assert (snapshot_source_refusal("cfs-1", owner) is None) == snapshot_ok
    assert (quota_refusal("cfs-1", owner) is None) == quota_ok


@pytest.mark.parametrize(
    ("cluster", "name", "expected"),
    [
        ("cls-a", "snapshot-1", "cls-a_snapshot-1"),
        ("", "snapshot-1", "snapshot-1"),
        ("cls-a", "sanity.snap+1", None),  # '.' and '+' are not SnapshotName characters: hashed
        ("cls-a", "s" * 100, None),  # too long: hashed
    ],
)
def test_snapshot_name(cluster: str, name: str, expected: str | None) -> None:
    cloud = naming.snapshot_name(cluster, name)
    assert len(cloud) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", cloud)
    assert naming.snapshot_name(cluster, name) == cloud  # deterministic
    if expected is not None:
        assert cloud == expected
    else:
        assert cloud != naming.snapshot_name(cluster, name + "x")


def test_similar_names_do_not_collide() -> None:
    assert naming.snapshot_name("c", "a.b") != naming.snapshot_name("c", "a+b")
    assert naming.snapshot_name("c", "a.b") != naming.snapshot_name("c", "a-b")
