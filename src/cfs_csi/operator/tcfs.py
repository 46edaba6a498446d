"""The tcfs controller: compare each Tcfs with what exists and converge, idempotently.

1. Find its file system: the status (``cfsserver``, ``cfsfilesystemid``), else ``spec.fromExistCfs``, else by
   the fixed cloud name ``<cluster id>_sharedCFS-<class>`` (created if absent, through the same backend call
   as dedicated volumes). The operator never deletes a file system.
2. Record server and FSID in the status, with a Ready condition.
3. Create the PV and PVC through which the provisioner pod mounts the share (:mod:`.sharevolume`).
4. Create, update or delete the provisioner Deployment so that it matches the desired one.

Steps 3 and 4 change or delete only objects that prove they are this Tcfs's (:mod:`.ownership`): the
Deployment's name comes from ``spec.provisionername``, which may name anything. An object in the way that is
not ours is left alone; the Tcfs turns Ready=False with the reason ``DeploymentNotOwned`` or
``ShareVolumeNotOwned`` and gets one Warning event each time that condition changes (not on every resync).

A file system still being created, or a cloud that does not answer, is a temporary error (:class:`Retry`): this
object is reconciled again later, with a growing delay, while every other Tcfs goes on being handled. Nothing is
ever deleted because the cloud failed. When and how often a Tcfs is reconciled is :mod:`.handlers`'s business.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from cfs_csi.cloud.base import FileSystemSpec
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.kube.rest import ApiError
from cfs_csi.operator.context import OperatorContext, at
from cfs_csi.operator.desired import (
    DEPLOYMENT_NOT_OWNED,
    Action,
    Conflict,
    SharedFileSystem,
    conflict,
    deployment_action,
    deployment_owner,
    desired_deployment,
    readiness,
    ready_condition,
)
from cfs_csi.operator.shared import shared_fs_name, tcfs_params
from cfs_csi.operator.sharevolume import ensure_share_volume
from cfs_csi.volume.errors import InvalidArgument

log = logging.getLogger(__name__)

#: Retry delays (seconds) by kind of trouble.
_WAIT_CREATING = 5
_WAIT_CLOUD = 15
_WAIT_CONFIG = 60


class Retry(Exception):
    """Reconcile this Tcfs again after ``delay`` seconds (a temporary problem, already reported)."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


def backoff(base: int, retry: int, cap: int = 300) -> int:
    """Exponential backoff over the number of retries so far, capped: a long outage is polled every few minutes."""
    return int(min(cap, base * 2 ** min(retry, 10)))


async def reconcile(body: dict[str, Any], context: OperatorContext, retry: int = 0) -> None:
    """Converge one Tcfs (as the informer has it); :class:`Retry` when it must be looked at again soon."""
    tcfs = {"metadata": dict(body["metadata"]), "spec": dict(body.get("spec") or {}),
            "status": dict(body.get("status") or {})}  # fmt: skip
    previous = _ready_of(tcfs["status"])
    fs: SharedFileSystem | None
    missing = ""
    try:
        fs = await _locate(tcfs, context)
    except _Missing as exc:
        context.post(tcfs, "Tcfs", "FileSystemMissing", str(exc), warning=True)
        fs, missing = None, str(exc)
    except _Retry as problem:
        await _set_status(context, tcfs, None, ready=False, reason=problem.reason, message=problem.message)
        if problem.warn:
            context.post(tcfs, "Tcfs", problem.reason, problem.message, warning=True)
        raise Retry(problem.message, backoff(problem.delay, retry)) from None
    conflicts: list[Conflict] = []
    share_created: list[str] = []
    if fs is not None:
        share = await ensure_share_volume(context, tcfs, fs)
        conflicts += share.conflicts
        share_created = share.created
    desired = desired_deployment(tcfs, fs, context.template) if fs is not None else None
    deployment_name = str(tcfs["spec"].get("provisionername") or "")
    existing = await context.client.get_or_none(at(context.deployments_path, deployment_name))
    owner = deployment_owner(tcfs)
    action = deployment_action(existing, desired, owner)
    if action is Action.NOT_OURS:
        what = f"Deployment {context.namespace}/{deployment_name}"
        found = conflict(DEPLOYMENT_NOT_OWNED, what, (existing or {}).get("metadata"), owner)
        conflicts += [found] if found else []

    if fs is None:
        ready, reason, message = False, "FileSystemMissing", "; ".join([missing, *(c.message for c in conflicts)])
        await _set_status(context, tcfs, None, ready=ready, reason=reason, message=message)
    else:
        ready, reason, message = readiness(fs, conflicts)
        await _set_status(context, tcfs, fs, ready=ready, reason=reason, message=message)
    if conflicts and previous != (reason, message):
        # Once per change of the condition: a conflict lasts until someone acts, resyncs must not repeat it.
        for found in conflicts:
            log.warning("Tcfs %s: %s", owner.name, found.message)
            context.post(tcfs, "Tcfs", found.reason, found.message, warning=True)
    if share_created:
        context.post(tcfs, "Tcfs", "ShareVolumeCreated", f"created {', '.join(share_created)}")
    if conflicts and fs is not None:
        return  # never point a provisioner at a share volume that is not ours, nor touch a foreign Deployment
    if existing is not None and action in (Action.UPDATE, Action.DELETE):
        await _change_deployment(context, action, existing, desired)
    elif action is Action.CREATE:
        await context.client.create(context.deployments_path, desired)
    else:
        return
    log.info("Tcfs %s: deployment %s %sd", owner.name, deployment_name, action.value)
    context.post(tcfs, "Tcfs", f"Deployment{action.value.capitalize()}d",
                 f"provisioner deployment {deployment_name} {action.value}d")  # fmt: skip


