"""The storageclass controller: a PVC of a shared StorageClass gets that class its Tcfs.

Driven by PVC events (not by StorageClass events) as in the vendor's add-on: a shared class costs nothing
until a claim uses it. Deleting the class deletes the Tcfs through its owner reference (garbage collection),
so no finalizer ever blocks a StorageClass deletion.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes import client as k8s

from cfs_csi.kube.objects import create_unless_exists, read_or_none
from cfs_csi.operator.context import OperatorContext
from cfs_csi.operator.desired import tcfs_object
from cfs_csi.operator.shared import (
    TCFS_GROUP,
    TCFS_PLURAL,
    TCFS_VERSION,
    ClassKind,
    class_kind,
    parse_shared_class,
    unserved_message,
)
from cfs_csi.volume.errors import InvalidArgument

log = logging.getLogger(__name__)


@kopf.on.event("", "v1", "persistentvolumeclaims")
async def claim_seen(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    context: OperatorContext = memo["context"]
    if body.get("status", {}).get("phase") == "Bound":
        return
    class_name = (body.get("spec") or {}).get("storageClassName")
    if not class_name:
        return
    storage_class = await _storage_class(context, class_name)
    if storage_class is None:
        return
    try:
        kind = class_kind(storage_class)
        if kind is ClassKind.PROVISIONER_ONLY and not await _served(context, str(storage_class["provisioner"])):
            raise InvalidArgument(unserved_message(storage_class))
        if kind is not ClassKind.SHARED:
            return
        shared = parse_shared_class(storage_class)
    except InvalidArgument as exc:
        kopf.warn(body, reason="InvalidSharedStorageClass", message=str(exc))
        return
    created = await _ensure_tcfs(context, tcfs_object(shared, context.namespace))
    if created:
        kopf.info(
            body,
            reason="TcfsCreated",
            message=f"created Tcfs {context.namespace}/{shared.name} for shared StorageClass {shared.name}",
        )


async def _storage_class(context: OperatorContext, name: str) -> dict[str, Any] | None:
    found = await read_or_none(k8s.StorageV1Api(context.api).read_storage_class, name)
    if found is None:
        return None
    result: dict[str, Any] = context.api.sanitize_for_serialization(found)
    return result


async def _served(context: OperatorContext, provisioner: str) -> bool:
    """Whether a Tcfs (one made by hand: ours are only made for shared classes) runs ``provisioner``."""
    api = k8s.CustomObjectsApi(context.api)
    listed = await asyncio.to_thread(
        api.list_namespaced_custom_object, TCFS_GROUP, TCFS_VERSION, context.namespace, TCFS_PLURAL
    )
    found: dict[str, Any] = listed  # type: ignore[assignment]  # the client types custom objects as object
    return any((item.get("spec") or {}).get("provisionername") == provisioner for item in found.get("items") or [])


async def _ensure_tcfs(context: OperatorContext, tcfs: dict[str, Any]) -> bool:
    """Create the Tcfs unless it exists; True if this call created it."""
    api = k8s.CustomObjectsApi(context.api)
    create = api.create_namespaced_custom_object
    if not await create_unless_exists(create, TCFS_GROUP, TCFS_VERSION, context.namespace, TCFS_PLURAL, tcfs):
        return False
    log.info("created Tcfs %s/%s", context.namespace, tcfs["metadata"]["name"])
    return True
