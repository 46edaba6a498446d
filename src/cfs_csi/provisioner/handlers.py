"""The external-provisioning protocol for sub-directory volumes, on kopf.

Claims of our StorageClass become a directory on the share and a PersistentVolume bound to the claim (the PV
controller of kube-controller-manager completes the binding). Released volumes are deleted, kept or archived
as the class says, and their PV object is removed. Both directions are idempotent: the PV name is derived
from the claim's uid, so a repeated event (or a second replica) finds the work already done.

This module is the Kubernetes side only: which directories other volumes own (a fresh list of the PVs, plus
the provisions in flight), events and PV objects. Everything on the share is :mod:`.disk`, on a handle of the
share root.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import kopf
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from cfs_csi.kube.objects import read_or_none
from cfs_csi.provisioner import disk
from cfs_csi.provisioner.ownership import Reservations, conflict, reuse_existing, share_owners
from cfs_csi.provisioner.paths import delete_action, directory_for
from cfs_csi.provisioner.volumes import Share, persistent_volume, pv_name, released_ours, unsupported, wants_us
from cfs_csi.volume.errors import InvalidArgument

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class ProvisionerContext:
    name: str
    share: Share
    root: Path
    dir_mode: int
    api: Any  # kubernetes.client.ApiClient
    reservations: Reservations = field(default_factory=Reservations)


@kopf.index("storage.k8s.io", "v1", "storageclasses")
def classes(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """StorageClasses by name, kept current by kopf's watch (no API read per claim event)."""
    return {name: dict(body)}


Classes = kopf.Index[str, dict[str, Any]]


def _first(index: Classes | None, key: str | None) -> dict[str, Any] | None:
    if index is None or not key or key not in index:
        return None
    return next(iter(index[key]), None)


@kopf.on.event("", "v1", "persistentvolumeclaims")
async def claim_event(*, type: str, body: kopf.Body, memo: kopf.Memo, classes: Classes | None = None,
                      **_: Any) -> None:  # fmt: skip
    if type == "DELETED":
        return
    context: ProvisionerContext = memo["context"]
    claim = _plain(body)
    storage_class = _first(classes, (claim.get("spec") or {}).get("storageClassName"))
    if wants_us(claim, storage_class, context.name) is not None or storage_class is None:
        return
    await provision(body, claim, storage_class, context)


async def provision(body: kopf.Body, claim: dict[str, Any], storage_class: dict[str, Any],
                    context: ProvisionerContext) -> None:  # fmt: skip
    core = k8s.CoreV1Api(context.api)
    volume = pv_name(claim)
    if await read_or_none(core.read_persistent_volume, volume) is not None:
        return
    where = f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"

    def refuse(reason: object) -> None:
        kopf.warn(body, reason="ProvisioningFailed", message=f"failed to provision volume for claim {where}: {reason}")

    problem = unsupported(claim)
    if problem:
        refuse(problem)
        return
    kopf.info(body, reason="Provisioning", message=f'External provisioner is provisioning volume for claim "{where}"')
    metadata = claim["metadata"]
    parameters = {k.lower(): v for k, v in (storage_class.get("parameters") or {}).items()}
    try:
        directory = directory_for(parameters.get("pathpattern", ""), metadata["namespace"], metadata["name"], volume,
                                  metadata.get("labels") or {}, metadata.get("annotations") or {})  # fmt: skip
        reuse = reuse_existing(parameters)
    except InvalidArgument as exc:
        refuse(exc)
        return
    # Reserve before listing: a provision that finished earlier has its PV in the list, one still running
    # holds its reservation; either way two claims can never both decide that a path is free.
    busy = context.reservations.reserve(volume, directory)
    if busy:  # a PV in the way is the lasting reason; the provision in flight may yet be refused itself
        refuse(conflict(directory, volume, await _owners(context)) or busy)
        return
    try:
        owners = {**await _owners(context), **context.reservations.owners()}
        try:
            verdict = await _on_share(context, disk.provision_directory, directory, volume, owners, reuse,
                                      context.dir_mode)  # fmt: skip
        except InvalidArgument as exc:
            refuse(exc)
            return
        pv = persistent_volume(claim, storage_class, context.name, context.share, directory)
        try:
            await asyncio.to_thread(core.create_persistent_volume, pv)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status != 409:
                kopf.warn(body, reason="ProvisioningFailed", message=f"creating PV {volume} failed: {exc.reason}")
                raise
    finally:
        context.reservations.release(volume)
    try:
        await _on_share(context, disk.forget_owner, volume)
    except OSError as exc:  # harmless: a record only matters while its volume has no PV, and this one has
        log.warning("could not remove the owner record of %s: %s", volume, exc)
    log.info("provisioned %s for %s in %s (%s)", volume, where, directory, verdict.value)
    kopf.info(body, reason="ProvisioningSucceeded", message=f"Successfully provisioned volume {volume}")


async def _owners(context: ProvisionerContext) -> dict[str, str]:
    """Every directory of the share that a PV names, from a fresh list (a watch cache could lag behind)."""
    # Raw JSON: building the client's model objects for every PV of a large cluster costs far more.
    response: Any = await asyncio.to_thread(k8s.CoreV1Api(context.api).list_persistent_volume, _preload_content=False)
    pvs = json.loads(response.data).get("items") or []
    return share_owners(pvs, context.share.server, context.share.fsid)


async def _on_share(context: ProvisionerContext, work: Callable[..., T], *args: Any) -> T:
    """Run ``work(root_fd, *args)`` in a thread, with a fresh handle of the share root."""

    def run() -> T:
        with disk.share_root(context.root) as root_fd:
            return work(root_fd, *args)

    return await asyncio.to_thread(run)


@kopf.on.event("", "v1", "persistentvolumes")
async def volume_event(*, type: str, body: kopf.Body, memo: kopf.Memo, classes: Classes | None = None,
                       **_: Any) -> None:  # fmt: skip
    context: ProvisionerContext = memo["context"]
    pv = _plain(body)
    if type == "DELETED" or not released_ours(pv, context.name):
        return
    await reclaim(body, pv, _first(classes, (pv.get("spec") or {}).get("storageClassName")), context)


async def reclaim(body: kopf.Body, pv: dict[str, Any], storage_class: dict[str, Any] | None,
                  context: ProvisionerContext) -> None:  # fmt: skip
    name = pv["metadata"]["name"]
    attributes = ((pv.get("spec") or {}).get("csi") or {}).get("volumeAttributes") or {}
    action = delete_action((storage_class or {}).get("parameters") if storage_class else None)
    try:
        if attributes.get("host") != context.share.server or attributes.get("fsid", "") != context.share.fsid:
            raise InvalidArgument(f"it belongs to {attributes.get('host')}:{attributes.get('fsid')}, not to this share")
        # Only PVs: a provision in flight cannot overlap this PV's directory, since this PV still exists and
        # is in that provision's list (it is deleted below, after the directory).
        owners = await _owners(context)
        done = await _on_share(context, disk.reclaim_directory, str(attributes.get("path", "")), name, owners, action)
    except InvalidArgument as exc:
        kopf.warn(body, reason="VolumeFailedDelete", message=f"refusing to touch the share for {name}: {exc}")
        return
    log.info("volume %s released: directory %s %s", name, attributes.get("path"), done)
    try:
        await asyncio.to_thread(k8s.CoreV1Api(context.api).delete_persistent_volume, name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _plain(body: kopf.Body) -> dict[str, Any]:
    return {"metadata": dict(body["metadata"]), "spec": dict(body.get("spec") or {}),
            "status": dict(body.get("status") or {})}  # fmt: skip
