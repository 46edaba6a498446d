"""Shared-mode directory quotas: the class's mode, the claim's size, the plan, and what the PV records (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from cfs_csi.cloud.errors import ErrorKind
from cfs_csi.provisioner.main import share_from_env
from cfs_csi.provisioner.quotas import (
    QUOTA_ATTRIBUTE,
    QuotaMode,
    claim_bytes,
    plan_quota,
    quantity_bytes,
    quota_mode,
    recorded_quota,
    set_may_have_happened,
)
from cfs_csi.provisioner.volumes import Share, persistent_volume
from cfs_csi.volume.errors import InvalidArgument

GIB = 1024**3

MODES = [
    ("absent: best-effort", {}, QuotaMode.BEST_EFFORT),
    ("no class parameters", None, QuotaMode.BEST_EFFORT),
    ("required", {"directoryQuota": "required"}, QuotaMode.REQUIRED),
    ("best-effort", {"directoryQuota": "best-effort"}, QuotaMode.BEST_EFFORT),
    ("off", {"directoryQuota": "off"}, QuotaMode.OFF),
    ("key and value case-insensitive, spaces", {"DIRECTORYQUOTA": " Required "}, QuotaMode.REQUIRED),
    ("the lowered keys the handlers pass", {"directoryquota": "off"}, QuotaMode.OFF),
]


@pytest.mark.parametrize(("case", "params", "mode"), MODES, ids=[c[0] for c in MODES])
def test_quota_mode(case: str, params: dict[str, str] | None, mode: QuotaMode) -> None:
    assert quota_mode(params) is mode


@pytest.mark.parametrize("value", ["", "true", "yes", "bestEffort", "best_effort", "strict", "x" * 300])
def test_a_bad_quota_mode_is_refused_naming_the_parameter_and_the_choices(value: str) -> None:
    with pytest.raises(InvalidArgument, match=r'directoryQuota .* is not one of "best-effort", "required", "off"'):
        quota_mode({"directoryQuota": value})


QUANTITIES = [
    ("20Gi", 20 * GIB), ("1Gi", GIB), ("10Gi", 10 * GIB), ("1536Mi", 1536 * 2**20), ("1.5Gi", 3 * GIB // 2),
    ("15G", 15 * 10**9), ("500M", 500 * 10**6), ("1k", 1000), ("1Ki", 1024), ("1e9", 10**9), ("2E", 2 * 10**18),
    ("1Ti", 2**40), ("1500m", 2), ("1", 1), ("0", 0), ("0.1", 1), (" 5Gi ", 5 * GIB), ("1e-3", 1), ("2.5e3", 2500),
]  # fmt: skip


@pytest.mark.parametrize(("text", "size"), QUANTITIES, ids=[q[0].strip() for q in QUANTITIES])
def test_quantity_bytes(text: str, size: int) -> None:
    assert quantity_bytes(text) == size


@pytest.mark.parametrize("text", ["", "Gi", "1 Gi", "1GB", "1gi", "-1Gi", "1..5Gi", "1e", "ten", "1Gi\n2"])
def test_a_quantity_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match=r"quantity|suffix"):
        quantity_bytes(text)


CLAIMS: list[tuple[str, dict[str, Any], int]] = [
    ("20Gi", {"spec": {"resources": {"requests": {"storage": "20Gi"}}}}, 20 * GIB),
    ("no resources", {"spec": {}}, 0),
    ("no spec", {}, 0),
    ("requests not a map", {"spec": {"resources": {"requests": "x"}}}, 0),
]


@pytest.mark.parametrize(("case", "claim", "size"), CLAIMS, ids=[c[0] for c in CLAIMS])
def test_claim_bytes(case: str, claim: dict[str, Any], size: int) -> None:
    assert claim_bytes(claim) == size


BE, REQ, OFF = QuotaMode.BEST_EFFORT, QuotaMode.REQUIRED, QuotaMode.OFF
# (case, mode, directory, size, capacity GiB, problem part, note part, refused)
PLANS = [
    ("20Gi exact", BE, "ns-a-pvc-1", 20 * GIB, 20, "", "", False),
    ("20Gi exact, required", REQ, "ns-a-pvc-1", 20 * GIB, 20, "", "", False),
    ("1Gi raised to 10 (best-effort)", BE, "d", GIB, 10, "start at 10 GiB", "", False),
    ("1Gi under required: refused", REQ, "d", GIB, 10, "start at 10 GiB", "", True),
    ("15G rounded up to 14 GiB: a note only", REQ, "d", 15 * 10**9, 14, "", "rounded up to 14 GiB", False),
    ("10Gi plus a byte: 11 GiB, a note", BE, "d", 10 * GIB + 1, 11, "", "rounded up to 11 GiB", False),
    ("9.5Gi: rounded up to 10 GiB, a note", REQ, "d", 19 * GIB // 2, 10, "", "rounded up to 10 GiB", False),
    ("9Gi: raised to 10", REQ, "d", 9 * GIB, 10, "start at 10 GiB", "", True),
    ("no size: none", BE, "d", 0, 0, "names no size", "", False),
    ("no size, required: refused", REQ, "d", 0, 0, "names no size", "", True),
    ("beyond the largest quota", REQ, "d", 10_000_001 * GIB, 0, "exceed the largest", "", True),
    ("a name the quota API cannot carry", BE, "a\u0085b", 20 * GIB, 0, "no directory quota can name it", "", False),
    ("the same, required", REQ, "a\u0085b", 20 * GIB, 0, "no directory quota can name it", "", True),
    ("off: nothing, whatever the size", OFF, "d", GIB, 0, "", "", False),
]


@pytest.mark.parametrize(
    ("case", "mode", "directory", "size", "gib", "problem", "note", "refused"), PLANS, ids=[p[0] for p in PLANS]
)
def test_plan_quota(
    case: str, mode: QuotaMode, directory: str, size: int, gib: int, problem: str, note: str, refused: bool
) -> None:
    plan = plan_quota(mode, directory, size)
    assert plan.capacity_gib == gib
    assert (problem in plan.problem) if problem else plan.problem == ""
    assert (note in plan.note) if note else plan.note == ""
    assert (plan.refusal is not None) == refused
    if refused:
        assert plan.refusal is not None and plan.refusal.startswith("directoryQuota is required")
    if gib:
        assert plan.path == f"/cfs/{directory}"


def test_plan_paths_follow_the_directory() -> None:
    assert plan_quota(BE, "team/a/pvc-1", 20 * GIB).path == "/cfs/team/a/pvc-1"


@pytest.mark.parametrize(
    ("kind", "maybe"),
    [(None, False), (ErrorKind.UNAVAILABLE, True), (ErrorKind.INTERNAL, True), (ErrorKind.PENDING, True),
     (ErrorKind.INVALID, False), (ErrorKind.REFUSED, False), (ErrorKind.DENIED, False),
     (ErrorKind.NOT_FOUND, False), (ErrorKind.EXHAUSTED, False), (ErrorKind.UNAUTHENTICATED, False)],
)  # fmt: skip
def test_which_failed_sets_may_have_set_a_quota(kind: ErrorKind | None, maybe: bool) -> None:
    assert set_may_have_happened(kind) is maybe


@pytest.mark.parametrize(
    ("attributes", "recorded"),
    [({QUOTA_ATTRIBUTE: "21474836480"}, 20 * GIB), ({}, None), ({QUOTA_ATTRIBUTE: ""}, None),
     ({QUOTA_ATTRIBUTE: "0"}, None), ({QUOTA_ATTRIBUTE: "-1"}, None), ({QUOTA_ATTRIBUTE: "1e9"}, None),
     ({QUOTA_ATTRIBUTE: "\uff19"}, None), ({QUOTA_ATTRIBUTE: str(2**63)}, None)],
)  # fmt: skip
def test_recorded_quota(attributes: dict[str, str], recorded: int | None) -> None:
    assert recorded_quota(attributes) == recorded


CLAIM = {
    "metadata": {"name": "c", "namespace": "ns", "uid": "651c987e-70c5-4542-93c1-2ba8184ad862"},
    "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
}
CLASS = {"metadata": {"name": "cfs-share"}, "reclaimPolicy": "Delete"}


@pytest.mark.parametrize(("quota", "attribute"), [(10 * GIB, "10737418240"), (None, None), (0, None)])
def test_the_pv_records_the_quota_and_keeps_the_claims_capacity(quota: int | None, attribute: str | None) -> None:
    pv = persistent_volume(CLAIM, CLASS, "p", Share("10.0.0.1", "abcd1234"), "ns-c-pvc-1", quota)
    assert pv["spec"]["csi"]["volumeAttributes"].get(QUOTA_ATTRIBUTE) == attribute
    assert pv["spec"]["capacity"] == {"storage": "1Gi"}
    assert set(pv["spec"]["csi"]["volumeAttributes"]) - {QUOTA_ATTRIBUTE} == {"host", "fsid", "path", "vers"}


@pytest.mark.parametrize(("env", "cloud_id"), [({"CFS_ID": " cfs-1a2b3c4d "}, "cfs-1a2b3c4d"), ({}, "")])
def test_the_cloud_id_comes_from_the_environment(env: dict[str, str], cloud_id: str) -> None:
    _, share, _ = share_from_env({"PROVISIONER_NAME": "p", "NFS_SERVER": "h", "NFS_PATH": "/abcd1234/", **env})
    assert (share.cloud_id, share.fsid) == (cloud_id, "abcd1234")


@pytest.mark.parametrize("key", ["directoryQuota", "DirectoryQuota"])
def test_the_operator_accepts_the_parameter_and_keeps_it_from_the_cloud(key: str) -> None:
    import copy
    from pathlib import Path

    import yaml

    from cfs_csi.operator.shared import parse_shared_class

    example = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "storageclass-cfs-share.yaml"
    body = copy.deepcopy(yaml.safe_load(example.read_text()))
    body["metadata"]["uid"] = "u-1"
    body["parameters"][key] = "required"
    shared = parse_shared_class(body)
    assert "required" not in str(shared.tcfs_spec())
