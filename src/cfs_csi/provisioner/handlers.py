"""The external-provisioning protocol for sub-directory volumes, on kopf.

Claims of our StorageClass become a directory on the share and a PersistentVolume bound to the claim (the PV
controller of kube-controller-manager completes the binding). Released volumes are deleted, kept or archived
as the class says, and their PV object is removed. Both directions are idempotent: the PV name is derived
from the claim's uid, so a repeated event (or a second replica) finds the work already done.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from cfs_csi.kube.objects import read_or_none
from cfs_csi.provisioner.paths import DeleteAction, archive_name, contained, delete_action, directory_for
from cfs_csi.provisioner.volumes import Share, persistent_volume, pv_name, released_ours, unsupported, wants_us
from cfs_csi.volume.errors import InvalidArgument

log = logging.getLogger(__name__)


@dataclass
class ProvisionerContext:
    name: str
    share: Share
    root: Path
    dir_mode: int
    api: Any  # kubernetes.client.ApiClient


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
    problem = unsupported(claim)
    if problem:
        kopf.warn(body, reason="ProvisioningFailed", message=f"failed to provision volume for claim {where}: {problem}")
        return
    kopf.info(body, reason="Provisioning", message=f'External provisioner is provisioning volume for claim "{where}"')
    metadata = claim["metadata"]
    parameters = {k.lower(): v for k, v in (storage_class.get("parameters") or {}).items()}
    try:
        directory = directory_for(parameters.get("pathpattern", ""), metadata["namespace"], metadata["name"], volume,
                                  metadata.get("labels") or {}, metadata.get("annotations") or {})  # fmt: skip
        target = contained(context.root, directory)
    except InvalidArgument as exc:
        kopf.warn(body, reason="ProvisioningFailed", message=f"failed to provision volume for claim {where}: {exc}")
        return
    await asyncio.to_thread(_make_directory, target, context.dir_mode)
    pv = persistent_volume(claim, storage_class, context.name, context.share, directory)
    try:
        await asyncio.to_thread(core.create_persistent_volume, pv)  # type: ignore[arg-type]
    except ApiException as exc:
        if exc.status != 409:
            kopf.warn(body, reason="ProvisioningFailed", message=f"creating PV {volume} failed: {exc.reason}")
            raise
    log.info("provisioned %s for %s in %s", volume, where, directory)
    kopf.info(body, reason="ProvisioningSucceeded", message=f"Successfully provisioned volume {volume}")


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
    try:
        if attributes.get("host") != context.share.server or attributes.get("fsid", "") != context.share.fsid:
            raise InvalidArgument(f"it belongs to {attributes.get('host')}:{attributes.get('fsid')}, not to this share")
        relative = str(attributes.get("path", ""))
        target = contained(context.root, relative)
        if os.path.islink(context.root / relative):
            raise InvalidArgument(f"{relative!r} is a symbolic link, not the volume's directory")
    except InvalidArgument as exc:
        kopf.warn(body, reason="VolumeFailedDelete", message=f"refusing to touch the share for {name}: {exc}")
        return
    action = delete_action((storage_class or {}).get("parameters") if storage_class else None)
    done = await asyncio.to_thread(_reclaim_directory, context.root, relative, target, action)
    log.info("volume %s released: directory %s %s", name, relative, done)
    try:
        await asyncio.to_thread(k8s.CoreV1Api(context.api).delete_persistent_volume, name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _reclaim_directory(root: Path, relative: str, target: Path, action: DeleteAction) -> str:
    if not target.exists():
        return "was already gone"
    if action is DeleteAction.RETAIN:
        return "retained"
    if action is DeleteAction.DELETE:
        shutil.rmtree(target)
        return "deleted"
    archived = archive_name(relative, lambda candidate: (root / candidate).exists())
    os.rename(target, contained(root, archived))
    return f"archived as {archived}"


def _make_directory(target: Path, mode: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(mode)  # mkdir's mode is masked by the umask; the class's mode is what was asked for


def _plain(body: kopf.Body) -> dict[str, Any]:
    return {"metadata": dict(body["metadata"]), "spec": dict(body.get("spec") or {}),
            "status": dict(body.get("status") or {})}  # fmt: skip
