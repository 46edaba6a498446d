"""The share's PV and PVC (see :func:`cfs_csi.operator.desired.desired_share_volume`), kept in place.

Created when missing, cheaply checked on every resync. When a Tcfs moves to another file system, the new
objects get new names; the old ones are then deleted, and the API server's protection finalizers hold them
until the old provisioner pod has stopped using them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from cfs_csi.kube.objects import create_unless_exists, read_or_none
from cfs_csi.operator.context import OperatorContext
from cfs_csi.operator.desired import TCFS_LABEL, SharedFileSystem, desired_share_volume, tcfs_label

log = logging.getLogger(__name__)


async def ensure_share_volume(context: OperatorContext, tcfs: dict[str, Any], fs: SharedFileSystem) -> list[str]:
    """Create what is missing of the share's PV and PVC; the kinds and names created, for an event."""
    pv, pvc = desired_share_volume(tcfs, fs)
    core = k8s.CoreV1Api(context.api)
    name, namespace = pv["metadata"]["name"], context.namespace
    created = []
    missing_pv = await read_or_none(core.read_persistent_volume, name) is None
    if missing_pv and await create_unless_exists(core.create_persistent_volume, pv):
        created.append(f"PersistentVolume {name}")
    missing_pvc = await read_or_none(core.read_namespaced_persistent_volume_claim, name, namespace) is None
    if missing_pvc and await create_unless_exists(core.create_namespaced_persistent_volume_claim, namespace, pvc):
        created.append(f"PersistentVolumeClaim {namespace}/{name}")
    if created:
        await _remove_others(core, str(tcfs["metadata"]["name"]), name, namespace)
    return created


async def _remove_others(core: k8s.CoreV1Api, tcfs_name: str, keep: str, namespace: str) -> None:
    """Delete the share PVs and PVCs of this Tcfs that name another file system."""
    selector = f"{TCFS_LABEL}={tcfs_label(tcfs_name)}"
    claims = await asyncio.to_thread(core.list_namespaced_persistent_volume_claim, namespace, label_selector=selector)
    volumes = await asyncio.to_thread(core.list_persistent_volume, label_selector=selector)

    def delete_claim(name: str) -> object:
        return core.delete_namespaced_persistent_volume_claim(name, namespace)

    await _delete_others(tcfs_name, "PersistentVolumeClaim", claims.items, keep, delete_claim)
    await _delete_others(tcfs_name, "PersistentVolume", volumes.items, keep, core.delete_persistent_volume)


async def _delete_others(
    tcfs_name: str, kind: str, items: list[Any], keep: str, delete: Callable[[str], object]
) -> None:
    for other in [item.metadata.name for item in items if item.metadata and item.metadata.name != keep]:
        log.info("Tcfs %s: deleting %s %s of a previous file system", tcfs_name, kind, other)
        try:
            await asyncio.to_thread(delete, other)
        except ApiException as exc:
            if exc.status != 404:
                raise