async def _change_deployment(
    context: OperatorContext, action: Action, existing: dict[str, Any], desired: dict[str, Any] | None
) -> None:
    """Replace or delete our Deployment, on condition that it is still the very object proven ours.

    The uid and resourceVersion read with it are preconditions: if anyone replaced or changed it since, the API
    server answers 409 Conflict and the Tcfs is reconciled again soon, with a fresh read (and a fresh proof).
    """
    metadata = existing["metadata"]
    name, namespace = metadata["name"], context.namespace
    path = at(context.deployments_path, name)
    try:
        if action is Action.UPDATE and desired is not None:
            body = {**desired, "metadata": {**desired["metadata"], "resourceVersion": metadata["resourceVersion"]}}
            await context.client.replace(path, body)
        elif action is Action.DELETE:
            preconditions = {"uid": metadata["uid"], "resourceVersion": metadata["resourceVersion"]}
            await context.client.delete(path, {"apiVersion": "v1", "kind": "DeleteOptions",
                                               "preconditions": preconditions})  # fmt: skip
    except ApiError as exc:
        if exc.status == 409:  # its status moved on (the Deployment controller), or worse: read and prove again
            raise Retry(f"Deployment {namespace}/{name} changed while being {action.value}d", 2) from None
        raise


def _ready_of(status: dict[str, Any]) -> tuple[str, str] | None:
    found = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return (str(found.get("reason", "")), str(found.get("message", ""))) if found else None


class _Missing(Exception):
    """The recorded file system is gone for good (the cloud said so): never replaced silently."""


async def _vanished(context: OperatorContext, cloud_id: str) -> bool:
    """True only when the cloud answers that the file system does not exist; an error means "don't know"."""
    try:
        return await context.storage.get_file_system(cloud_id) is None
    except CloudError as exc:
        log.warning("cannot verify file system %s (%s); keeping what the status says", cloud_id, exc.message)
        return False


class _Retry(Exception):
    def __init__(self, reason: str, message: str, delay: int, warn: bool = True) -> None:
        super().__init__(message)
        self.reason, self.message, self.delay, self.warn = reason, message, delay, warn


async def _locate(tcfs: dict[str, Any], context: OperatorContext) -> SharedFileSystem:
    status, spec, name = tcfs["status"], tcfs["spec"], tcfs["metadata"]["name"]
    if not spec.get("provisionername"):
        raise _Retry("InvalidSpec", f"Tcfs {name}: spec.provisionername is empty", _WAIT_CONFIG)
    if status.get("cfsserver") and status.get("cfsfilesystemid"):
        recorded = SharedFileSystem(
            str(status["cfsserver"]), str(status["cfsfilesystemid"]), str(status.get("cfsid", ""))
        )
        if recorded.cloud_id and await _vanished(context, recorded.cloud_id):
            raise _Missing(
                f"file system {recorded.cloud_id} recorded in the status no longer exists in the cloud; "
                "the provisioner was stopped. Restore it, or clear the status to create a new one"
            )
        return recorded
    try:
        if spec.get("fromExistCfs"):
            found = await context.storage.get_file_system(str(spec["fromExistCfs"]))
            if found is None:
                raise _Retry("FileSystemNotFound", f"fromExistCfs {spec['fromExistCfs']} does not exist", _WAIT_CONFIG)
        else:
            params = context.storage.with_defaults(tcfs_params(spec))
            found = await context.storage.ensure_file_system(
                FileSystemSpec(name=shared_fs_name(name), capacity_bytes=0, params=params)
            )
    except InvalidArgument as exc:
        raise _Retry("InvalidSpec", f"Tcfs {name}: {exc}", _WAIT_CONFIG) from None
    except CloudError as exc:
        if exc.kind is ErrorKind.PENDING:
            raise _Retry("Creating", exc.message, _WAIT_CREATING, warn=False) from None
        delay = _WAIT_CONFIG if exc.kind in (ErrorKind.INVALID, ErrorKind.DENIED) else _WAIT_CLOUD
        raise _Retry("CloudError", exc.message, delay) from None
    if not found.ready:
        raise _Retry("Creating", f"file system {found.id} is {found.state.value}", _WAIT_CREATING, warn=False)
    return SharedFileSystem(found.host, found.export_fsid, found.id)


async def _set_status(
    context: OperatorContext, tcfs: dict[str, Any], fs: SharedFileSystem | None, ready: bool, reason: str, message: str
) -> None:
    status = tcfs["status"]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch: dict[str, Any] = {
        "observedGeneration": tcfs["metadata"].get("generation", 0),
        "conditions": ready_condition(ready, reason, message, now, status.get("conditions")),
    }
    if fs is not None:
        patch.update(cfsserver=fs.server, cfsfilesystemid=fs.fsid, cfsid=fs.cloud_id)
    # ready_condition keeps the transition time while the status stays, so an unchanged status compares equal.
    if all(status.get(key) == value for key, value in patch.items()):
        return
    name = tcfs["metadata"]["name"]
    updated = await context.client.patch(at(context.tcfs_path, name) + "/status", {"status": patch})
    tcfs["status"] = {**status, **patch}
    # What the next reconcile starts from, even before the watch delivers this change.
    cached = context.tcfs.get(name)
    if updated and cached is not None and cached["metadata"].get("uid") == tcfs["metadata"].get("uid"):
        context.tcfs[name] = updated
