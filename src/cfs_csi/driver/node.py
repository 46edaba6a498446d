"""CSI Node: mount a file system (or a sub-directory of one) into a pod's target path, and report on it.

No staging: an NFS mount has no device to attach or format, so each publish mounts directly. The mount
table is the source of truth for what is mounted; targets are removed with ``rmdir`` only, so a failed
unmount can never turn into deleting the volume's data.

The node acts only strictly below ``<kubelet dir>/pods/`` (:mod:`cfs_csi.mount.podpath`), reaches every target
from a handle of that directory without following a symlink (:mod:`cfs_csi.mount.targets`), and removes or
unmounts only what it can show is its own: a target whose publication record names the volume, or that is
mounted. Answers for a path the node will not act on:

- NodePublishVolume, NodeUnpublishVolume: INVALID_ARGUMENT. The spec keeps NOT_FOUND for "no such volume"; a
  path outside the pods directory, with a symlink or a file in it, or too long, is a bad argument, and no retry
  can fix it. (Unpublishing a target that does not exist below the pods directory is OK, as the spec's
  idempotency asks.)
- NodeUnpublishVolume of volume A at a target recorded for volume B: NOT_FOUND, the spec's code for "no volume
  with this id here", and the same answer NodeGetVolumeStats gives for the same fact. Nothing is unmounted: the
  caller named the wrong volume, and only the owner of B's publication may take it down.
- NodeGetVolumeStats outside the pods directory (or relative): NOT_FOUND, as the spec and csi-sanity ask ("no
  volume at that path"); a malformed path is INVALID_ARGUMENT.

Shared volumes with a directory quota (issue 16): the PV's ``quotaBytes`` is kept in the publication record, and
NodeGetVolumeStats reports the quota as the total and what a bounded walk finds below the target as used
(:mod:`cfs_csi.mount.usage`; the file system's figures, said to be so, when the walk cannot finish). NodeExpandVolume
records a raised quota in every publication of the volume on this node; a pod that publishes the volume later on
this node keeps the larger one, but one on another node starts from the PV's (creation-time) attribute, since
nothing the node may read says more (no cloud or API access; the volume's content is the pod's to forge).

When the file server hangs, fails or dies (issue 12):

- NodeGetVolumeStats runs at most one ``statvfs`` per path (:mod:`cfs_csi.mount.stats`): a hung volume answers
  abnormal at once on later calls and costs the others nothing.
- A ``mount``/``umount`` is killed when its call times out, is cancelled or the plugin stops; one stuck in the
  kernel keeps the target locked (ABORTED to retries) until it exits, across a restart too
  (:mod:`cfs_csi.driver.locks`).
- The unmount ladder re-reads the mount table after each step and ends before the caller's deadline.
- NodePublishVolume at a target holding a broken (ESTALE, EIO, ENOTCONN) mount of the same volume unmounts it and
  mounts again; a mount that does not answer is left in place (UNAVAILABLE). A failed publish removes the
  directories it created.
- At start-up, records of targets that are gone are dropped; nothing is unmounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from cfs_csi.cloud.deadline import remaining
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.capabilities import unsupported_reason
from cfs_csi.driver.errors import CsiError, StatusCode, invalid, not_found, require
from cfs_csi.driver.grpcserve import CallContext
from cfs_csi.driver.locks import InFlight, TargetLocks
from cfs_csi.driver.published import (
    Publication,
    PublishedVolumes,
    TargetState,
    keep_record,
    largest_quota,
    quota_after_expansion,
)
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.heal import Action, Health, existing_mount_action
from cfs_csi.mount.mounter import Mounter, ladder_budget, unmount
from cfs_csi.mount.mountinfo import MountTable, MountWatch
from cfs_csi.mount.mountpoint import is_mount_root, walk_crosses_mount
from cfs_csi.mount.podpath import OutsidePods, PodPath, pod_path
from cfs_csi.mount.stats import StatsProbes
from cfs_csi.mount.targets import (
    OpenPods,
    OpenTarget,
    PodsDir,
    PodsDirMissing,
    TargetRef,
    check_is_directory,
    fs_is_local,
    in_thread,
    in_thread_unless,
    remove_target,
    try_remove_target,
    walk_is_local,
)
from cfs_csi.mount.usage import QUOTA_ATTRIBUTE, Budget, UsageProbes, quota_of, report
from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.handles import shared_handle
from cfs_csi.volume.nfs import NfsMount, nfs_mount_for
from cfs_csi.volume.params import NfsVersion

log = logging.getLogger(__name__)

_NODE_RPC = csi_pb2.NodeServiceCapability.RPC
CAPABILITIES = (
    _NODE_RPC.GET_VOLUME_STATS,
    _NODE_RPC.VOLUME_CONDITION,
    _NODE_RPC.SINGLE_NODE_MULTI_WRITER,
    _NODE_RPC.EXPAND_VOLUME,
)
_SINGLE_WRITER = csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER

#: Stacked mounts at one target are unmounted one by one, up to this many.
_MAX_STACKED = 8


@dataclass(frozen=True)
class NodeTimeouts:
    mount: float = 90.0
    unmount: float = 60.0
    stats: float = 10.0


class NodeServicer:
    def __init__(
        self,
        node_id: str,
        mounter: Mounter,
        published: PublishedVolumes,
        timeouts: NodeTimeouts,
        pods: PodsDir,
        target_locks: TargetLocks | None = None,
        usage_budget: Budget | None = None,
    ) -> None:
        self._node_id = node_id
        self._mounter = mounter
        self._published = published
        self._timeouts = timeouts
        self._pods = pods
        self._in_flight = InFlight(target_locks)
        self._stats = StatsProbes()
        #: Walks below shared volumes' targets, for stats against their quota (:mod:`cfs_csi.mount.usage`).
        self._usage = UsageProbes(usage_budget)
        #: The mount table, read again only after it changed (:class:`~cfs_csi.mount.mountinfo.MountWatch`).
        self._mounts = MountWatch()
        #: The pods directory is on a local file system (checked by :meth:`reconcile` at start-up): walks below it
        #: that cross no mount point run inline instead of in a thread (:func:`~cfs_csi.mount.targets.walk_is_local`).
        self._pods_local = False

    def reconcile(self) -> None:
        """At start-up: compare the publication records with what is mounted below the pods directory.

        A previous run may have been killed between a mount and its record, or the kubelet may have cleaned up
        while the plugin was down. Records of targets that no longer exist are dropped; everything else is only
        reported (:func:`~cfs_csi.driver.published.keep_record`): the plugin never unmounts at start-up.
        """
        try:
            pods = self._pods.open()
        except PodsDirMissing as exc:
            log.warning("not reconciling publication records: %s", exc)
            return
        with contextlib.closing(pods):
            table = self._mounts.table()
            self._pods_local = fs_is_local(table, pods.real_path)
            recorded: set[str] = set()
            for publication in self._published.all():
                state = self._state_of(publication.target_path, pods, table)
                if state is not TargetState.OUTSIDE:
                    recorded.add(pods.real(pod_path(self._pods.path, publication.target_path)))
                if not keep_record(state):
                    log.info("%s (volume %s) no longer exists; dropping its publication record",
                             publication.target_path, publication.volume_id)  # fmt: skip
                    self._published.forget(publication.target_path)
                elif state is TargetState.UNMOUNTED:
                    log.warning("%s should hold volume %s but nothing is mounted there (kept; stats report it)",
                                publication.target_path, publication.volume_id)  # fmt: skip
            prefix = pods.real_path.rstrip("/") + "/"
            unknown = [e.mount_point for e in table.entries if e.mount_point.startswith(prefix)]
            unknown = [point for point in unknown if point not in recorded]
            if unknown:
                log.info("%d mounts below %s have no publication record of this plugin and are left alone "
                         "(another driver's, or mounted by hand): %s", len(unknown), self._pods.path,
                         ", ".join(unknown[:10]))  # fmt: skip

    def _state_of(self, target_path: str, pods: OpenPods, table: MountTable) -> TargetState:
        try:
            target = pod_path(self._pods.path, target_path)
        except InvalidArgument:
            return TargetState.OUTSIDE
        if table.at(pods.real(target)) is not None:
            return TargetState.MOUNTED
        try:
            ref = pods.open_parent(target)
        except InvalidArgument:
            return TargetState.OUTSIDE
        if ref is None:
            return TargetState.GONE
        with contextlib.closing(ref):
            try:
                os.stat(ref.name, dir_fd=ref.parent_fd, follow_symlinks=False)
            except FileNotFoundError:
                return TargetState.GONE
        return TargetState.UNMOUNTED

    def _inline(self, table: MountTable, pods: OpenPods, target: PodPath, include_target: bool) -> bool:
        """Whether a walk to ``target`` cannot block, so that it runs without a thread hop."""
        return self._pods_local and walk_is_local(table, pods.real_path, target, include_target)

    def _target(self, path: str, field: str) -> PodPath:
        return pod_path(self._pods.path, require(path, field))

    def _open_pods(self) -> contextlib.closing[OpenPods]:
        try:
            return contextlib.closing(self._pods.open())
        except PodsDirMissing as exc:
            raise CsiError(StatusCode.FAILED_PRECONDITION, str(exc)) from None

    async def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest, context: CallContext
    ) -> csi_pb2.NodePublishVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        target = self._target(request.target_path, "target_path")
        if not request.HasField("volume_capability"):
            raise invalid("volume_capability is required")
        reason = unsupported_reason(request.volume_capability)
        if reason:
            raise invalid(reason)
        nfs = nfs_mount_for(request.volume_context, request.volume_capability.mount.mount_flags, request.readonly)
        exclusive = request.volume_capability.access_mode.mode == _SINGLE_WRITER
        keys = (f"volume/{volume_id}", f"target/{target.path}")
        with self._in_flight.hold(*keys, target=target.path), self._open_pods() as pods:
            self._check_exclusive(volume_id, target, exclusive, pods)
            real = pods.real(target)
            # Without the mount table where the kernel can tell (statx): no component down to the target is a
            # mount point, so nothing is mounted at the target and the walk stays on the pods directory's own file
            # system. Otherwise (a mount on the way, or an old kernel) the table decides, as it always did.
            crosses = walk_crosses_mount(pods.fd, target.parts)
            table = None if crosses is False else self._mounts.table()
            found = table is not None and table.at(real) is not None
            if not (found and await self._keep_existing(volume_id, nfs, target, real, pods)):
                before = self._mounts.table() if found else table
                inline = self._pods_local if before is None else self._inline(before, pods, target, True)
                with contextlib.closing(await in_thread_unless(inline, lambda: pods.make_target(target))) as opened:
                    if is_mount_root(opened.fd):  # a mount appeared there since the check: never stack on it
                        raise CsiError(StatusCode.ABORTED, f"{target.path} was mounted meanwhile; try again")
                    log.debug("mounting %s at %s with options %s", nfs.source, target.path, ",".join(nfs.options))
                    try:
                        await self._mounter.mount(nfs, opened)
                        await self._check_mounted(opened, real, nfs, before)
                    except BaseException:
                        if self._mounts.table().at(real) is None:  # leave the directories as they were
                            await in_thread(lambda: pods.remove_created(opened))
                        raise
            self._published.record(
                Publication(
                    volume_id=volume_id,
                    target_path=target.path,
                    source=nfs.source,
                    exclusive=exclusive,
                    quota_bytes=self._quota_at_publish(volume_id, request.volume_context),
                    nfs_version=nfs.vers.value,
                )
            )
            self._usage.forget(real)
        return csi_pb2.NodePublishVolumeResponse()

    def _quota_at_publish(self, volume_id: str, context: Mapping[str, str]) -> int | None:
        """The quota a new publication records: the volume context's (the PV's, as created), or a larger one that
        NodeExpandVolume gave this volume's other publications on this node (quotas are only ever raised)."""
        if shared_handle(volume_id) is None:
            return None
        from_context = quota_of(context)
        if from_context is None and context.get(QUOTA_ATTRIBUTE):
            log.warning("volume %s: ignoring %s %r, not a byte count", volume_id, QUOTA_ATTRIBUTE,
                        context.get(QUOTA_ATTRIBUTE, "")[:40])  # fmt: skip
        known = [q for q in (from_context, largest_quota(self._published.of_volume(volume_id))) if q is not None]
        return max(known) if known else None

    async def _keep_existing(self, volume_id: str, nfs: NfsMount, target: PodPath, real: str, pods: OpenPods) -> bool:
        """True if a mount of this volume that answers is at the target already; False if nothing is (any more).

        A broken mount of this very volume (ESTALE, EIO, ENOTCONN) is taken down first, so the caller mounts
        again (:mod:`cfs_csi.mount.heal`); one that does not answer is left in place (UNAVAILABLE), and another
        volume's is refused (ALREADY_EXISTS).
        """
        record = self._published.get(target.path)
        recorded = record is not None and record.volume_id == volume_id and record.source == nfs.source
        for _ in range(_MAX_STACKED):
            table = self._mounts.table()
            existing = table.at(real)
            if existing is None:
                return False
            health = await self._health(real)
            # Telling a hung mount's export may itself hang (the bind mounter looks at the export): it is answered
            # UNAVAILABLE and left alone whichever volume it is, so it is not asked. A broken one is this volume's
            # if our record says so (a server that came back may show the export as another device).
            same = (
                health is Health.HUNG
                or (health is Health.STALE and recorded)
                or await asyncio.to_thread(self._mounter.is_mount_of, nfs, existing, table)
            )
            action = existing_mount_action(health, same, existing.read_only == nfs.read_only)
            if action is Action.KEEP:
                return True
            if action is Action.REFUSE:
                raise CsiError(
                    StatusCode.ALREADY_EXISTS,
                    f"{target.path} is already mounted from {existing.source} "
                    f"({'ro' if existing.read_only else 'rw'}), not from {nfs.source} as requested",
                )
            if action is Action.WAIT:
                raise CsiError(
                    StatusCode.UNAVAILABLE,
                    f"{target.path} is mounted from {existing.source} but its server does not answer; left in place",
                )
            log.warning("%s: the mount of %s there is broken; unmounting it to mount again", target.path, nfs.source)
            ref = await in_thread(lambda: pods.open_parent(target))
            if ref is None:
                return False
            with contextlib.closing(ref):
                await unmount(ref, self._ladder_time(), self._mounted_check(real), syscall=self._by_syscall(nfs.vers))
        raise CsiError(StatusCode.INTERNAL, f"{target.path} is still mounted after {_MAX_STACKED} unmounts")

    async def _health(self, real: str) -> Health:
        try:
            await self._stats.stats(real, min(self._timeouts.stats, max(remaining(math.inf) / 2, 0.0)))
        except MountError as exc:
            if exc.kind is MountErrorKind.STALE:
                return Health.STALE
            if exc.kind is MountErrorKind.TIMEOUT:
                return Health.HUNG
            raise
        return Health.OK

    def _by_syscall(self, version: str | None) -> bool:
        """umount2(2) instead of umount(8) for a mount of this NFS version (issue 15; the mounter decides). A
        version read back from a record that is not one we know counts as unknown."""
        return self._mounter.unmounts_by_syscall(next((known for known in NfsVersion if known == version), None))

    def _ladder_time(self) -> float:
        return ladder_budget(self._timeouts.unmount, remaining(math.inf))

    @staticmethod
    def _mounted_at(ref: TargetRef, real: str, table: MountTable | None) -> bool:
        """Whether something is mounted at the target: from ``table`` when given, else asked of the kernel for the
        target's name below its parent's handle (the handle ``umount`` acts through)."""
        if table is not None:
            return table.at(real) is not None
        try:
            return bool(is_mount_root(ref.parent_fd, ref.name))
        except FileNotFoundError:
            return False

    def _mounted_check(self, real: str) -> Callable[[], bool]:
        return lambda: self._mounts.table().at(real) is not None

    async def _check_mounted(self, target: OpenTarget, real: str, nfs: NfsMount, before: MountTable | None) -> None:
        """The mount must show at the target, read-only if asked: roll it back otherwise.

        The mount went onto the target's handle, so this holds unless a mount helper resolved the handle back to a
        path string (``mount.nfs`` may) and a component was swapped in between. Such a mount is refused, not
        trusted; where it went is logged for the admin (mounts new since ``before``, or since the table was last
        read), never unmounted by a path that the same swap could redirect again.

        Where the kernel can tell (statx), the target's name below its parent's handle must be a mount point; a
        read-write mount needs no more (no table read), a read-only one is checked in the table for ``ro``. (A
        mount asked read-write that came out read-only is therefore not refused there: it takes rights away only.)
        """
        read_only = nfs.read_only
        try:
            at_target = is_mount_root(target.parent_fd, target.name)
        except FileNotFoundError:
            at_target = False
        if at_target and not read_only:
            return
        previous = before or self._mounts.last()  # taken before the read below replaces it
        after = self._mounts.table()
        entry = after.at(real) if at_target is not False else None
        if entry is not None and entry.read_only == read_only:
            return
        if entry is not None:
            syscall = self._by_syscall(nfs.vers)
            await unmount(target, self._ladder_time(), self._mounted_check(real), syscall=syscall)
        known = {(old.mount_id, old.mount_point) for old in previous.entries}
        elsewhere = [new.mount_point for new in after.entries if (new.mount_id, new.mount_point) not in known]
        elsewhere = [point for point in elsewhere if entry is None or point != entry.mount_point]
        log.error("the mount for %s did not show there as asked (%s); new mounts elsewhere: %s", target.path,
                  entry, elsewhere)  # fmt: skip
        raise CsiError(StatusCode.INTERNAL, f"the mount did not show at {target.path} as asked; rolled back")

    def _check_exclusive(self, volume_id: str, target: PodPath, exclusive: bool, pods: OpenPods) -> None:
        """SINGLE_NODE_SINGLE_WRITER: refuse a second target while another still holds the volume."""
        for other in self._published.of_volume(volume_id):
            if other.target_path == target.path or not (exclusive or other.exclusive):
                continue
            table = self._mounts.table()
            try:
                other_real = pods.real(pod_path(self._pods.path, other.target_path))
            except InvalidArgument:
                other_real = other.target_path  # recorded before --kubelet-dir existed
            if table.at(other_real):
                raise CsiError(
                    StatusCode.FAILED_PRECONDITION,
                    f"volume {volume_id} is published for a single writer at {other.target_path}",
                )

    async def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest, context: CallContext
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        target = self._target(request.target_path, "target_path")
        keys = (f"volume/{volume_id}", f"target/{target.path}")
        with self._in_flight.hold(*keys, target=target.path), self._open_pods() as pods:
            publication = self._published.get(target.path)
            if publication is not None and publication.volume_id != volume_id:
                raise not_found(f"{target.path} holds volume {publication.volume_id}, not {volume_id}; left as is")
            real = pods.real(target)
            # As in publish: the table only where the kernel cannot tell, or a mount is on the way to the parent.
            crosses = walk_crosses_mount(pods.fd, target.parent)
            table = None if crosses is False else self._mounts.table()
            # The target itself is not entered.
            inline = self._pods_local if table is None else self._inline(table, pods, target, include_target=False)
            ref = await in_thread_unless(inline, lambda: pods.open_parent(target))
            if ref is None:  # a component is missing: nothing there, already unpublished
                self._published.forget(target.path)
                return csi_pb2.NodeUnpublishVolumeResponse()
            with contextlib.closing(ref):
                syscall = self._by_syscall(publication.nfs_version if publication is not None else None)
                unmounted = False
                removed: bool | None = None  # what rmdir right after an unmount said (None: still a mount point)
                end = time.monotonic() + self._ladder_time()  # all stacked mounts together
                for step in range(_MAX_STACKED):
                    # After the first unmount, only when rmdir said EBUSY: another mount is stacked underneath.
                    if not self._mounted_at(ref, real, table if step == 0 else self._mounts.table()):
                        break
                    await unmount(ref, end - time.monotonic(), self._mounted_check(real), syscall=syscall)
                    unmounted = True
                    removed = await in_thread_unless(inline, lambda: try_remove_target(ref))
                    if removed is not None:
                        break
                else:
                    raise CsiError(StatusCode.INTERNAL, f"{target.path} is still mounted after {_MAX_STACKED} unmounts")
                if not unmounted:
                    await in_thread_unless(inline, lambda: check_is_directory(ref))
                if publication is None and not unmounted:
                    # Never published here (no record) and nothing mounted: not ours to remove.
                    log.info("%s holds no publication and no mount; leaving it as it is", target.path)
                    return csi_pb2.NodeUnpublishVolumeResponse()
                if removed is None:
                    removed = await in_thread_unless(inline, lambda: remove_target(ref))
                if not removed:
                    # Data written into the bare directory while nothing was mounted: keep it, and say so.
                    log.warning("target %s is not an empty directory after unmount; leaving it in place", target.path)
            self._published.forget(target.path)
            self._usage.forget(real)
        return csi_pb2.NodeUnpublishVolumeResponse()

    async def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest, context: CallContext
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        volume_id = require(request.volume_id, "volume_id")
        try:
            target = self._target(request.volume_path, "volume_path")
        except OutsidePods as exc:
            raise not_found(f"volume {volume_id} is not published there: {exc}") from None
        path = target.path
        publication = self._published.get(path)
        with self._open_pods() as pods:
            real = pods.real(target)
        mounted = self._mounts.table().at(real) is not None
        if publication is not None and publication.volume_id != volume_id:
            raise not_found(f"{path} holds volume {publication.volume_id}, not {volume_id}")
        if publication is None and not mounted:
            raise not_found(f"volume {volume_id} is not published at {path}")
        if not mounted:
            return _abnormal(f"{path} should hold volume {volume_id} but nothing is mounted there")
        try:
            # The mount table names this path, so no component of it is a symlink.
            stats = await self._stats.stats(real, self._timeouts.stats)
        except MountError as exc:
            if exc.kind in (MountErrorKind.STALE, MountErrorKind.TIMEOUT):
                return _abnormal(f"{exc.message}; the pod may need to be restarted to remount")
            raise
        quota = publication.quota_bytes if publication is not None else None
        # A shared volume with a quota: what is used below the target (a walk, cached; off the event loop).
        walked = await self._usage.usage(real, self._timeouts.stats) if quota is not None else None
        figures = report(quota, walked, stats)
        if walked is not None and not walked.complete:
            log.info("%s (volume %s): %s", path, volume_id, walked.reason)
        usage = [
            csi_pb2.VolumeUsage(
                unit=csi_pb2.VolumeUsage.BYTES,
                total=figures.bytes.total,
                available=figures.bytes.available,
                used=figures.bytes.used,
            ),
            csi_pb2.VolumeUsage(
                unit=csi_pb2.VolumeUsage.INODES,
                total=figures.inodes.total,
                available=figures.inodes.available,
                used=figures.inodes.used,
            ),
        ]
        return csi_pb2.NodeGetVolumeStatsResponse(
            usage=usage, volume_condition=csi_pb2.VolumeCondition(abnormal=False, message=figures.message)
        )

    async def NodeExpandVolume(
        self, request: csi_pb2.NodeExpandVolumeRequest, context: CallContext
    ) -> csi_pb2.NodeExpandVolumeResponse:
        """Take a grown volume's new size on this node.

        Nothing is resized here: NFS has no file system on the node, and the controller has already grown the file
        system (dedicated: nothing changes, capacity_bytes is left unset) or raised the directory quota (shared:
        every publication record of the volume on this node takes the new quota, so NodeGetVolumeStats reports it;
        see :func:`~cfs_csi.driver.published.quota_after_expansion`). ``volume_path`` must be a target where this
        node published the volume: NOT_FOUND otherwise, as the spec asks. Repeating a call changes nothing more.
        """
        volume_id = require(request.volume_id, "volume_id")
        try:
            target = self._target(request.volume_path, "volume_path")
        except OutsidePods as exc:
            raise not_found(f"volume {volume_id} is not published there: {exc}") from None
        if request.HasField("volume_capability"):
            reason = unsupported_reason(request.volume_capability)
            if reason:
                raise invalid(reason)
        with self._in_flight.hold(f"volume/{volume_id}"):
            publication = self._published.get(target.path)
            if publication is None or publication.volume_id != volume_id:
                raise not_found(f"volume {volume_id} is not published at {target.path} on this node")
            records = self._published.of_volume(volume_id)
            quota = quota_after_expansion(
                shared_handle(volume_id) is not None,
                largest_quota(records),
                request.capacity_range.required_bytes,
                request.capacity_range.limit_bytes,
            )
            for record in records:
                if quota is not None and record.quota_bytes != quota:
                    self._published.record(replace(record, quota_bytes=quota))
            if quota is not None:
                log.info("volume %s: directory quota %d bytes in %d publication(s) here", volume_id, quota,
                         len(records))  # fmt: skip
        return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=quota or 0)

    async def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: CallContext
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.NodeServiceCapability(rpc=csi_pb2.NodeServiceCapability.RPC(type=rpc)) for rpc in CAPABILITIES
            ]
        )

    async def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: CallContext
    ) -> csi_pb2.NodeGetInfoResponse:
        return csi_pb2.NodeGetInfoResponse(node_id=self._node_id)


def _abnormal(message: str) -> csi_pb2.NodeGetVolumeStatsResponse:
    return csi_pb2.NodeGetVolumeStatsResponse(volume_condition=csi_pb2.VolumeCondition(abnormal=True, message=message))
