"""The external-provisioning protocol for sub-directory volumes, on three informers of :mod:`cfs_csi.kube`.

Claims of our StorageClass become a directory on the share and a PersistentVolume bound to the claim (the PV
controller of kube-controller-manager completes the binding). Released volumes are deleted, kept or archived
as the class says, and their PV object is removed. Both directions are idempotent: the PV name is derived
from the claim's uid, so a repeated event (or a second replica) finds the work already done.

Each claim and each released PV is worked on by one task at a time (:class:`Work`); a released PV whose
directory was handled is not handled again when the events of its own deletion arrive (the second pass found
the directory gone and the PV too: a 404 per delete). Every informer lists again every ``resync`` seconds,
which retries whatever failed.

Which directories other volumes own: the PV informer's cache, plus every PV this process created (put in the
cache at once, before the watch shows it), plus the provisions in flight (reservations). A fresh list of every
PV per claim and per delete made 200 claims cost O(n^2): 402 lists, 7.5 ms of CPU each at 200 PVs; the
reclaim's list alone was 5.5 of 23 ms per claim, and 3.7 MB. Why the cache is as good as that list here:

- a reclaim is started by an event of the very watch that fills the cache, so every PV change the API server
  ordered before that event is in the cache already; a watch that stalls delivers no event, so it starts no
  reclaim on stale facts (and a relist is a fresh list);
- a PV someone else creates just after that event escapes a list made a few milliseconds later as well as
  the cache: the window moves by the watch's delivery time, it does not open (for a provision the share
  settles it: a directory that appears while we create it is refused, :func:`.disk.provision_directory`);
- a PV still in the cache after its deletion only makes a path look taken: refused now, retried at a resync.

This module is the Kubernetes side only: ownership facts, events and PV objects. Everything on the share is
:mod:`.disk`, on a handle of the share root, in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cfs_csi.kube.classes import WaitingClaims, class_event
from cfs_csi.kube.events import EventPoster
from cfs_csi.kube.informer import Informer
from cfs_csi.kube.liveness import Liveness
from cfs_csi.kube.rest import ApiError, Client
from cfs_csi.metrics import record as metrics
from cfs_csi.provisioner import disk
from cfs_csi.provisioner.cloud import QuotaFailure, ShareQuotas
from cfs_csi.provisioner.ownership import Reservations, Verdict, conflict, reuse_existing, share_owners
from cfs_csi.provisioner.paths import DeleteAction, checked_relative, delete_action, directory_for
from cfs_csi.provisioner.quotas import (
    QuotaMode,
    QuotaPlan,
    claim_bytes,
    plan_quota,
    quota_mode,
    recorded_quota,
    set_may_have_happened,
)
from cfs_csi.provisioner.volumes import Share, persistent_volume, pv_name, released_ours, unsupported, wants_us
from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.quota import GIB, quota_path

log = logging.getLogger(__name__)
T = TypeVar("T")

PVS = "/api/v1/persistentvolumes"
CLAIMS = "/api/v1/persistentvolumeclaims"
CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


@dataclass
class Work:
    """Which claims and PVs are being worked on, and which released PVs were handled already (pure state).

    ``handled`` maps a PV name to its uid: the same name with another uid is another PV (recreated by hand) and
    is handled. An entry goes when the PV's DELETED event arrives (or a list no longer has it).
    """

    busy: set[str] = field(default_factory=set)
    handled: dict[str, str] = field(default_factory=dict)

    def start(self, key: str) -> bool:
        """True if the caller may work on ``key`` now (nobody is)."""
        if key in self.busy:
            return False
        self.busy.add(key)
        return True

    def finish(self, key: str) -> None:
        self.busy.discard(key)


def should_reclaim(kind: str, pv: dict[str, Any], provisioner: str, work: Work) -> bool:
    """Whether a PV event calls for cleaning up after it (pure, apart from forgetting a deleted PV)."""
    metadata = pv.get("metadata") or {}
    name = str(metadata.get("name", ""))
    if kind == "DELETED":
        work.handled.pop(name, None)
        return False
    if metadata.get("deletionTimestamp") or not released_ours(pv, provisioner):
        return False
    return work.handled.get(name) != metadata.get("uid") and f"pv/{name}" not in work.busy


@dataclass
class ProvisionerContext:
    name: str
    share: Share
    root: Path
    dir_mode: int
    client: Client
    reservations: Reservations = field(default_factory=Reservations)
    work: Work = field(default_factory=Work)
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)  # every PV by name: the informer's cache
    events: EventPoster | None = None
    #: Directory quotas on the share's file system (a backend built on first use); none without cloud access.
    quotas: ShareQuotas | None = None
    #: At most this many claims or PVs worked on at once: bounds memory and the API server's load.
    concurrency: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(8))
    #: The beats of its Lease loop and watches (``--health-port``'s ``/healthz``).
    liveness: Liveness = field(default_factory=Liveness)

    def __post_init__(self) -> None:
        if self.events is None:
            # Aggregated: a claim that keeps failing shows one Event counting up, not one per retry or resync.
            self.events = EventPoster(self.client, self.name, aggregate=True)
        if self.quotas is None:
            self.quotas = ShareQuotas(self.share.cloud_id, None)


class Provisioner:
    """The three informers and the tasks they start, for one :class:`ProvisionerContext`."""

    def __init__(self, context: ProvisionerContext, resync: float = 60.0) -> None:
        self.context = context
        self.resync = resync
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting = WaitingClaims()  # claims whose class is not seen yet (:mod:`cfs_csi.kube.classes`)

    async def run(self) -> None:
        """Until cancelled: StorageClasses first (claims are judged by their class), then claims and PVs."""
        client = self.context.client
        live = self.context.liveness
        classes = Informer(client, CLASSES, self._class_event, self.resync, live)
        claims = Informer(client, CLAIMS, self._claim_event, self.resync, live)
        volumes = Informer(client, PVS, self._volume_event, self.resync, live)
        async with asyncio.TaskGroup() as group:
            group.create_task(classes.run())
            await classes.synced.wait()
            group.create_task(volumes.run())
            await volumes.synced.wait()  # the ownership cache is complete before the first claim is judged
            group.create_task(claims.run())

    def _spawn(self, key: str, work: Callable[[], Any]) -> None:
        """Run ``work()`` as the one task for ``key``; an error is logged and retried at the next resync."""
        if not self.context.work.start(key):
            return

        async def guarded() -> None:
            started = time.monotonic()
            try:
                async with self.context.concurrency:
                    await work()
            except Exception as exc:
                metrics.provision("provision" if key.startswith("claim/") else "delete", "error",
                                  time.monotonic() - started)  # fmt: skip
                log.warning("%s failed, retried at the next resync: %s", key, exc)
            finally:
                self.context.work.finish(key)

        task = asyncio.create_task(guarded(), name=key)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _class_event(self, kind: str, storage_class: dict[str, Any]) -> None:
        for claim in class_event(self.context.classes, self._waiting, kind, storage_class):
            self._claim_event("MODIFIED", claim)

    def _claim_event(self, kind: str, claim: dict[str, Any]) -> None:
        class_name = (claim.get("spec") or {}).get("storageClassName") or ""
        uid = str(claim["metadata"].get("uid", ""))
        if kind == "DELETED":
            self._waiting.drop(class_name, uid)
            return
        storage_class = self.context.classes.get(class_name)
        if storage_class is None:
            if class_name and (claim.get("status") or {}).get("phase") != "Bound":
                self._waiting.add(class_name, uid, claim)
            return
        if wants_us(claim, storage_class, self.context.name) is not None:
            return
        metadata = claim["metadata"]
        log.debug("claim %s/%s (%s) is ours to provision", metadata.get("namespace"), metadata.get("name"), kind)
        self._spawn(f"claim/{claim['metadata']['uid']}", lambda: provision(claim, storage_class, self.context))

    def _volume_event(self, kind: str, pv: dict[str, Any]) -> None:
        name = str(pv["metadata"]["name"])
        if kind == "DELETED":
            self.context.volumes.pop(name, None)
        else:
            self.context.volumes[name] = pv
        if not should_reclaim(kind, pv, self.context.name, self.context.work):
            return
        storage_class = self.context.classes.get((pv.get("spec") or {}).get("storageClassName") or "")
        log.debug("volume %s (%s) is released and ours to clean up", name, kind)
        self._spawn(f"pv/{pv['metadata']['name']}", lambda: reclaim(pv, storage_class, self.context))


def _warn(context: ProvisionerContext, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
    assert context.events is not None
    context.events.post(obj, kind, reason, message, warning=True)


def _info(context: ProvisionerContext, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
    assert context.events is not None
    context.events.post(obj, kind, reason, message)


async def provision(claim: dict[str, Any], storage_class: dict[str, Any], context: ProvisionerContext) -> None:
    volume = pv_name(claim)
    client = context.client
    # The cache answers for a claim event that arrives after our PV (before the binding); the read for one
    # the cache has not seen, whose PV a previous run may have made a moment ago.
    if volume in context.volumes or await client.get_or_none(f"{PVS}/{volume}") is not None:
        return
    where = f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"
    started = time.monotonic()

    def refuse(reason: object) -> None:
        metrics.provision("provision", "refused", time.monotonic() - started)
        _warn(context, claim, "PersistentVolumeClaim", "ProvisioningFailed",
              f"failed to provision volume for claim {where}: {reason}")  # fmt: skip

    problem = unsupported(claim)
    if problem:
        refuse(problem)
        return
    _info(context, claim, "PersistentVolumeClaim", "Provisioning",
          f'External provisioner is provisioning volume for claim "{where}"')  # fmt: skip
    metadata = claim["metadata"]
    parameters = {k.lower(): v for k, v in (storage_class.get("parameters") or {}).items()}
    try:
        directory = directory_for(parameters.get("pathpattern", ""), metadata["namespace"], metadata["name"], volume,
                                  metadata.get("labels") or {}, metadata.get("annotations") or {})  # fmt: skip
        reuse = reuse_existing(parameters)
        plan = plan_quota(quota_mode(parameters), directory, claim_bytes(claim))
    except InvalidArgument as exc:
        refuse(exc)
        return
    if plan.refusal:  # a required quota that cannot be: refused before anything is made
        refuse(plan.refusal)
        return
    # Reserve before listing: a provision that finished earlier has its PV in the list, one still running
    # holds its reservation; either way two claims can never both decide that a path is free.
    busy = context.reservations.reserve(volume, directory)
    if busy:  # a PV in the way is the lasting reason; the provision in flight may yet be refused itself
        refuse(conflict(directory, volume, _known_owners(context)) or busy)
        return
    try:
        owners = {**_known_owners(context), **context.reservations.owners()}
        try:
            verdict = await _on_share(context, disk.provision_directory, directory, volume, owners, reuse,
                                      context.dir_mode)  # fmt: skip
        except InvalidArgument as exc:
            refuse(exc)
            return
        try:
            quota_bytes, warning = await _set_quota(context, plan, verdict, directory, volume, owners)
        except QuotaRefused as exc:
            refuse(exc)
            return
        pv = persistent_volume(claim, storage_class, context.name, context.share, directory, quota_bytes)
        try:
            created = await client.create(PVS, pv)
            context.volumes.setdefault(volume, created)  # owned from now on, even before the watch shows it
        except ApiError as exc:
            if exc.status != 409:
                _warn(context, claim, "PersistentVolumeClaim", "ProvisioningFailed",
                      f"creating PV {volume} failed: {exc.reason or exc.message}")  # fmt: skip
                raise
    finally:
        context.reservations.release(volume)
    try:
        await _on_share(context, disk.forget_owner, volume)
    except OSError as exc:  # harmless: a record only matters while its volume has no PV, and this one has
        log.warning("could not remove the owner record of %s: %s", volume, exc)
    if warning is not None:
        _warn(context, claim, "PersistentVolumeClaim", *warning)
    quota = f"quota {quota_bytes // GIB} GiB" if quota_bytes else "no quota"
    log.info("provisioned %s for %s in %s (%s, %s)", volume, where, directory, verdict.value, quota)
    done = f"Successfully provisioned volume {volume}"
    if quota_bytes:
        done += f" with a directory quota of {quota_bytes // GIB} GiB" + (f" ({plan.note})" if plan.note else "")
    _info(context, claim, "PersistentVolumeClaim", "ProvisioningSucceeded", done)
    metrics.provision("provision", "ok", time.monotonic() - started)


class QuotaRefused(InvalidArgument):
    """A required quota could not be set; what was made for the claim is gone again (or will be at a retry)."""


async def _set_quota(
    context: ProvisionerContext, plan: QuotaPlan, verdict: Verdict, directory: str, volume: str,
    owners: dict[str, str],
) -> tuple[int | None, tuple[str, str] | None]:  # fmt: skip
    """Set the claim's quota on its new directory: (quota bytes for the PV, Warning (reason, message) or None).

    Idempotent: a retry after a crash (:attr:`Verdict.RESUME`) sets the same quota again. A required quota that
    fails raises :class:`QuotaRefused` after undoing the directory this provision made, and the quota too where
    the failed call may have set it; if that quota cannot be removed (cloud down), the directory and its owner
    record stay so that the retry finds them, and the error says so.
    """
    assert context.quotas is not None
    if plan.mode is QuotaMode.OFF:
        return None, None
    if not plan.capacity_gib:  # best-effort: a required class was refused before the directory was made
        return None, ("QuotaNotSet", f"no directory quota was set: {plan.problem}")
    try:
        quota = await context.quotas.set(plan.path, plan.capacity_gib)
    except QuotaFailure as failure:
        ours = verdict is not Verdict.REUSE  # a reused directory is someone's: its quota is not ours to remove
        leftover = await _undo_quota(context, plan.path, failure) if ours else None
        why = f"the directory quota of {plan.path} ({plan.capacity_gib} GiB) could not be set: {failure.message}"
        if plan.mode is QuotaMode.BEST_EFFORT:
            return None, ("QuotaNotSet", f"no directory quota was set: {why}{leftover or ''}")
        if leftover:
            raise QuotaRefused(f"{QUOTA_REQUIRED}, and {why}{leftover}; the directory is kept until it can be "
                               "removed, at a retry") from None  # fmt: skip
        if ours:
            await _on_share(context, disk.reclaim_directory, directory, volume, owners, DeleteAction.DELETE)
        raise QuotaRefused(f"{QUOTA_REQUIRED}, and {why}") from None
    quota_bytes = quota.capacity_bytes or plan.capacity_gib * GIB
    if plan.problem:  # best-effort: raised to the minimum
        return quota_bytes, ("QuotaNotExact", f"directory quota set to {quota_bytes // GIB} GiB: {plan.problem}")
    return quota_bytes, None


QUOTA_REQUIRED = "directoryQuota is required by the StorageClass"


async def _undo_quota(context: ProvisionerContext, path: str, failure: QuotaFailure) -> str | None:
    """Remove a quota that a failed set may have left; ``None`` when there is none left, else what is wrong."""
    assert context.quotas is not None
    if not set_may_have_happened(failure.kind):
        return None
    try:
        await context.quotas.delete(path)
    except QuotaFailure as again:
        log.warning("a quota may be left on %s: removing it failed too: %s", path, again.message)
        return f" (it may have been set, and removing it failed too: {again.message})"
    return None


def _known_owners(context: ProvisionerContext) -> dict[str, str]:
    """Every directory of the share that a PV names, as the informer's cache (with our own writes) has them."""
    return share_owners(context.volumes.values(), context.share.server, context.share.fsid)


