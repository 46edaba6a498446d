"""The one rule the operator applies before it changes, deletes or uses an object: prove it is this Tcfs's."""

from __future__ import annotations

from typing import Any

import pytest

from cfs_csi.operator.ownership import TCFS_UID, Owner, not_ours

OWNER = Owner("cfs-share", "uid-tcfs", {"app": "cfs-csi-subdir-provisioner", "tcfsoperator.k8s.io/tcfs": "cfs-share"})
LABELS = dict(OWNER.labels)


def ref(uid: str = "uid-tcfs", controller: Any = True, kind: str = "Tcfs",
        api_version: str = "tcfsoperator.k8s.io/v1alpha1") -> dict[str, Any]:  # fmt: skip
    reference = {"apiVersion": api_version, "kind": kind, "name": "cfs-share", "uid": uid}
    if controller is not None:
        reference["controller"] = controller
    return reference


CLASS_REF = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "name": "cfs-share", "uid": "uid-sc"}

BY_OWNER_REFERENCE = [
    ("ours", {"ownerReferences": [ref()], "labels": LABELS}, None),
    ("ours, extra labels and owners", {"ownerReferences": [CLASS_REF, ref()], "labels": {**LABELS, "x": "y"}}, None),
    ("no metadata", None, "no ownerReferences"),
    ("no ownerReferences", {"labels": LABELS}, "no ownerReferences"),
    ("empty ownerReferences", {"ownerReferences": [], "labels": LABELS}, "no ownerReferences"),
    ("our uid, not controller", {"ownerReferences": [ref(controller=False)], "labels": LABELS}, "controller"),
    ("our uid, controller unset", {"ownerReferences": [ref(controller=None)], "labels": LABELS}, "controller"),
    ("our uid, controller as a string", {"ownerReferences": [ref(controller="true")], "labels": LABELS},
     "controller"),
    ("another Tcfs's uid (same name)", {"ownerReferences": [ref(uid="uid-old")], "labels": LABELS}, "uid-old"),
    ("controlled by a ReplicaSet", {"ownerReferences": [ref(uid="uid-rs", kind="ReplicaSet",
                                                            api_version="apps/v1")], "labels": LABELS}, "ReplicaSet"),
    ("our uid under another kind", {"ownerReferences": [ref(kind="Deployment")], "labels": LABELS}, "controlled by"),
    ("our uid under another group", {"ownerReferences": [ref(api_version="example.com/v1")], "labels": LABELS},
     "controlled by"),
    ("ours, controller elsewhere", {"ownerReferences": [ref(controller=False), ref(uid="uid-x")], "labels": LABELS},
     "uid-x"),
    ("labels missing", {"ownerReferences": [ref()]}, "app, tcfsoperator.k8s.io/tcfs"),
    ("one label missing", {"ownerReferences": [ref()], "labels": {"app": LABELS["app"]}},
     "tcfsoperator.k8s.io/tcfs"),
    ("label of another Tcfs", {"ownerReferences": [ref()], "labels": {**LABELS, "tcfsoperator.k8s.io/tcfs": "b"}},
     "tcfsoperator.k8s.io/tcfs"),
    ("annotation is no proof here", {"annotations": {TCFS_UID: "uid-tcfs"}, "labels": LABELS}, "no ownerReferences"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "metadata", "needle"), BY_OWNER_REFERENCE, ids=[c[0] for c in BY_OWNER_REFERENCE])
def test_namespaced_objects_prove_it_by_a_controller_reference(
    case: str, metadata: dict[str, Any] | None, needle: str | None
) -> None:
    why = not_ours(metadata, OWNER)
    if needle is None:
        assert why is None
    else:
        assert why is not None and needle in why


PV_LABELS = {"tcfsoperator.k8s.io/tcfs": "cfs-share"}
PV_OWNER = Owner("cfs-share", "uid-tcfs", PV_LABELS)
BY_ANNOTATION = [
    ("ours", {"annotations": {TCFS_UID: "uid-tcfs"}, "labels": PV_LABELS, "ownerReferences": [CLASS_REF]}, None),
    ("no annotation", {"labels": PV_LABELS}, f"no annotation {TCFS_UID}"),
    ("empty annotation", {"annotations": {TCFS_UID: ""}, "labels": PV_LABELS}, f"no annotation {TCFS_UID}"),
    ("another Tcfs's uid", {"annotations": {TCFS_UID: "uid-old"}, "labels": PV_LABELS}, "'uid-old'"),
    ("label missing", {"annotations": {TCFS_UID: "uid-tcfs"}}, "tcfsoperator.k8s.io/tcfs"),
    ("an ownerReference is no proof here", {"ownerReferences": [ref()], "labels": PV_LABELS}, "no annotation"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "metadata", "needle"), BY_ANNOTATION, ids=[c[0] for c in BY_ANNOTATION])
def test_persistent_volumes_prove_it_by_the_uid_annotation(
    case: str, metadata: dict[str, Any], needle: str | None
) -> None:
    why = not_ours(metadata, PV_OWNER, by_annotation=True)
    if needle is None:
        assert why is None
    else:
        assert why is not None and needle in why


def test_an_owner_without_uid_owns_nothing() -> None:
    anonymous = Owner("cfs-share", "", PV_LABELS)
    assert not_ours({"ownerReferences": [ref(uid="")], "labels": PV_LABELS}, anonymous) == "Tcfs cfs-share has no uid"
    assert not_ours({"annotations": {TCFS_UID: ""}, "labels": PV_LABELS}, anonymous, by_annotation=True) is not None
