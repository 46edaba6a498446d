"""The provisioner's informer events, in the orders the API server may deliver them (no API calls are made: the
work each event would start is recorded instead)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfs_csi.provisioner.handlers import Provisioner, ProvisionerContext
from cfs_csi.provisioner.volumes import ANN_PROVISIONER, Share

NAME = "com.tencent.cloud.csi.tcfs.cfs-share"


class Recording(Provisioner):
    def __init__(self) -> None:
        share = Share(server="10.0.0.1", fsid="abcd1234")
        # Never used: _spawn is where the work would start, and it only records the key here.
        context = ProvisionerContext(NAME, share, Path("/nonexistent"), 0o777, client=None, events=object())  # type: ignore[arg-type]
        super().__init__(context)
        self.started: list[str] = []

    def _spawn(self, key: str, work: Any) -> None:
        self.started.append(key)


def claim(uid: str, class_name: str = "copy", phase: str = "Pending") -> dict[str, Any]:
    return {"metadata": {"name": f"c-{uid}", "namespace": "ns", "uid": uid, "annotations": {ANN_PROVISIONER: NAME}},
            "spec": {"storageClassName": class_name}, "status": {"phase": phase}}  # fmt: skip


def storage_class(name: str = "copy", provisioner: str = NAME) -> dict[str, Any]:
    return {"metadata": {"name": name}, "provisioner": provisioner, "parameters": {}}


def test_a_claim_seen_before_its_class_is_provisioned_when_the_class_arrives() -> None:
    p = Recording()
    p._claim_event("ADDED", claim("1"))
    p._claim_event("MODIFIED", claim("1"))  # the PV controller's annotation, still before the class
    assert p.started == []
    p._class_event("ADDED", storage_class())
    assert p.started == ["claim/1"]
    p._class_event("MODIFIED", storage_class())  # judged once, not at every later class event
    assert p.started == ["claim/1"]


def test_a_claim_deleted_or_bound_before_its_class_arrives_is_forgotten() -> None:
    p = Recording()
    p._claim_event("ADDED", claim("1"))
    p._claim_event("DELETED", claim("1"))
    p._claim_event("ADDED", claim("2", phase="Bound"))
    p._class_event("ADDED", storage_class())
    assert p.started == []
    assert p._waiting == {}


def test_a_class_of_another_provisioner_releases_its_waiting_claims_without_work() -> None:
    p = Recording()
    p._claim_event("ADDED", claim("1", "other"))
    p._class_event("ADDED", storage_class("other", "example.com/nfs"))
    assert p.started == [] and p._waiting == {}
