"""Whose file system is it: the one decision before any deletion (issue 11, finding 7), table-driven."""

from __future__ import annotations

import pytest

from cfs_csi.cloud.ownership import (
    TAG_CAPACITY,
    TAG_CLUSTER,
    TAG_VOLUME,
    Origin,
    Ownership,
    deletion_refusal,
    judge_named,
    judge_tagged,
)
from cfs_csi.cloud.tencent.naming import fs_name

CLUSTER = "cls-test"
PV = "pvc-a11e120e-130c-4aff-9901-17b7b91b3f1d"
OURS = {TAG_VOLUME: PV, TAG_CLUSTER: CLUSTER, TAG_CAPACITY: "10737418240"}
LONG = "pvc-" + "x" * 124

TAGGED = [
    ("our dedicated volume", f"{CLUSTER}_{PV}", OURS, CLUSTER, Origin.VOLUME),
    ("our long volume, shortened name", fs_name(CLUSTER, LONG), {TAG_VOLUME: LONG, TAG_CLUSTER: CLUSTER}, CLUSTER,
     Origin.VOLUME),
    ("no cluster id: no cluster tag", PV, {TAG_VOLUME: PV}, "", Origin.VOLUME),
    ("shared class, as the operator creates it", f"{CLUSTER}_sharedCFS-gold",
     {TAG_VOLUME: "sharedCFS-gold", TAG_CLUSTER: CLUSTER}, CLUSTER, Origin.SHARED),
    ("shared class of the vendor's operator, untagged", f"{CLUSTER}_sharedCFS-gold", {}, CLUSTER, Origin.SHARED),
    ("shared by tag only", f"{CLUSTER}_{PV}", {**OURS, TAG_VOLUME: "SHAREDcfs-x"}, CLUSTER, Origin.SHARED),
    ("vendor driver's PV file system", f"{CLUSTER}_{PV}", {}, CLUSTER, Origin.VENDOR),
    ("vendor name without a cluster id", PV, {"team": "a"}, "", Origin.VENDOR),
    ("vendor-like name of another cluster", f"cls-other_{PV}", {}, CLUSTER, Origin.UNTAGGED),
    ("vendor-like name, but upper-case uid", f"{CLUSTER}_{PV.upper()}", {}, CLUSTER, Origin.UNTAGGED),
    ("made in the console", "my-data", {"team": "storage"}, CLUSTER, Origin.UNTAGGED),
    ("another cluster's volume", f"cls-other_{PV}", {**OURS, TAG_CLUSTER: "cls-other"}, CLUSTER,
     Origin.OTHER_CLUSTER),
    ("a cluster's volume seen by a controller without cluster id", f"{CLUSTER}_{PV}", OURS, "", Origin.OTHER_CLUSTER),
    ("tagged without cluster, controller has one", f"{CLUSTER}_{PV}", {TAG_VOLUME: PV}, CLUSTER,
     Origin.OTHER_CLUSTER),
    ("tag names another volume than the name", f"{CLUSTER}_pvc-other", OURS, CLUSTER, Origin.INCONSISTENT),
    ("our tags but no volume tag", f"{CLUSTER}_{PV}", {TAG_CLUSTER: CLUSTER}, CLUSTER, Origin.INCONSISTENT),
    ("reserved tag in another case", f"{CLUSTER}_x", {"CFS-CSI/whatever": "1", TAG_CLUSTER: CLUSTER}, CLUSTER,
     Origin.INCONSISTENT),
]  # fmt: skip


@pytest.mark.parametrize(("case", "name", "tags", "cluster", "origin"), TAGGED, ids=[c[0] for c in TAGGED])
def test_judge_tagged(case: str, name: str, tags: dict[str, str], cluster: str, origin: Origin) -> None:
    assert judge_tagged(name, tags, cluster, lambda volume: fs_name(cluster, volume)).origin is origin


@pytest.mark.parametrize(
    ("name", "origin"),
    [("pvc-1", Origin.VOLUME), ("sharedCFS-gold", Origin.SHARED), ("sharedcfs-GOLD", Origin.SHARED),
     ("x-sharedCFS-gold", Origin.VOLUME)],
)  # fmt: skip
def test_judge_named(name: str, origin: Origin) -> None:
    assert judge_named(name).origin is origin


REFUSALS = [
    (Origin.VOLUME, False, None),
    (Origin.VENDOR, True, None),
    (Origin.VENDOR, False, "--delete-vendor-volumes"),
    (Origin.SHARED, True, "shared StorageClass"),
    (Origin.UNTAGGED, True, "CFS console"),
    (Origin.OTHER_CLUSTER, True, "CFS console"),
    (Origin.INCONSISTENT, True, "tags"),
]


@pytest.mark.parametrize(("origin", "delete_vendor", "needle"), REFUSALS)
def test_deletion_refusal(origin: Origin, delete_vendor: bool, needle: str | None) -> None:
    refusal = deletion_refusal("cfs-abc", Ownership(origin, "why"), delete_vendor)
    if needle is None:
        assert refusal is None
    else:
        assert refusal is not None and needle in refusal and "cfs-abc" in refusal and "why" in refusal
