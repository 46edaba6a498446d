"""Dedicated file systems on Tencent Cloud CFS, created and deleted through the CFS API (:mod:`.api`).

Nothing is leaked and nothing is created twice, whatever fails in between:

- Before creating, the file system is looked up by its name (``FsName`` and a tag holding the full volume
  name). A retry after a timeout, a controller restart, or an expired ClientToken therefore resumes the file
  system an earlier call created instead of creating another.
- The create request carries a ClientToken derived from the name, so two requests that race past the lookup
  (or a retried request whose answer was lost) still produce one file system.
- While a file system is ``creating``, the call waits only while the caller's deadline allows, then answers
  PENDING (ABORTED over CSI) so that the provisioner's retry picks it up by name.
- A file system that ends in ``create_failed`` is deleted before the error is returned.
- Any failure after this call created a file system either leaves it for the retry to find by name (errors
  the CO retries) or deletes it before answering (errors after which no retry may come).
- Only what is proven ours is adopted or deleted (:mod:`cfs_csi.cloud.ownership`): a same-named file system
  without our tags is a conflict, and DeleteVolume refuses shared, foreign and other clusters' file systems.

Expansion raises the size limit of a Standard (SD) file system; High-Performance (HP) ones have no limit in
CFS, so the new capacity is recorded only by Kubernetes (in the PV) and the file system keeps reporting the
capacity it was created with. A restore (``spec.source_snapshot``) passes ``SnapshotId`` to the same creation
path, after proving the snapshot ours. A clone (``spec.source_volume``) is a restore from a temporary snapshot of
the source (:mod:`.clones`). Snapshots and quotas: :mod:`.snapshots`, :mod:`.quotas`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from cfs_csi.cloud.base import DirectoryQuota, FileSystem, FileSystemSpec, FileSystemState, Snapshot
from cfs_csi.cloud.deadline import remaining
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.ownership import (
    TAG_CAPACITY,
    TAG_SOURCE_FS,
    TAG_SOURCE_SNAPSHOT,
    TAG_VERS,
    TAG_VOLUME,
    Origin,
    Ownership,
    deletion_refusal,
    is_reserved_tag,
    judge_tagged,
    quota_refusal,
    snapshot_refusal,
    snapshot_source_refusal,
)
from cfs_csi.cloud.retry import retry
from cfs_csi.cloud.tencent import naming
from cfs_csi.cloud.tencent.api import ApiError, CloudApi, make_api
from cfs_csi.cloud.tencent.clones import Rule, TencentClones
from cfs_csi.cloud.tencent.credentials import SdkCredential
from cfs_csi.cloud.tencent.errors import HINTS, NOT_FOUND_CODES, classify, is_retryable
from cfs_csi.cloud.tencent.quotas import SIZE_LIMITED, TencentQuotas, size_limit_bytes
from cfs_csi.cloud.tencent.snapshots import TencentSnapshots
from cfs_csi.volume.capacity import GIB, stored_capacity
from cfs_csi.volume.names import cut, is_shared_name
from cfs_csi.volume.params import NfsVersion, StorageType, VolumeParameters

log = logging.getLogger(__name__)

_PAGE = 100
#: Codes that mean "no such file system" for a volume id that is not even well-formed.
_GONE_CODES = NOT_FOUND_CODES | {"InvalidParameterValue.InvalidFileSystemId"}


@dataclass(frozen=True)
class TencentConfig:
    region: str
    default_zone: str = ""
    endpoint: str = "cfs.internal.tencentcloudapi.com"
    scheme: str = "https"
    cluster_id: str = ""
    request_timeout: float = 10.0
    #: Time budget of a call whose caller set no deadline (the operator, the CLI).
    default_budget: float = 60.0
    #: Kept free before the caller's deadline to send the answer back.
    margin: float = 2.0
    poll_interval: float = 1.0
    #: Let DeleteVolume delete untagged file systems named like the vendor driver's (see ownership).
    delete_vendor_volumes: bool = False


class TencentFileStorage:
    def __init__(self, config: TencentConfig, credential: SdkCredential, api: CloudApi | None = None) -> None:
        self._config = config
        self._api = api or make_api(
            config.scheme, config.endpoint, config.region, credential, max(1.0, config.request_timeout)
        )
        self._snapshots = TencentSnapshots(
            self._call, _cloud_error, config.cluster_id, self._budget, config.poll_interval
        )
        self._quotas = TencentQuotas(self._call, _cloud_error)
        self._clones = TencentClones(self._snapshots, self._proven, _capacity)

    # -- FileStorage ---------------------------------------------------------------------------------------

    def with_defaults(self, params: VolumeParameters) -> VolumeParameters:
        if params.zone or not self._config.default_zone:
            return params
        return VolumeParameters(**{**params.__dict__, "zone": self._config.default_zone})

    async def ensure_file_system(self, spec: FileSystemSpec) -> FileSystem:
        params = spec.params
        if not params.vpc_id or not params.subnet_id:
            raise CloudError(ErrorKind.INVALID, "StorageClass parameters vpcid and subnetid are required for CFS")
        if not params.zone:
            raise CloudError(
                ErrorKind.INVALID, "StorageClass parameter zone is required (the controller's zone is unknown)"
            )
        name = naming.fs_name(self._config.cluster_id, spec.name)
        matches = await self._find_by_name(name, spec)
        if matches:
            chosen, *extras = sorted(matches, key=_age)
            for extra in extras:
                await self._delete_duplicate(extra, chosen)
            if spec.source_volume:
                return await self._clones.completed(spec, self._resume(chosen, spec))
            return await self._resume(chosen, spec)
        if spec.source_snapshot:
            await self._check_restorable(spec.source_snapshot)
        if not spec.source_volume:
            return await self._create_and_resume(name, spec, spec.source_snapshot)
        temporary = await self._clones.snapshot(spec)
        return await self._clones.completed(spec, self._create_and_resume(name, spec, temporary.id))

    async def _create_and_resume(self, name: str, spec: FileSystemSpec, snapshot_id: str) -> FileSystem:
        """Create the file system (from ``snapshot_id`` if given) and bring it to a usable state; after an error no
        retry may follow, it is deleted again."""
        fs_id = await self._create(name, spec, snapshot_id)
        try:
            return await self._resume(await self._describe_one(fs_id) or {"FileSystemId": fs_id}, spec)
        except CloudError as exc:
            if not exc.kind.retried:
                await self._discard(fs_id, spec.name, exc.message)
            raise
        except Exception as exc:  # a bug: the caller answers INTERNAL, after which no retry may come
            await self._discard(fs_id, spec.name, type(exc).__name__)
            raise

    async def get_file_system(self, fs_id: str) -> FileSystem | None:
        info = await self._describe_one(fs_id)
        if info is None:
            return None
        return await self._to_file_system(info, None)

    async def list_file_systems(self) -> list[FileSystem]:
        ours = (Origin.VOLUME, Origin.SHARED)
        infos = [info for info in await self._describe_all({}) if self._ownership(info).origin in ours]
        return list(await asyncio.gather(*(self._to_file_system(info, None) for info in infos)))

    async def delete_file_system(self, fs_id: str) -> None:
        info = await self._describe_one(fs_id)
        if info is None:
            return
        refusal = deletion_refusal(fs_id, self._ownership(info), self._config.delete_vendor_volumes)
        if refusal is not None:
            log.warning("refusing to delete %s (%s): %s", fs_id, cut(str(info.get("FsName") or "")), refusal)
            raise CloudError(ErrorKind.REFUSED, refusal)
        tags = _tags(info)
        if tags.get(TAG_SOURCE_FS) and tags.get(TAG_VOLUME):  # a clone: its temporary snapshot goes first
            await self._clones.cleanup(tags[TAG_VOLUME])
        await self._delete(fs_id)

    async def _delete(self, fs_id: str) -> None:
        """Delete without asking whose it is: only for what this very call created or proved ours by name."""
        try:
            await self._call("DeleteCfsFileSystem", {"FileSystemId": fs_id})
        except ApiError as exc:
            if exc.code in _GONE_CODES:
                return
            raise _cloud_error(exc) from None
        log.info("deleted CFS file system %s", fs_id)

    async def probe(self) -> None:
        try:
            await self._call("DescribeCfsFileSystems", {"Limit": 1}, budget=5.0)
        except ApiError as exc:
            raise _cloud_error(exc) from None

    # -- expansion -----------------------------------------------------------------------------------------

    async def expand_file_system(self, fs_id: str, capacity_bytes: int) -> FileSystem:
        info = await self._owned(fs_id, "expanded")
        fs = await self._to_file_system(info, None)
        if capacity_bytes <= fs.capacity_bytes:
            return fs
        if fs.params.storage_type not in SIZE_LIMITED:
            log.info("file system %s (%s) has no capacity limit to raise; %d bytes recorded by Kubernetes only",
                     fs_id, fs.params.storage_type.value, capacity_bytes)  # fmt: skip
            return replace(fs, capacity_bytes=capacity_bytes)
        await self._quotas.set_size_limit(fs_id, -(-capacity_bytes // GIB))
        log.info("raised the size limit of %s to %d GiB", fs_id, -(-capacity_bytes // GIB))
        grown = await self._describe_one(fs_id)
        return await self._to_file_system(grown or info, None)

    # -- snapshots -----------------------------------------------------------------------------------------

    async def ensure_snapshot(self, name: str, fs_id: str) -> Snapshot:
        info = await self._proven(fs_id, snapshot_source_refusal)
        return await self._snapshots.ensure(name, fs_id, _capacity(info))

    async def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        return await self._snapshots.get(snapshot_id)

    async def list_snapshots(self, source_fs_id: str = "") -> list[Snapshot]:
        return await self._snapshots.list_ours(source_fs_id)

    async def delete_snapshot(self, snapshot_id: str) -> None:
        await self._snapshots.delete(snapshot_id)

    async def _check_restorable(self, snapshot_id: str) -> None:
        snapshot = await self._snapshots.get(snapshot_id)
        if snapshot is None:
            raise CloudError(ErrorKind.NOT_FOUND, f"snapshot {cut(snapshot_id)} does not exist")
        refusal = snapshot_refusal(snapshot_id, snapshot.owner, "restored")
        if refusal is not None:
            raise CloudError(ErrorKind.REFUSED, refusal)
        if not snapshot.ready:
            raise CloudError(ErrorKind.PENDING, f"snapshot {snapshot_id} is {snapshot.state.value}")

    # -- directory quotas ----------------------------------------------------------------------------------

    async def set_directory_quota(self, fs_id: str, path: str, capacity_gib: int) -> DirectoryQuota:
        await self._quota_target(fs_id)
        await self._quotas.set(fs_id, path, capacity_gib)
        quota = await self._quotas.get(fs_id, path)
        if quota is None:
            raise CloudError(ErrorKind.PENDING, f"the quota of {path} on {fs_id} is not listed yet")
        return quota

    async def get_directory_quota(self, fs_id: str, path: str) -> DirectoryQuota | None:
        if await self._describe_one(fs_id) is None:
            return None
        return await self._quotas.get(fs_id, path)

    async def delete_directory_quota(self, fs_id: str, path: str) -> None:
        if await self._describe_one(fs_id) is None:
            return
        await self._quota_target(fs_id)
        await self._quotas.delete(fs_id, path)

    async def _quota_target(self, fs_id: str) -> None:
        await self._proven(fs_id, quota_refusal)

    async def _owned(self, fs_id: str, action: str) -> dict[str, Any]:
        """The file system's description if it is a dedicated volume of ours (the deletion rule), else an error."""

        def rule(fs_id: str, ownership: Ownership) -> str | None:
            refusal = deletion_refusal(fs_id, ownership, self._config.delete_vendor_volumes)
            return refusal and refusal.replace("is not deleted", f"is not {action}", 1)

        return await self._proven(fs_id, rule)

    async def _proven(self, fs_id: str, rule: Rule, what: str = "file system") -> dict[str, Any]:
        """The file system's description once ``rule`` finds nothing to refuse in what its tags prove: every use of
        a file system that is not ours to make goes through here. NOT_FOUND (naming it as ``what``) if it does not
        exist, REFUSED with the rule's words otherwise."""
        info = await self._describe_one(fs_id)
        if info is None:
            raise CloudError(ErrorKind.NOT_FOUND, f"{what} {cut(fs_id)} does not exist")
        refusal = rule(fs_id, self._ownership(info))
        if refusal is not None:
            raise CloudError(ErrorKind.REFUSED, refusal)
        return info

    # -- creation ------------------------------------------------------------------------------------------

    async def _create(self, name: str, spec: FileSystemSpec, snapshot_id: str) -> str:
        params = spec.params
        tags = [*params.resource_tags, *naming.own_tags(
            self._config.cluster_id, spec.name, spec.capacity_bytes, params.vers, spec.source_snapshot,
            spec.source_volume,
        )]  # fmt: skip
        request = {
            "Zone": params.zone,
            "NetInterface": "VPC",
            "PGroupId": params.pgroup_id,
            "Protocol": "NFS",
            "StorageType": params.storage_type.value,
            "VpcId": params.vpc_id,
            "SubnetId": params.subnet_id,
            "FsName": name,
            "ClientToken": naming.client_token(name),
            "ResourceTags": [{"TagKey": key, "TagValue": value} for key, value in tags],
        }
        if snapshot_id:
            request["SnapshotId"] = snapshot_id
        try:
            response = await self._call("CreateCfsFileSystem", request)
        except ApiError as exc:
            raise _cloud_error(exc) from None
        fs_id = str(response["FileSystemId"])
        log.info("creating CFS file system %s (%s) for volume %s", fs_id, name, spec.name)
        return fs_id

    async def _resume(self, info: dict[str, Any], spec: FileSystemSpec) -> FileSystem:
        """Bring a found or new file system to a usable state within the deadline, or say why not."""
        fs_id = str(info["FileSystemId"])
        while True:
            state = _state(info)
            if state is FileSystemState.AVAILABLE:
                return await self._to_file_system(info, spec.params)
            if state is FileSystemState.CREATE_FAILED:
                await self._delete(fs_id)
                raise CloudError(
                    ErrorKind.UNAVAILABLE,
                    f"CFS could not create file system {fs_id} for volume {spec.name} (life cycle state "
                    f"create_failed); it was deleted and the next attempt creates a new one",
                )
            if state is not FileSystemState.CREATING or self._budget() < self._config.poll_interval:
                raise CloudError(ErrorKind.PENDING, f"CFS file system {fs_id} is {info.get('LifeCycleState')}")
            await asyncio.sleep(self._config.poll_interval)
            found = await self._describe_one(fs_id)
            if found is None:
                raise CloudError(ErrorKind.PENDING, f"CFS file system {fs_id} disappeared while being created")
            info = found

    async def _delete_duplicate(self, extra: dict[str, Any], chosen: dict[str, Any]) -> None:
        """A second file system of the same volume (never returned to anyone): delete it once it can be.

        A shared class's duplicate is only reported: the operator may have recorded either one.
        """
        if self._ownership(extra).origin is not Origin.VOLUME:
            log.warning("file system %s duplicates %s (%s); left alone (not a dedicated volume)",
                        extra["FileSystemId"], chosen["FileSystemId"], extra.get("FsName"))  # fmt: skip
            return
        log.warning("file system %s duplicates %s (%s); deleting it", extra["FileSystemId"],
                    chosen["FileSystemId"], extra.get("FsName"))  # fmt: skip
        try:
            await self._delete(str(extra["FileSystemId"]))
        except CloudError as exc:
            log.warning("could not delete duplicate %s yet: %s", extra["FileSystemId"], exc.message)

    async def _discard(self, fs_id: str, volume: str, reason: str) -> None:
        """Delete a file system this call created, after a failure that no retry may follow (nothing leaks)."""
        log.warning("deleting %s, created for volume %s by a call that then failed: %s", fs_id, cut(volume), reason)
        try:
            await self._delete(fs_id)
        except CloudError as exc:
            # Still creating (CFS refuses to delete it yet) or the cloud is down: a retry of the volume finds it
            # by name; without one, the admin must delete it, and this line names it.
            log.error("could not delete %s (volume %s) after the failure: %s", fs_id, cut(volume), exc.message)

    # -- lookups -------------------------------------------------------------------------------------------

    async def _find_by_name(self, name: str, spec: FileSystemSpec) -> list[dict[str, Any]]:
        """The file systems this driver made for ``spec.name``: the name, and our tags naming the volume.

        A file system of that name whose tags do not prove it ours (none, another cluster's) is never adopted
        for a volume: CONFLICT, so that a volume can never be given someone else's data. A shared class's file
        system is the exception: an untagged one of the class's name (made by the vendor's operator) is adopted
        as the share, as before; it is never deleted by anyone, and no volume may take a shared name. A
        shortened name that collides with another volume's (its tag names that volume) is skipped.
        """
        # By name at the cloud (``CreationToken`` is the ``FsName``): listing every file system of the subnet cost
        # one page per 100 of them and their parsing, on every CreateVolume.
        filters = {"VpcId": spec.params.vpc_id, "SubnetId": spec.params.subnet_id, "CreationToken": name}
        found = []
        for info in await self._describe_all(filters):
            if info.get("FsName") != name or _state(info) is FileSystemState.DELETING:
                continue
            owner = self._ownership(info)
            volume = _tags(info).get(TAG_VOLUME, "")
            if _adoptable(owner, volume, spec.name):
                found.append(info)
            elif owner.origin in (Origin.VOLUME, Origin.SHARED, Origin.INCONSISTENT) and volume:
                continue
            else:
                raise CloudError(
                    ErrorKind.CONFLICT,
                    f"file system {info.get('FileSystemId')} is named {cut(name)!r} but is not one this driver "
                    f"created for volume {cut(spec.name)!r} ({owner.detail}); it is left alone. Rename or delete "
                    "it in the CFS console",
                )
        return found

    async def _describe_all(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        infos: list[dict[str, Any]] = []
        while True:
            try:
                page = await self._call("DescribeCfsFileSystems", {**filters, "Offset": len(infos), "Limit": _PAGE})
            except ApiError as exc:
                raise _cloud_error(exc) from None
            batch = page.get("FileSystems") or []
            infos += batch
            if not batch or len(infos) >= int(page.get("TotalCount") or 0):
                return infos

    async def _describe_one(self, fs_id: str) -> dict[str, Any] | None:
        page = await self._call_unless_gone("DescribeCfsFileSystems", {"FileSystemId": fs_id})
        return next((dict(i) for i in (page or {}).get("FileSystems") or [] if i.get("FileSystemId") == fs_id), None)

    async def _mount_target(self, fs_id: str) -> dict[str, Any] | None:
        response = await self._call_unless_gone("DescribeMountTargets", {"FileSystemId": fs_id})
        return next((dict(t) for t in (response or {}).get("MountTargets") or [] if t.get("IpAddress")), None)

    async def _call_unless_gone(self, action: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """The answer, or ``None`` when the cloud says the file system does not exist."""
        try:
            return await self._call(action, params)
        except ApiError as exc:
            if exc.code in _GONE_CODES:
                return None
            raise _cloud_error(exc) from None

    async def _to_file_system(self, info: dict[str, Any], requested: VolumeParameters | None) -> FileSystem:
        fs_id = str(info["FileSystemId"])
        state = _state(info)
        target = await self._mount_target(fs_id) if state is FileSystemState.AVAILABLE else None
        if state is FileSystemState.AVAILABLE and target is None:
            if requested is not None:
                raise CloudError(ErrorKind.PENDING, f"CFS file system {fs_id} has no mount target yet")
            state = FileSystemState.OTHER
        tags = _tags(info)
        owner = self._ownership(info)
        vpc_id = str((target or {}).get("VpcId") or (requested.vpc_id if requested else ""))
        subnet_id = str((target or {}).get("SubnetId") or (requested.subnet_id if requested else ""))
        params = VolumeParameters(
            vpc_id=vpc_id,
            subnet_id=subnet_id,
            zone=str(info.get("Zone") or ""),
            storage_type=_enum(StorageType, info.get("StorageType"), StorageType.SD),
            pgroup_id=str((info.get("PGroup") or {}).get("PGroupId") or ""),
            vers=_enum(NfsVersion, tags.get(TAG_VERS), NfsVersion.V3),
            resource_tags=tuple(sorted((k, v) for k, v in tags.items() if not is_reserved_tag(k))),
        )
        return FileSystem(
            id=fs_id,
            name=tags.get(TAG_VOLUME, str(info.get("FsName") or "")),
            state=state,
            capacity_bytes=_capacity(info),
            params=params,
            host=str((target or {}).get("IpAddress") or ""),
            export_fsid=str((target or {}).get("FSID") or ""),
            owner=owner,
            source_snapshot=tags.get(TAG_SOURCE_SNAPSHOT, ""),
            source_volume=tags.get(TAG_SOURCE_FS, ""),
        )

    def _ownership(self, info: dict[str, Any]) -> Ownership:
        cluster_id = self._config.cluster_id
        return judge_tagged(
            str(info.get("FsName") or ""), _tags(info), cluster_id, lambda volume: naming.fs_name(cluster_id, volume)
        )

    # -- the API call --------------------------------------------------------------------------------------

    def _budget(self) -> float:
        return remaining(self._config.default_budget) - self._config.margin

    async def _call(self, action: str, params: dict[str, Any], budget: float | None = None) -> dict[str, Any]:
        """One API action with retries for throttling and network trouble, within the caller's deadline."""

        async def once() -> dict[str, Any]:
            return await self._api.call(action, params)

        left = self._budget() if budget is None else budget
        return await retry(once, lambda exc: isinstance(exc, ApiError) and is_retryable(exc.code), max(0.0, left))


def _cloud_error(exc: ApiError) -> CloudError:
    kind = classify(exc.code)
    hint = HINTS.get(kind, "")
    text = f"CFS {exc.action} failed: {exc.code}: {exc.message}" + (f" ({hint})" if hint else "")
    return CloudError(kind, text)


def _capacity(info: dict[str, Any]) -> int:
    """The size limit where one is set (after an expansion), else the capacity recorded at creation.

    Read back defensively: a tag anyone could edit must not break a listing or a response.
    """
    return size_limit_bytes(info) or stored_capacity(_tags(info).get(TAG_CAPACITY))


def _adoptable(owner: Ownership, tagged_volume: str, wanted: str) -> bool:
    """Whether a file system of the wanted cloud name is the one made for volume ``wanted`` (see _find_by_name)."""
    if owner.origin in (Origin.VOLUME, Origin.SHARED) and tagged_volume == wanted:
        return True
    return owner.origin is Origin.SHARED and not tagged_volume and is_shared_name(wanted)


def _state(info: dict[str, Any]) -> FileSystemState:
    try:
        return FileSystemState(str(info.get("LifeCycleState") or ""))
    except ValueError:
        return FileSystemState.OTHER


def _tags(info: dict[str, Any]) -> dict[str, str]:
    return {str(tag.get("TagKey")): str(tag.get("TagValue")) for tag in info.get("Tags") or []}


def _age(info: dict[str, Any]) -> tuple[str, str]:
    return str(info.get("CreationTime") or ""), str(info.get("FileSystemId"))


_E = TypeVar("_E", StorageType, NfsVersion)


def _enum(kind: type[_E], value: object, default: _E) -> _E:
    try:
        return kind(str(value))
    except ValueError:
        return default
