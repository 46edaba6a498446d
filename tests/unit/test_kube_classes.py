"""The StorageClasses an informer has seen, and the claims that arrived before their class (kube/classes.py)."""

from __future__ import annotations

from cfs_csi.kube.classes import WaitingClaims, class_event


def sc(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "provisioner": "p"}


def test_a_claim_waits_for_its_class_and_is_released_once() -> None:
    classes: dict[str, dict[str, object]] = {}
    waiting = WaitingClaims()
    claim = {"metadata": {"uid": "u1"}}
    waiting.add("gold", "u1", claim)
    waiting.add("silver", "u2", {"metadata": {"uid": "u2"}})
    assert class_event(classes, waiting, "ADDED", sc("gold")) == [claim]
    assert classes == {"gold": sc("gold")} and waiting == {"silver": {"u2": {"metadata": {"uid": "u2"}}}}
    assert class_event(classes, waiting, "MODIFIED", sc("gold")) == []  # released already
    assert class_event(classes, waiting, "DELETED", sc("gold")) == [] and classes == {}


def test_dropping_the_last_claim_of_a_class_leaves_no_empty_entry() -> None:
    waiting = WaitingClaims()
    waiting.add("gold", "u1", {})
    waiting.add("gold", "u2", {})
    waiting.drop("gold", "u1")
    assert waiting == {"gold": {"u2": {}}}
    waiting.drop("gold", "u2")
    waiting.drop("gold", "u2")  # again, and of a class never seen: nothing happens
    waiting.drop("bronze", "u9")
    assert waiting == {}
