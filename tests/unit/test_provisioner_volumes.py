"""The external-provisioning protocol's decisions and the PV a claim gets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cfs_csi.provisioner.volumes import Share, persistent_volume, released_ours, unsupported, wants_us

NAME = "com.tencent.cloud.csi.tcfs.cfs-share"
CLAIM: dict[str, Any] = {
    "metadata": {
        "name": "cfs-share-1", "namespace": "default", "uid": "651c987e-70c5-4542-93c1-2ba8184ad862",
        "resourceVersion": "42", "annotations": {"volume.kubernetes.io/storage-provisioner": NAME},
    },
    "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}},
             "storageClassName": "cfs-share", "volumeMode": "Filesystem"},
    "status": {"phase": "Pending"},
}  # fmt: skip
CLASS: dict[str, Any] = {
    "metadata": {"name": "cfs-share"}, "provisioner": NAME, "reclaimPolicy": "Retain",
    "mountOptions": ["hard", "timeo=600"],
}  # fmt: skip


def claim_with(**changes: Any) -> dict[str, Any]:
    claim = copy.deepcopy(CLAIM)
    for path, value in changes.items():
        section, _, key = path.partition("__")
        claim[section][key] = value
    return claim


WANTS = [
    ("the seed claim", CLAIM, CLASS, None),
    ("bound already", claim_with(spec__volumeName="pv-x"), CLASS, "already bound"),
    ("phase bound", claim_with(status__phase="Bound"), CLASS, "already bound"),
    ("other class", CLAIM, {**CLASS, "provisioner": "other"}, "not our class"),
    ("class unknown", CLAIM, None, "not our class"),
    ("not annotated yet", claim_with(metadata__annotations={}), CLASS, "not annotated for us yet"),
    ("beta annotation", claim_with(metadata__annotations={"volume.beta.kubernetes.io/storage-provisioner": NAME}),
     CLASS, None),
]  # fmt: skip


@pytest.mark.parametrize(("case", "claim", "storage_class", "reason"), WANTS, ids=[c[0] for c in WANTS])
def test_wants_us(case: str, claim: dict[str, Any], storage_class: Any, reason: str | None) -> None:
    assert wants_us(claim, storage_class, NAME) == reason


@pytest.mark.parametrize(
    ("change", "needle"),
    [({"spec__volumeMode": "Block"}, "block"), ({"spec__selector": {"matchLabels": {"a": "b"}}}, "selector"),
     ({"spec__dataSource": {"kind": "VolumeSnapshot"}}, "data sources")],
)  # fmt: skip
def test_unsupported_claims(change: dict[str, Any], needle: str) -> None:
    assert needle in (unsupported(claim_with(**change)) or "")
    assert unsupported(CLAIM) is None


def test_the_pv_of_the_seed_claim() -> None:
    pv = persistent_volume(CLAIM, CLASS, NAME, Share("10.0.1.128", "m002rxiu"), "default-cfs-share-1-pvc-651c")
    assert pv["metadata"]["name"] == "pvc-651c987e-70c5-4542-93c1-2ba8184ad862"
    assert pv["metadata"]["annotations"] == {"pv.kubernetes.io/provisioned-by": NAME}
    spec = pv["spec"]
    assert spec["csi"]["driver"] == "com.tencent.cloud.csi.cfs"
    assert spec["csi"]["volumeAttributes"] == {
        "host": "10.0.1.128", "fsid": "m002rxiu", "path": "default-cfs-share-1-pvc-651c", "vers": "3"
    }  # fmt: skip
    assert spec["csi"]["volumeHandle"] == "m002rxiu:default-cfs-share-1-pvc-651c"
    assert (spec["persistentVolumeReclaimPolicy"], spec["capacity"], spec["accessModes"]) == (
        "Retain",
        {"storage": "10Gi"},
        ["ReadWriteMany"],
    )
    assert spec["mountOptions"] == ["hard", "timeo=600"]
    assert spec["claimRef"]["uid"] == CLAIM["metadata"]["uid"] and spec["storageClassName"] == "cfs-share"


RELEASED = [
    ("ours, released, delete", NAME, "Released", "Delete", True),
    ("ours, failed, delete", NAME, "Failed", "Delete", True),
    ("ours, bound", NAME, "Bound", "Delete", False),
    ("ours, retain policy", NAME, "Released", "Retain", False),
    ("someone else's", "other", "Released", "Delete", False),
]


@pytest.mark.parametrize(("case", "by", "phase", "policy", "expected"), RELEASED, ids=[c[0] for c in RELEASED])
def test_released_ours(case: str, by: str, phase: str, policy: str, expected: bool) -> None:
    pv = {"metadata": {"annotations": {"pv.kubernetes.io/provisioned-by": by}},
          "spec": {"persistentVolumeReclaimPolicy": policy}, "status": {"phase": phase}}  # fmt: skip
    assert released_ours(pv, NAME) is expected
