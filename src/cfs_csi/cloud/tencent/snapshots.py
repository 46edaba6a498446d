"""CFS snapshots for the tencent backend: taken, found again by name, listed and deleted only when proven ours.

``CreateCfsSnapshot`` has no ClientToken, so idempotency rests on the name, as for file systems: a snapshot is
created with the tags that prove it ours (:func:`cfs_csi.cloud.ownership.judge_snapshot`) and looked up by its
cloud name (the ``SnapshotName`` filter) before any creation. A retry after a lost answer or a controller restart
therefore finds the snapshot an earlier call took; two that raced past the lookup are both found by the next
call, which keeps the oldest and deletes the others (never returned to anyone). A snapshot that ends
``create-failed`` is deleted and the call answers UNAVAILABLE, so the retry takes a new one.

A clone's temporary snapshot (:meth:`TencentSnapshots.ensure_temporary`) follows the same rules under the name
and tags of :func:`.naming.temporary_snapshot_name` / :func:`.naming.temporary_snapshot_tags`: one per new volume.

A snapshot being taken is waited for while the caller's deadline allows, then returned as it is (``ready``
False; the snapshotter calls again). Deleting one that is still being taken (``InvalidSnapshotStatus``) is
retried the same way before answering PENDING: a CO that deletes right after creating should not have to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from cfs_csi.cloud.base import Snapshot, SnapshotState
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.ownership import (
    TAG_CAPACITY,
    TAG_SNAPSHOT,
    TAG_TEMPORARY,
    Origin,
    Ownership,
    judge_snapshot,
    snapshot_refusal,
)
from cfs_csi.cloud.tencent import naming
from cfs_csi.cloud.tencent.api import ApiError
from cfs_csi.cloud.tencent.errors import SNAPSHOT_GONE_CODES
from cfs_csi.volume.capacity import stored_capacity
from cfs_csi.volume.names import cut

log = logging.getLogger(__name__)

_PAGE = 100
_BUSY = "InvalidParameterValue.InvalidSnapshotStatus"
_MIB = 1024**2
#: The zone of the API's ``CreationTime`` strings (Beijing time, no offset written).
_API_ZONE = timezone(timedelta(hours=8))

Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class TencentSnapshots:
    """``call`` is the backend's API call with its retries (raising :class:`ApiError`); ``error`` maps one."""

    def __init__(
        self,
        call: Call,
        error: Callable[[ApiError], CloudError],
        cluster_id: str,
        budget: Callable[[], float],
        poll_interval: float,
    ) -> None:
        self._call, self._error, self._cluster_id = call, error, cluster_id
        self._budget, self._poll = budget, poll_interval

    async def ensure(self, name: str, fs_id: str, capacity_bytes: int) -> Snapshot:
        """The snapshot called ``name`` of ``fs_id`` (the caller proved ``fs_id`` ours), taken if none exists."""
        cloud_name = naming.snapshot_name(self._cluster_id, name)
        tags = naming.snapshot_tags(self._cluster_id, name, capacity_bytes)
        return await self._ensure(name, cloud_name, tags, Origin.SNAPSHOT, fs_id, capacity_bytes)

    async def ensure_temporary(self, volume: str, fs_id: str, capacity_bytes: int) -> Snapshot:
        """The temporary snapshot that clones ``fs_id`` (proven ours by the caller) into volume ``volume``.

        Found by its name (one per new volume), so a retry of the same CreateVolume never takes a second one.
        """
        cloud_name = naming.temporary_snapshot_name(self._cluster_id, volume)
        tags = naming.temporary_snapshot_tags(self._cluster_id, volume, fs_id, capacity_bytes)
        return await self._ensure(volume, cloud_name, tags, Origin.TEMPORARY, fs_id, capacity_bytes)

    async def delete_temporary(self, volume: str) -> list[str]:
        """Delete every temporary snapshot taken to clone into ``volume``; returns their ids.

        One of that cloud name that is not ours is left alone (logged): it was not taken by this driver.
        """
        cloud_name = naming.temporary_snapshot_name(self._cluster_id, volume)
        deleted = []
        for info in await self._named(cloud_name):
            snapshot = self.to_snapshot(info)
            if snapshot.owner.origin is not Origin.TEMPORARY or snapshot.name != volume:
                log.warning("snapshot %s is named like the temporary snapshot of clone %s but is not (%s); left alone",
                            snapshot.id, cut(volume), snapshot.owner.detail)  # fmt: skip
                continue
            await self._delete(snapshot.id)
            deleted.append(snapshot.id)
        return deleted

    async def _ensure(
        self, name: str, cloud_name: str, tags: list[tuple[str, str]], origin: Origin, fs_id: str, capacity: int
    ) -> Snapshot:
        found = await self._find(cloud_name, name, origin)
        if not found:
            request = {
                "FileSystemId": fs_id,
                "SnapshotName": cloud_name,
                "ResourceTags": [{"TagKey": key, "TagValue": value} for key, value in tags],
            }
            try:
                response = await self._call("CreateCfsSnapshot", request)
            except ApiError as exc:
                raise self._error(exc) from None
            snapshot_id = str(response.get("SnapshotId") or "")
            log.info("taking CFS snapshot %s (%s) of %s", snapshot_id, cut(cloud_name), fs_id)
            try:
                info = await self._describe_one(snapshot_id)
            except CloudError as exc:
                if not exc.kind.retried:  # no retry may come to find it by name: it must not stay
                    await self.discard(snapshot_id, exc.message)
                raise
            if info is None:  # not listed yet: it exists, and the next call finds it by name
                return Snapshot(snapshot_id, name, fs_id, SnapshotState.CREATING, capacity, 0.0, Ownership(origin))
            found = [info]
        chosen, *extras = sorted(found, key=lambda i: (str(i.get("CreationTime") or ""), str(i.get("SnapshotId"))))
        for extra in extras:
            await self._delete_extra(str(extra.get("SnapshotId")), str(chosen.get("SnapshotId")))
        snapshot = self.to_snapshot(chosen)
        if snapshot.source_fs_id != fs_id:
            raise CloudError(
                ErrorKind.CONFLICT,
                f"snapshot {cut(name)!r} exists already, of file system {snapshot.source_fs_id}, not {cut(fs_id)}",
            )
        while snapshot.state is SnapshotState.CREATING and self._budget() >= self._poll:
            await asyncio.sleep(self._poll)
            snapshot = await self.get(snapshot.id) or snapshot
        if snapshot.state is SnapshotState.CREATE_FAILED:
            await self._delete(snapshot.id)
            raise CloudError(
                ErrorKind.UNAVAILABLE,
                f"CFS could not take snapshot {snapshot.id} ({cut(name)}); it was deleted and the next attempt takes "
                "a new one",
            )
        return snapshot

    async def get(self, snapshot_id: str) -> Snapshot | None:
        info = await self._describe_one(snapshot_id)
        return None if info is None else self.to_snapshot(info)

    async def list_ours(self, source_fs_id: str = "") -> list[Snapshot]:
        params: dict[str, Any] = {"FileSystemId": source_fs_id} if source_fs_id else {}
        snapshots = [self.to_snapshot(info) for info in await self._describe_all(params)]
        return [s for s in snapshots if s.owner.origin is Origin.SNAPSHOT]

    async def delete(self, snapshot_id: str) -> None:
        snapshot = await self.get(snapshot_id)
        if snapshot is None:
            return
        refusal = snapshot_refusal(snapshot_id, snapshot.owner, "deleted")
        if refusal is not None:
            log.warning("refusing to delete snapshot %s: %s", snapshot_id, refusal)
            raise CloudError(ErrorKind.REFUSED, refusal)
        await self._delete(snapshot_id)

    def to_snapshot(self, info: dict[str, Any]) -> Snapshot:
        tags = {str(t.get("TagKey")): str(t.get("TagValue")) for t in info.get("Tags") or []}
        cloud_name = str(info.get("SnapshotName") or "")
        owner = judge_snapshot(cloud_name, tags, self._cluster_id, lambda n: naming.snapshot_name(self._cluster_id, n))
        size = stored_capacity(tags.get(TAG_CAPACITY)) or stored_capacity(info.get("Size")) * _MIB
        return Snapshot(
            id=str(info.get("SnapshotId") or ""),
            name=tags.get(TAG_SNAPSHOT) or tags.get(TAG_TEMPORARY) or cloud_name,
            source_fs_id=str(info.get("FileSystemId") or ""),
            state=_state(info.get("Status")),
            size_bytes=size,
            created_at=api_time(info.get("CreationTime")),
            owner=owner,
        )

    # -- lookups -------------------------------------------------------------------------------------------

    async def _find(self, cloud_name: str, name: str, origin: Origin) -> list[dict[str, Any]]:
        """Our snapshots (of ``origin``) called ``cloud_name`` for ``name``; CONFLICT for one of that name we cannot
        prove ours."""
        found = []
        for info in await self._named(cloud_name):
            snapshot = self.to_snapshot(info)
            if snapshot.owner.origin is origin and snapshot.name == name:
                found.append(info)
            elif snapshot.owner.origin is not origin:
                raise CloudError(
                    ErrorKind.CONFLICT,
                    f"snapshot {snapshot.id} is named {cut(cloud_name)!r} but this driver did not take it for "
                    f"{cut(name)!r} ({snapshot.owner.detail}); it is left alone",
                )
        return found

    async def _named(self, cloud_name: str) -> list[dict[str, Any]]:
        """Every snapshot called exactly ``cloud_name`` that is not being deleted, ours or not."""
        filters = [{"Name": "SnapshotName", "Values": [cloud_name]}]
        return [
            info
            for info in await self._describe_all({"Filters": filters})
            if info.get("SnapshotName") == cloud_name and _state(info.get("Status")) is not SnapshotState.DELETING
        ]

    async def _describe_all(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        infos: list[dict[str, Any]] = []
        while True:
            try:
                page = await self._call("DescribeCfsSnapshots", {**params, "Offset": len(infos), "Limit": _PAGE})
            except ApiError as exc:
                raise self._error(exc) from None
            batch = page.get("Snapshots") or []
            infos += batch
            if not batch or len(infos) >= int(page.get("TotalCount") or 0):
                return infos

    async def _describe_one(self, snapshot_id: str) -> dict[str, Any] | None:
        try:
            page = await self._call("DescribeCfsSnapshots", {"SnapshotId": snapshot_id})
        except ApiError as exc:
            if exc.code in SNAPSHOT_GONE_CODES:
                return None
            raise self._error(exc) from None
        return next((dict(i) for i in page.get("Snapshots") or [] if i.get("SnapshotId") == snapshot_id), None)

    async def _delete(self, snapshot_id: str) -> None:
        while True:
            try:
                await self._call("DeleteCfsSnapshot", {"SnapshotId": snapshot_id})
                break
            except ApiError as exc:
                if exc.code in SNAPSHOT_GONE_CODES:
                    return
                if exc.code != _BUSY or self._budget() < self._poll:
                    raise self._error(exc) from None
            await asyncio.sleep(self._poll)  # still being taken or restored from: wait while the caller does
        log.info("deleted CFS snapshot %s", snapshot_id)

    async def discard(self, snapshot_id: str, reason: str) -> None:
        """Delete a snapshot taken by a call that then failed for good (no retry may come to find it)."""
        log.warning("deleting snapshot %s, taken by a call that then failed: %s", snapshot_id, reason)
        try:
            await self._delete(snapshot_id)
        except CloudError as exc:
            log.error("could not delete snapshot %s after the failure: %s", snapshot_id, exc.message)

    async def _delete_extra(self, extra: str, chosen: str) -> None:
        log.warning("snapshot %s duplicates %s; deleting it", extra, chosen)
        try:
            await self._delete(extra)
        except CloudError as exc:
            log.warning("could not delete duplicate snapshot %s yet: %s", extra, exc.message)


def _state(value: object) -> SnapshotState:
    try:
        return SnapshotState(str(value or ""))
    except ValueError:
        return SnapshotState.OTHER


def api_time(value: object) -> float:
    """Seconds since the epoch of a ``CreationTime`` (``2024-05-01 12:00:00``, Beijing time); 0 if unreadable."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=_API_ZONE).timestamp()
    except ValueError:
        return 0.0
