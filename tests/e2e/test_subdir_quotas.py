"""Shared mode's directory quotas on the real control plane: the provisioner (with the environment the operator's
Deployment gives it and the operator's cloud flags) sets a CFS directory quota on each claim's directory in the
emulator, records it in the PV, and removes it with the directory; ``directoryQuota: required`` leaves nothing
behind when a quota cannot be had; hostile paths reach no other claim's quota."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from cfs_csi.devcluster.cluster import ControlPlane
from tests.conftest import SECRET_ID, SECRET_KEY, Emulator
from tests.e2e.conftest import Kube, Operator, pv_gone, wait_for
from tests.e2e.test_operator import claim, share_class
from tests.e2e.test_subdir import Share, _adopt, _bound, _hostile_pv

GIB = 1024**3
OWNERS = ".cfs-csi-provisioner/owners"


def quotas(emulator: Emulator, fs_id: str) -> dict[str, int]:
    """``{DirectoryPath: CapacityHardLimit GiB}`` of every directory quota, as DescribeUserQuota answers."""
    from tencentcloud.common.common_client import CommonClient
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    profile = ClientProfile(httpProfile=HttpProfile(endpoint=emulator.url.removeprefix("http://"), protocol="http"))
    client = CommonClient("cfs", "2019-07-19", Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)
    answer = client.call_json("DescribeUserQuota", {"FileSystemId": fs_id, "Limit": 100})["Response"]
    return {q["DirectoryPath"]: int(q["CapacityHardLimit"]) for q in answer["UserQuotaInfo"]}


def ours(found: dict[str, int], namespace: str) -> dict[str, int]:
    """The quotas of the test's own claims (not the trigger claim's that made the operator prepare the class)."""
    return {path: gib for path, gib in found.items() if path.startswith(f"/cfs/{namespace}-")}


def sized_claim(name: str, storage_class: str, namespace: str, size: str, **annotations: str) -> dict[str, Any]:
    body = claim(name, storage_class, namespace)
    body["spec"]["resources"]["requests"]["storage"] = size
    if annotations:
        body["metadata"]["annotations"] = annotations
    return body


def reasons(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    """The latest message of each event reason on the claim."""
    return {e.reason: e.message for e in kube.events_for(namespace, name)}


def test_quotas_follow_claims_and_deletion_removes_them(
    kube: Kube, operator: Operator, control_plane: ControlPlane
) -> None:
    share = Share(kube, operator, operator.root, "cfs-quota", reclaim="Delete", onDelete="delete")
    fs_id = share.env["CFS_ID"]
    share.start_provisioner(control_plane.kubeconfig)
    namespace = kube.namespace("quota")
    try:
        kube.create(sized_claim("big", "cfs-quota", namespace, "20Gi"))
        kube.create(sized_claim("small", "cfs-quota", namespace, "1Gi"))
        big = wait_for("big bound", lambda: _bound(kube, namespace, "big"), timeout=90)
        small = wait_for("small bound", lambda: _bound(kube, namespace, "small"), timeout=90)
        big_dir = f"{namespace}-big-{big.spec.volume_name}"
        small_dir = f"{namespace}-small-{small.spec.volume_name}"
        found = quotas(operator.emulator, fs_id)
        assert found[f"/cfs/{big_dir}"] == 20 and found[f"/cfs/{small_dir}"] == 10

        big_pv = kube.core.read_persistent_volume(big.spec.volume_name)
        small_pv = kube.core.read_persistent_volume(small.spec.volume_name)
        assert big_pv.spec.csi.volume_attributes["quotaBytes"] == str(20 * GIB)
        assert small_pv.spec.csi.volume_attributes["quotaBytes"] == str(10 * GIB)
        # The PV's capacity stays the claim's request, whatever the quota.
        assert (big_pv.spec.capacity["storage"], small_pv.spec.capacity["storage"]) == ("20Gi", "1Gi")
        # Best-effort (the default): the 1Gi claim is told that its directory may hold 10 GiB.
        small_events = wait_for("QuotaNotExact on small", lambda: _with(reasons(kube, namespace, "small"),
                                                                        "QuotaNotExact"), timeout=30)  # fmt: skip
        assert "10 GiB" in small_events["QuotaNotExact"]
        assert "QuotaNotExact" not in reasons(kube, namespace, "big")

        kube.core.delete_namespaced_persistent_volume_claim("big", namespace)
        wait_for("big's PV deleted", lambda: pv_gone(kube, big.spec.volume_name), timeout=90)
        after = quotas(operator.emulator, fs_id)
        assert f"/cfs/{big_dir}" not in after and after[f"/cfs/{small_dir}"] == 10
        assert big_dir not in share.listing() and small_dir in share.listing()
    finally:
        share.stop()


def _with(found: dict[str, str], reason: str) -> dict[str, str] | None:
    return found if reason in found else None


@pytest.mark.parametrize(("params", "kept"), [({"archiveOnDelete": "true"}, False), ({"onDelete": "retain"}, True)],
                         ids=["archive", "retain"])  # fmt: skip
def test_archive_removes_the_quota_and_keeps_the_data_retain_keeps_both(
    kube: Kube, operator: Operator, control_plane: ControlPlane, params: dict[str, str], kept: bool
) -> None:
    name = "cfs-quota-" + ("retain" if kept else "archive")
    share = Share(kube, operator, operator.root, name, reclaim="Delete", **params)
    fs_id = share.env["CFS_ID"]
    share.start_provisioner(control_plane.kubeconfig)
    namespace = kube.namespace(name)
    try:
        kube.create(sized_claim("data", name, namespace, "20Gi"))
        pvc = wait_for("data bound", lambda: _bound(kube, namespace, "data"), timeout=90)
        directory = f"{namespace}-data-{pvc.spec.volume_name}"
        assert ours(quotas(operator.emulator, fs_id), namespace) == {f"/cfs/{directory}": 20}
        (share.mount / directory / "data.txt").write_text("precious")
        kube.core.delete_namespaced_persistent_volume_claim("data", namespace)
        wait_for("the PV deleted", lambda: pv_gone(kube, pvc.spec.volume_name), timeout=90)
        if kept:
            assert (share.mount / directory / "data.txt").read_text() == "precious"
            assert ours(quotas(operator.emulator, fs_id), namespace) == {f"/cfs/{directory}": 20}
        else:
            assert (share.mount / f"archived-{directory}" / "data.txt").read_text() == "precious"
            assert ours(quotas(operator.emulator, fs_id), namespace) == {}
    finally:
        share.stop()


def test_required_quotas_leave_nothing_behind_when_they_cannot_be_set(
    kube: Kube, operator: Operator, control_plane: ControlPlane
) -> None:
    share = Share(kube, operator, operator.root, "cfs-quota-req", reclaim="Delete", onDelete="delete",
                  directoryQuota="required")  # fmt: skip
    fs_id = share.env["CFS_ID"]
    # The default resync (60 s): no retry runs while the test looks for leftovers (a retry makes the directory
    # again for a moment before it is refused again).
    first = share.start_provisioner(control_plane.kubeconfig, "first")
    namespace = kube.namespace("quota-req")
    try:
        wait_for("the trigger claim bound", lambda: _bound(kube, "default", "cfs-quota-req-trigger"), timeout=90)
        before, quotas_before = share.listing(), quotas(operator.emulator, fs_id)
        # Below the 10 GiB minimum: refused before anything is made.
        kube.create(sized_claim("small", "cfs-quota-req", namespace, "1Gi"))
        failed = wait_for("small refused", lambda: _with(reasons(kube, namespace, "small"), "ProvisioningFailed"),
                          timeout=60)  # fmt: skip
        assert "directoryQuota is required" in failed["ProvisioningFailed"]
        assert "10 GiB" in failed["ProvisioningFailed"]

        # The API refuses the quota (a code not retried): the directory made for it goes again.
        operator.emulator.set_faults(create_delay=0.5, fail_action="SetUserQuota", fail_code="UnauthorizedOperation")
        kube.create(sized_claim("refused", "cfs-quota-req", namespace, "20Gi"))
        refused = wait_for("refused refused", lambda: _with(reasons(kube, namespace, "refused"),
                                                            "ProvisioningFailed"), timeout=60)  # fmt: skip
        assert "could not be set" in refused["ProvisioningFailed"]
        # The cloud answers nothing useful (an error it retries, then gives up on): maybe set, so removed.
        operator.emulator.set_faults(create_delay=0.5, fail_action="SetUserQuota", fail_code="InternalError")
        kube.create(sized_claim("down", "cfs-quota-req", namespace, "20Gi"))
        wait_for("down refused", lambda: _with(reasons(kube, namespace, "down"), "ProvisioningFailed"), timeout=90)

        assert {c.metadata.name: c.status.phase for c in kube.pvcs(namespace)} == {
            "small": "Pending", "refused": "Pending", "down": "Pending"}  # fmt: skip
        assert not [pv for pv in kube.core.list_persistent_volume().items
                    if (pv.spec.claim_ref and pv.spec.claim_ref.namespace == namespace)]  # fmt: skip
        leftover = [p for p in share.listing() if p not in before and p not in (".cfs-csi-provisioner", OWNERS)]
        assert leftover == []
        assert quotas(operator.emulator, fs_id) == quotas_before

        # Once the cloud takes quotas again, a retry (here: the next provisioner's first list) provisions the
        # 20Gi claims with their quota.
        operator.emulator.set_faults(create_delay=0.5)
        first.stop()
        share.start_provisioner(control_plane.kubeconfig, "second")
        for name in ("refused", "down"):
            wait_for(f"{name} bound", lambda name=name: _bound(kube, namespace, name), timeout=60)  # type: ignore[misc]
        assert sorted(ours(quotas(operator.emulator, fs_id), namespace).values()) == [20, 20]
        assert kube.core.read_namespaced_persistent_volume_claim("small", namespace).status.phase == "Pending"
    finally:
        operator.emulator.set_faults(create_delay=0.5)
        share.stop()


def test_best_effort_provisions_without_a_quota_the_cloud_refuses(
    kube: Kube, operator: Operator, control_plane: ControlPlane
) -> None:
    share = Share(kube, operator, operator.root, "cfs-quota-be", reclaim="Delete", onDelete="delete")
    fs_id = share.env["CFS_ID"]
    share.start_provisioner(control_plane.kubeconfig)
    namespace = kube.namespace("quota-be")
    try:
        operator.emulator.set_faults(create_delay=0.5, fail_action="SetUserQuota", fail_code="UnauthorizedOperation")
        kube.create(sized_claim("anyway", "cfs-quota-be", namespace, "20Gi"))
        pvc = wait_for("anyway bound", lambda: _bound(kube, namespace, "anyway"), timeout=90)
        pv = kube.core.read_persistent_volume(pvc.spec.volume_name)
        assert "quotaBytes" not in pv.spec.csi.volume_attributes
        events = wait_for("QuotaNotSet", lambda: _with(reasons(kube, namespace, "anyway"), "QuotaNotSet"), timeout=30)
        assert "could not be set" in events["QuotaNotSet"]
        assert ours(quotas(operator.emulator, fs_id), namespace) == {}
    finally:
        operator.emulator.set_faults(create_delay=0.5)
        share.stop()


def test_hostile_paths_reach_no_other_claims_quota(kube: Kube, operator: Operator, control_plane: ControlPlane) -> None:
    body = share_class("cfs-quota-evil", pathPattern="${.PVC.annotations.dir}")
    body["reclaimPolicy"] = "Delete"
    kube.create(body)
    kube.create(claim("cfs-quota-evil-trigger", "cfs-quota-evil"))
    share = _adopt(kube, operator, "cfs-quota-evil")
    fs_id = share.env["CFS_ID"]
    share.start_provisioner(control_plane.kubeconfig)
    namespace = kube.namespace("quota-evil")
    hostile = ["team-a", "team-a/sub", "../team-a", "/cfs/team-a", "team-a/..", ".cfs-csi-provisioner/team-a"]
    try:
        kube.create(sized_claim("victim", "cfs-quota-evil", namespace, "20Gi", dir="team-a"))
        victim = wait_for("victim bound", lambda: _bound(kube, namespace, "victim"), timeout=90)
        (share.mount / "team-a" / "data.txt").write_text("the victim's")
        quotas_before, before = quotas(operator.emulator, fs_id), share.listing()
        assert quotas_before == {"/cfs/team-a": 20}
        for index, value in enumerate(hostile):
            kube.create(sized_claim(f"evil-{index}", "cfs-quota-evil", namespace, "10000Gi", dir=value))

        def all_refused() -> bool:
            return all("ProvisioningFailed" in reasons(kube, namespace, f"evil-{i}") for i in range(len(hostile)))

        wait_for("ProvisioningFailed for each hostile claim", all_refused, timeout=90)
        # A released PV that names the victim's directory and claims a quota there: not ours to remove.
        pv = _hostile_pv("hostile-quota", share, "team-a")
        pv["spec"]["csi"]["volumeAttributes"]["quotaBytes"] = str(20 * GIB)
        kube.core.create_persistent_volume(pv)
        wait_for("the hostile PV refused", lambda: _with(reasons(kube, "default", "hostile-quota"),
                                                         "VolumeFailedDelete"), timeout=90)  # fmt: skip

        assert all(c.status.phase == "Pending" for c in kube.pvcs(namespace) if c.metadata.name != "victim")
        assert quotas(operator.emulator, fs_id) == quotas_before
        assert share.listing() == before
        assert (share.mount / "team-a" / "data.txt").read_text() == "the victim's"
        assert kube.core.read_persistent_volume(victim.spec.volume_name).spec.csi.volume_attributes["quotaBytes"] == (
            str(20 * GIB)
        )
    finally:
        with contextlib.suppress(ApiException):
            kube.core.delete_persistent_volume("hostile-quota")
        share.stop()
