"""The storageclass controller: a PVC of a shared StorageClass gets that class its Tcfs.

Driven by PVC events (not by StorageClass events) as in the vendor's add-on: a shared class costs nothing
until a claim uses it. Deleting the class deletes the Tcfs through its owner reference (garbage collection),
so no finalizer ever blocks a StorageClass deletion.

The decision (:func:`tcfs_for_claim`) is pure and reads the informers' caches; only a missing Tcfs costs an
API call (kopf's handler read the class and tried to create the Tcfs on every event of every such claim).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from cfs_csi.kube.rest import ApiError
from cfs_csi.operator.context import OperatorContext
from cfs_csi.operator.desired import tcfs_object
from cfs_csi.operator.shared import ClassKind, class_kind, parse_shared_class, unserved_message
from cfs_csi.volume.errors import InvalidArgument

log = logging.getLogger(__name__)


def served_provisioners(tcfs: Iterable[Mapping[str, Any]]) -> set[str]:
    """The provisioner names the Tcfs objects run (a hand-made Tcfs can serve a class without subdir-share)."""
    return {str((t.get("spec") or {}).get("provisionername") or "") for t in tcfs} - {""}


def tcfs_for_claim(
    claim: Mapping[str, Any], storage_class: Mapping[str, Any], served: set[str], namespace: str
) -> dict[str, Any] | None:
    """The Tcfs that ``claim``'s class needs, or ``None`` when it needs none (bound, not shared mode's).

    :class:`InvalidArgument` says what is wrong with a class that is shared mode's, for a warning on the claim.
    """
    if (claim.get("status") or {}).get("phase") == "Bound":
        return None
    kind = class_kind(storage_class)
    if kind is ClassKind.PROVISIONER_ONLY and str(storage_class.get("provisioner")) not in served:
        raise InvalidArgument(unserved_message(storage_class))
    if kind is not ClassKind.SHARED:
        return None
    return tcfs_object(parse_shared_class(storage_class), namespace)


def pending_reason(tcfs: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a claim served by ``tcfs`` waits, for a Warning on the claim: ``(reason, message)`` while the Tcfs's
    Ready condition is False (its own reason, e.g. ``FileSystemNotFound``), else ``None`` (ready, or not judged
    yet) (pure)."""
    status = tcfs.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "False":
        return None
    metadata = tcfs.get("metadata") or {}
    where = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
    detail = str(ready.get("message") or "no message")
    reason = str(ready.get("reason") or "SharedFileSystemNotReady")
    return reason, f"shared file system not ready (Tcfs {where}): {detail}"


async def ensure_tcfs(context: OperatorContext, claim: dict[str, Any], tcfs: dict[str, Any]) -> bool:
    """Create the Tcfs unless it exists; True if this call created it (and told the claim so)."""
    name = tcfs["metadata"]["name"]
    try:
        created = await context.client.create(context.tcfs_path, tcfs)
    except ApiError as exc:
        if exc.status == 409:
            return False
        raise
    context.tcfs.setdefault(name, created)  # before the watch shows it: the next claim of the class needs nothing
    log.info("created Tcfs %s/%s", context.namespace, name)
    context.post(claim, "PersistentVolumeClaim", "TcfsCreated",
                 f"created Tcfs {context.namespace}/{name} for shared StorageClass {name}")  # fmt: skip
    return True
