"""Is an existing Kubernetes object ours to change or delete? One pure answer for everything the operator writes.

The operator finds its Deployment, share PV and share PVC by name (the Deployment's comes from the Tcfs's
``spec.provisionername``, which an admin may set to anything) and the old share volumes by a label anyone can set.
A name or a label is a claim, not a proof: acting on it once made the operator delete an unrelated Deployment
that a Tcfs happened to name. So before it replaces or deletes an object, the operator asks :func:`not_ours`:

- a namespaced object (Deployment, PVC) must carry an ownerReference to *this* Tcfs, by uid, with
  ``controller: true`` (the uid changes when a Tcfs is deleted and re-created under the same name, so an object
  left behind by a previous Tcfs is not silently taken over), and our labels;
- a PersistentVolume is cluster-scoped and cannot name a namespaced owner (the garbage collector treats such a
  reference as unresolvable), so the operator records the Tcfs uid in the annotation :data:`TCFS_UID` when it
  creates one, and requires it with our labels.

An object that fails is never adopted, changed or deleted: the caller reports it (event, Ready=False) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cfs_csi.operator.shared import TCFS_GROUP

#: On a share PV: the uid of the Tcfs that created it (a PV cannot carry an ownerReference to a Tcfs).
TCFS_UID = "tcfsoperator.k8s.io/tcfs-uid"


@dataclass(frozen=True)
class Owner:
    """The Tcfs we act for, and the labels it stamps on what it creates."""

    name: str
    uid: str
    labels: Mapping[str, str]


def not_ours(metadata: Mapping[str, Any] | None, owner: Owner, *, by_annotation: bool = False) -> str | None:
    """``None`` when ``metadata`` proves the object belongs to ``owner``; otherwise why it does not, for a message.

    ``by_annotation`` selects the proof of a cluster-scoped object (see the module docstring).
    """
    metadata = metadata or {}
    if not owner.uid:  # nothing can prove ownership by an unknown uid (never happens for an object read back)
        return f"Tcfs {owner.name} has no uid"
    if by_annotation:
        recorded = (metadata.get("annotations") or {}).get(TCFS_UID)
        if not recorded:
            return f"it has no annotation {TCFS_UID}"
        if recorded != owner.uid:
            return f"its annotation {TCFS_UID} is {recorded!r}, not this Tcfs's uid"
    else:
        problem = _controller_problem(metadata.get("ownerReferences") or [], owner)
        if problem:
            return problem
    labels = metadata.get("labels") or {}
    wrong = sorted(key for key, value in owner.labels.items() if labels.get(key) != value)
    if wrong:
        return f"its labels {', '.join(wrong)} are missing or differ"
    return None


def _controller_problem(references: list[Mapping[str, Any]], owner: Owner) -> str | None:
    if not references:
        return "it has no ownerReferences"
    controllers = [r for r in references if r.get("controller") is True]
    if not controllers:
        return "none of its ownerReferences is a controller"
    controller = controllers[0]  # the API server allows at most one
    if (
        controller.get("uid") != owner.uid
        or controller.get("kind") != "Tcfs"
        or str(controller.get("apiVersion", "")).split("/")[0] != TCFS_GROUP
    ):
        return f"it is controlled by {controller.get('kind')} {controller.get('name')} (uid {controller.get('uid')})"
    return None
