"""The share's PV and PVC (see :func:`cfs_csi.operator.desired.desired_share_volume`), kept in place.

Created when missing, cheaply checked on every resync. When a Tcfs moves to another file system, the new
objects get new names; the old ones are then deleted, and the API server's protection finalizers hold them
until the old provisioner pod has stopped using them.

Only objects that prove they are this Tcfs's (:mod:`.ownership`) are used or deleted. A PV or PVC that already
exists under the desired name and is not ours is a conflict: it is not adopted, our PVC is not created next to
a foreign PV (it would bind to it, and the provisioner would create directories in whatever it points at), and
the caller keeps the provisioner Deployment away from it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from cfs_csi.kube.rest import ApiError
from cfs_csi.operator.context import VOLUMES, OperatorContext, at
from cfs_csi.operator.desired import (
    SHARE_VOLUME_NOT_OWNED,
    Conflict,
    SharedFileSystem,
    conflict,
    desired_share_volume,
    share_owner,
    share_volume_name,
)
from cfs_csi.operator.ownership import Owner, not_ours

log = logging.getLogger(__name__)


@dataclass
class ShareVolume:
    """What :func:`ensure_share_volume` did: the kinds and names it created (for an event), and conflicts."""

    created: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


async def _create_unless_exists(context: OperatorContext, collection: str, body: dict[str, Any]) -> bool:
    """True if this call created ``body``; False when an object of its name exists (409)."""
    try:
        await context.client.create(collection, body)
    except ApiError as exc:
        if exc.status == 409:
            return False
        raise
    return True


async def ensure_share_volume(context: OperatorContext, tcfs: dict[str, Any], fs: SharedFileSystem) -> ShareVolume:
    """Create what is missing of the share's PV and PVC, once both names are proven free or ours.

    Both are checked before either is created: our PVC names its PV and would bind to a foreign PV of that
    name, and our PV names its PVC and would bind to a foreign PVC. The PVC is created first so that the PV can
    name it by uid too (``claimRef.uid``): then it binds to that very object and to nothing else.
    """
    owner = share_owner(tcfs)
    client = context.client
    name, namespace = share_volume_name(str(tcfs["metadata"]["name"]), fs), context.namespace
    pv_what, pvc_what = f"PersistentVolume {name}", f"PersistentVolumeClaim {namespace}/{name}"
    result = ShareVolume()

    async def read_claim() -> Any:
        return await client.get_or_none(at(context.claims_path, name))

    async def read_volume() -> Any:
        return await client.get_or_none(at(VOLUMES, name))

    def check(what: str, found: Any, by_annotation: bool) -> None:
        metadata = found.get("metadata") if found is not None else None
        problem = conflict(SHARE_VOLUME_NOT_OWNED, what, metadata, owner, by_annotation=by_annotation)
        if problem is not None:
            result.conflicts.append(problem)

    claim, volume = await read_claim(), await read_volume()
    for what, found, by_annotation in ((pvc_what, claim, False), (pv_what, volume, True)):
        if found is not None:
            check(what, found, by_annotation)
    if result.conflicts:
        return result
    if claim is None:
        _, pvc = desired_share_volume(tcfs, fs)
        if await _create_unless_exists(context, context.claims_path, pvc):
            result.created.append(pvc_what)
        claim = await read_claim()  # for its uid; and if someone else's was created in between, it shows here
        if claim is None:
            return result  # deleted again at once: the next resync looks again
        check(pvc_what, claim, False)
        if result.conflicts:
            return result
    if volume is None:
        pv, _ = desired_share_volume(tcfs, fs, claim_uid=str(claim["metadata"]["uid"]))
        if await _create_unless_exists(context, VOLUMES, pv):
            result.created.append(pv_what)
        else:
            check(pv_what, await read_volume(), True)
    if result.created and not result.conflicts:
        await _remove_others(context, owner, name)
    return result


async def _remove_others(context: OperatorContext, owner: Owner, keep: str) -> None:
    """Delete the share PVs and PVCs of this Tcfs that name another file system.

    The label selector only finds candidates (anyone can set a label); each one is deleted only if it proves it
    is this Tcfs's, and only if it is still the object that proved it (uid precondition).
    """
    selector = {"labelSelector": ",".join(f"{key}={value}" for key, value in owner.labels.items())}
    for kind, collection, by_annotation in (
        ("PersistentVolumeClaim", context.claims_path, False),
        ("PersistentVolume", VOLUMES, True),
    ):
        listed = await context.client.list(collection, params=selector)
        for item in listed["items"]:
            metadata = item.get("metadata") or {}
            if metadata.get("name") and metadata["name"] != keep:
                await _delete_if_ours(context, owner, kind, collection, metadata, by_annotation)


async def _delete_if_ours(
    context: OperatorContext, owner: Owner, kind: str, collection: str, metadata: dict[str, Any], by_annotation: bool
) -> None:
    name = metadata["name"]
    why = not_ours(metadata, owner, by_annotation=by_annotation)
    if why is not None:
        log.warning("Tcfs %s: leaving %s %s alone although it has our label: %s", owner.name, kind, name, why)
        return
    log.info("Tcfs %s: deleting %s %s of a previous file system", owner.name, kind, name)
    options = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": metadata.get("uid")}}
    try:
        await context.client.delete(at(collection, name), options)
    except ApiError as exc:
        if exc.status not in (404, 409):  # gone, or replaced by another object since it was listed
            raise
