"""The operator's informer events, in the orders the API server may deliver them, and the claim decision.

No API calls are made: the work each event would start (a Tcfs creation, a reconcile, a finalizer removal) and
the Events it would post are recorded instead.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest

from cfs_csi.operator.context import OperatorContext
from cfs_csi.operator.desired import ProvisionerTemplate
from cfs_csi.operator.handlers import KOPF_FINALIZER, Operator, fingerprint
from cfs_csi.operator.storageclass import served_provisioners, tcfs_for_claim
from cfs_csi.volume.errors import InvalidArgument

NAMESPACE = "kube-system"
CLOUD = {"vpcid": "vpc-oilua6pt", "subnetid": "subnet-rtwb42lu", "pgroupid": "pgroup-lrquouvl", "storagetype": "SD",
         "zone": "ap-guangzhou-3"}  # fmt: skip


def storage_class(name: str = "share", provisioner: str = "", **parameters: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "reclaimPolicy": "Retain",
            "provisioner": provisioner or f"com.tencent.cloud.csi.tcfs.{name}",
            "parameters": {"subdir-share": "true", **CLOUD, **parameters}}  # fmt: skip


def claim(uid: str, class_name: str = "share", phase: str = "Pending") -> dict[str, Any]:
    return {"metadata": {"name": f"c-{uid}", "namespace": "ns", "uid": uid},
            "spec": {"storageClassName": class_name}, "status": {"phase": phase}}  # fmt: skip


def tcfs(name: str = "share", generation: int = 1, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "tcfsoperator.k8s.io/v1alpha1", "kind": "Tcfs",
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"tcfs-{name}", "generation": generation,
                         "resourceVersion": "7", **metadata},
            "spec": {"provisionername": f"com.tencent.cloud.csi.tcfs.{name}"}}  # fmt: skip


class Recording(OperatorContext):
    def __init__(self) -> None:
        # Never used: every call that would reach the API server or the cloud is recorded instead.
        super().__init__(NAMESPACE, storage=None, template=ProvisionerTemplate(image="x"), client=None,  # type: ignore[arg-type]
                         events=object())  # type: ignore[arg-type]  # fmt: skip
        self.posted: list[tuple[str, str, str, bool]] = []

    def post(self, involved: dict[str, Any], kind: str, reason: str, message: str, warning: bool = False) -> None:
        self.posted.append((involved["metadata"]["name"], kind, reason, warning))


class RecordingOperator(Operator):
    def __init__(self) -> None:
        self.recording = Recording()
        super().__init__(self.recording)
        self.spawned: list[str] = []
        self.requested: list[str] = []

    def _spawn(self, key: str, work: Any) -> None:
        self.spawned.append(key)

    def _request(self, name: str) -> None:
        self.requested.append(name)


CLAIM_CASES = [
    ("a shared class", claim("1"), storage_class(), set(), "share"),
    ("a bound claim", claim("1", phase="Bound"), storage_class(), set(), None),
    ("another driver's class", claim("1"), {"metadata": {"name": "share"}, "provisioner": "example.com/nfs"}, set(),
     None),
    ("a Tcfs made by hand serves the provisioner", claim("1"),
     storage_class(provisioner="com.tencent.cloud.csi.tcfs.hand", **{"subdir-share": "false"}),
     {"com.tencent.cloud.csi.tcfs.hand"}, None),
]  # fmt: skip


@pytest.mark.parametrize(("case", "pvc", "klass", "served", "expected"), CLAIM_CASES, ids=[c[0] for c in CLAIM_CASES])
def test_the_tcfs_a_claim_asks_for(
    case: str, pvc: dict[str, Any], klass: dict[str, Any], served: set[str], expected: str | None
) -> None:
    wanted = tcfs_for_claim(pvc, klass, served, NAMESPACE)
    if expected is None:
        assert wanted is None
        return
    assert wanted is not None
    assert (wanted["metadata"]["name"], wanted["metadata"]["namespace"]) == (expected, NAMESPACE)
    [owner] = wanted["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("StorageClass", klass["metadata"]["uid"])
    assert wanted["spec"]["provisionername"] == f"com.tencent.cloud.csi.tcfs.{expected}"


BAD_CLAIM_CASES = [
    ("an invalid parameter", storage_class(storagetype="XL"), "storagetype"),
    ("the wrong provisioner", storage_class(provisioner="com.tencent.cloud.csi.tcfs.other"), "shared mode needs"),
    ("subdir-share yes", storage_class(**{"subdir-share": "yes"}), "is not \"true\" or \"false\""),
    ("no Tcfs serves it", storage_class(**{"subdir-share": "false"}), "no Tcfs names that provisioner"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "klass", "needle"), BAD_CLAIM_CASES, ids=[c[0] for c in BAD_CLAIM_CASES])
def test_a_bad_shared_class_is_reported(case: str, klass: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        tcfs_for_claim(claim("1"), klass, set(), NAMESPACE)


def test_served_provisioners_skip_tcfs_without_one() -> None:
    named, unnamed = tcfs("a"), tcfs("b")
    unnamed["spec"] = {}
    assert served_provisioners([named, unnamed]) == {"com.tencent.cloud.csi.tcfs.a"}


def test_a_claim_seen_before_its_class_gets_its_tcfs_when_the_class_arrives() -> None:
    op = RecordingOperator()
    op._claim_event("ADDED", claim("1"))
    assert op.spawned == []
    op._class_event("ADDED", storage_class())
    assert op.spawned == ["class/share"]
    assert op._waiting == {}


def test_a_claim_whose_tcfs_exists_costs_nothing() -> None:
    op = RecordingOperator()
    op._class_event("ADDED", storage_class())
    op._tcfs_event("ADDED", tcfs())
    op._claim_event("ADDED", claim("1"))
    op._claim_event("MODIFIED", claim("2"))
    assert op.spawned == []
    assert op.recording.posted == []


def test_a_claim_deleted_or_bound_before_its_class_is_forgotten() -> None:
    op = RecordingOperator()
    op._claim_event("ADDED", claim("1"))
    op._claim_event("DELETED", claim("1"))
    op._claim_event("ADDED", claim("2"))
    op._claim_event("MODIFIED", claim("2", phase="Bound"))
    assert op._waiting == {}
    op._class_event("ADDED", storage_class())
    assert op.spawned == []


def test_an_invalid_class_warns_on_the_claim_and_creates_nothing() -> None:
    op = RecordingOperator()
    op._class_event("ADDED", storage_class(storagetype="XL"))
    op._claim_event("ADDED", claim("1"))
    assert op.spawned == []
    assert op.recording.posted == [("c-1", "PersistentVolumeClaim", "InvalidSharedStorageClass", True)]


def test_a_tcfs_is_reconciled_when_first_seen_and_when_its_spec_changes_not_its_status() -> None:
    op = RecordingOperator()
    first = tcfs()
    op._tcfs_event("ADDED", first)
    assert op.requested == ["share"]
    op._handled["share"] = fingerprint(first)  # as the reconcile it requested records when it is done
    with_status = {**copy.deepcopy(first), "status": {"cfsid": "cfs-1"}}
    op._tcfs_event("MODIFIED", with_status)  # our own status patch
    op._tcfs_event("ADDED", with_status)  # a re-list
    assert op.requested == ["share"]
    assert op.recording.tcfs["share"] is with_status
    changed = copy.deepcopy(with_status)
    changed["metadata"]["generation"], changed["spec"]["vers"] = 2, "4"
    op._tcfs_event("MODIFIED", changed)
    assert op.requested == ["share", "share"]


def test_a_tcfs_being_deleted_is_not_reconciled_and_loses_kopfs_finalizer() -> None:
    op = RecordingOperator()
    op._tcfs_event("ADDED", tcfs(finalizers=[KOPF_FINALIZER], deletionTimestamp="2026-11-30T00:00:00Z"))
    assert op.requested == []
    assert op.spawned == ["finalizer/share"]
    op._tcfs_event("DELETED", tcfs())
    assert "share" not in op.recording.tcfs


def test_the_operator_process_loads_neither_kopf_nor_the_official_client() -> None:
    """Every module the operator runs, imported in a fresh interpreter: kopf and ``kubernetes`` stay out (they
    made the process 67 MB before it did anything)."""
    code = (
        "import sys\nfrom cfs_csi import cli\n"
        "try:\n    cli.main(['operator', '--help'])\nexcept SystemExit:\n    pass\n"
        "import cfs_csi.operator.main, cfs_csi.operator.handlers, cfs_csi.kube.leading, cfs_csi.cloud.factory\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'kopf', 'kubernetes', 'aiohttp', 'pydantic'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