async def _on_share(context: ProvisionerContext, work: Callable[..., T], *args: Any) -> T:
    """Run ``work(root_fd, *args)`` in a thread, with a fresh handle of the share root."""

    def run() -> T:
        with disk.share_root(context.root) as root_fd:
            return work(root_fd, *args)

    return await asyncio.to_thread(run)


async def reclaim(pv: dict[str, Any], storage_class: dict[str, Any] | None, context: ProvisionerContext) -> None:
    metadata = pv["metadata"]
    name = metadata["name"]
    attributes = ((pv.get("spec") or {}).get("csi") or {}).get("volumeAttributes") or {}
    action = delete_action((storage_class or {}).get("parameters") if storage_class else None)
    started = time.monotonic()
    try:
        if attributes.get("host") != context.share.server or attributes.get("fsid", "") != context.share.fsid:
            raise InvalidArgument(f"it belongs to {attributes.get('host')}:{attributes.get('fsid')}, not to this share")
        # Only PVs: a provision in flight cannot overlap this PV's directory, since this PV still exists and
        # is in that provision's owners (it is deleted below, after the directory).
        owners = _known_owners(context)
        quota = await _release_quota(context, name, str(attributes.get("path", "")), attributes, owners, action)
        done = await _on_share(context, disk.reclaim_directory, str(attributes.get("path", "")), name, owners, action)
    except InvalidArgument as exc:
        metrics.provision("delete", "refused", time.monotonic() - started)
        _warn(context, pv, "PersistentVolume", "VolumeFailedDelete", f"refusing to touch the share for {name}: {exc}")
        return  # looked at again at the next resync: the PV in the way may be gone by then
    except QuotaFailure as failure:
        metrics.provision("delete", "error", time.monotonic() - started)
        _warn(context, pv, "PersistentVolume", "VolumeFailedDelete",
              f"the directory quota of {name} could not be removed, so its directory is left as it is until a "
              f"retry: {failure.message}")  # fmt: skip
        return
    log.info("volume %s released: directory %s %s (%s)", name, attributes.get("path"), done, quota)
    context.work.handled[name] = str(metadata.get("uid"))
    try:
        # On condition that it is still the PV we looked at: one recreated under the same name is not ours to drop.
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": metadata.get("uid")}}
        await context.client.delete(f"{PVS}/{name}", options)
    except ApiError as exc:
        if exc.status not in (404, 409):
            context.work.handled.pop(name, None)
            raise
    metrics.provision("delete", "ok", time.monotonic() - started)


async def _release_quota(
    context: ProvisionerContext, name: str, path: str, attributes: dict[str, Any], owners: dict[str, str],
    action: DeleteAction,
) -> str:  # fmt: skip
    """Remove the quota the PV records, before its directory is deleted or archived; what was done.

    Only for a PV whose directory the reclaim may touch (the same checks as :func:`.disk.reclaim_directory`,
    made first: a plain path below the share that no other PV's directory is, contains or is inside), and only
    on the share's own file system. Before the directory goes: the quota API names a directory by its path,
    which an archive's rename changes. A kept (retained) directory keeps its quota.
    """
    assert context.quotas is not None
    if recorded_quota(attributes) is None:
        return "no quota recorded"
    if action is DeleteAction.RETAIN:
        return "its quota kept"
    directory = checked_relative(path)
    reason = conflict(directory, name, owners)
    if reason:
        raise InvalidArgument(f"{reason}; leaving it and its quota")
    await context.quotas.delete(quota_path(directory))
    return "its quota removed"
