"""Which PV events the sub-directory provisioner acts on: each released PV of ours exactly once (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from cfs_csi.provisioner.handlers import Work, should_reclaim

ME = "com.tencent.cloud.csi.tcfs.cfs-share"


def pv(name: str = "pvc-1", uid: str = "u1", phase: str = "Released", policy: str = "Delete",
       by: str = ME, deleting: bool = False) -> dict[str, Any]:  # fmt: skip
    metadata: dict[str, Any] = {"name": name, "uid": uid, "annotations": {"pv.kubernetes.io/provisioned-by": by}}
    if deleting:
        metadata["deletionTimestamp"] = "2025-03-01T12:00:00Z"
    return {"metadata": metadata, "spec": {"persistentVolumeReclaimPolicy": policy}, "status": {"phase": phase}}


@pytest.mark.parametrize(
    ("kind", "volume", "expected"),
    [
        ("ADDED", pv(), True),
        ("MODIFIED", pv(), True),
        ("MODIFIED", pv(phase="Failed"), True),
        ("MODIFIED", pv(phase="Bound"), False),
        ("MODIFIED", pv(policy="Retain"), False),
        ("MODIFIED", pv(by="someone.else"), False),
        ("MODIFIED", pv(deleting=True), False),  # its deletion is under way: our delete, or someone's
        ("DELETED", pv(), False),
    ],
)
def test_which_events_call_for_a_reclaim(kind: str, volume: dict[str, Any], expected: bool) -> None:
    assert should_reclaim(kind, volume, ME, Work()) is expected


def test_a_released_pv_is_handled_once_until_it_is_gone() -> None:
    work = Work()
    assert should_reclaim("MODIFIED", pv(), ME, work)
    assert work.start("pv/pvc-1")
    assert not should_reclaim("MODIFIED", pv(), ME, work)  # in flight
    work.handled["pvc-1"] = "u1"
    work.finish("pv/pvc-1")
    assert not should_reclaim("MODIFIED", pv(), ME, work)  # done: a late event or a resync finds nothing to do
    assert not should_reclaim("ADDED", pv(), ME, work)
    assert should_reclaim("MODIFIED", pv(uid="u2"), ME, work)  # same name, another PV: handled
    assert not should_reclaim("DELETED", pv(), ME, work)
    assert work.handled == {}
    assert should_reclaim("ADDED", pv(), ME, work)  # made again under its old name after it was gone


def test_work_admits_one_task_per_key() -> None:
    work = Work()
    assert work.start("claim/a") and work.start("claim/b")
    assert not work.start("claim/a")
    work.finish("claim/a")
    assert work.start("claim/a")
