"""Dedicated file systems on Tencent Cloud CFS, created and deleted through the official async SDK.

Nothing is leaked and nothing is created twice, whatever fails in between:

- Before creating, the file system is looked up by its name (``FsName`` and a tag holding the full volume
  name). A retry after a timeout, a controller restart, or an expired ClientToken therefore resumes the file
  system an earlier call created instead of creating another.
- The create request carries a ClientToken derived from the name, so two requests that race past the lookup
  (or a retried request whose answer was lost) still produce one file system.
- While a file system is ``creating``, the call waits only while the caller's deadline allows, then answers
  PENDING (ABORTED over CSI) so that the provisioner's retry picks it up by name.
- A file system that ends in ``create_failed`` is deleted before the error is returned.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from tencentcloud.cfs.v20190719 import cfs_client_async, models
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from cfs_csi.cloud.base import FileSystem, FileSystemSpec, FileSystemState
from cfs_csi.cloud.deadline import remaining
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.retry import retry
from cfs_csi.cloud.tencent import naming
from cfs_csi.cloud.tencent.credentials import SdkCredential
from cfs_csi.cloud.tencent.errors import HINTS, NOT_FOUND_CODES, classify, is_retryable
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


class TencentFileStorage:
    def __init__(self, config: TencentConfig, credential: SdkCredential) -> None:
        self._config = config
        profile = ClientProfile(
            httpProfile=HttpProfile(
                protocol=config.scheme, endpoint=config.endpoint, reqTimeout=int(max(1, config.request_timeout))
            )
        )
        profile.disable_region_breaker = True
        self._client = cfs_client_async.CfsClient(credential, config.region, profile)

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
            return await self._resume(chosen, spec)
        fs_id = await self._create(name, spec)
        return await self._resume(await self._describe_one(fs_id) or {"FileSystemId": fs_id}, spec)

    async def get_file_system(self, fs_id: str) -> FileSystem | None:
        info = await self._describe_one(fs_id)
        if info is None:
            return None
        return await self._to_file_system(info, None)

    async def list_file_systems(self) -> list[FileSystem]:
        infos = [info for info in await self._describe_all({}) if self._is_ours(info)]
        return list(await asyncio.gather(*(self._to_file_system(info, None) for info in infos)))

    async def delete_file_system(self, fs_id: str) -> None:
        try:
            await self._call("DeleteCfsFileSystem", {"FileSystemId": fs_id})
        except _ApiError as exc:
            if exc.code in _GONE_CODES:
                return
            raise exc.cloud_error() from None
        log.info("deleted CFS file system %s", fs_id)

    async def probe(self) -> None:
        try:
            await self._call("DescribeCfsFileSystems", {"Limit": 1}, budget=5.0)
        except _ApiError as exc:
            raise exc.cloud_error() from None

    # -- creation ------------------------------------------------------------------------------------------

    async def _create(self, name: str, spec: FileSystemSpec) -> str:
        params = spec.params
        tags = [*params.resource_tags, *naming.own_tags(
            self._config.cluster_id, spec.name, spec.capacity_bytes, params.vers
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
        try:
            response = await self._call("CreateCfsFileSystem", request)
        except _ApiError as exc:
            raise exc.cloud_error() from None
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
                await self.delete_file_system(fs_id)
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
        """A second file system of the same volume (never returned to anyone): delete it once it can be."""
        log.warning("file system %s duplicates %s (%s); deleting it", extra["FileSystemId"],
                    chosen["FileSystemId"], extra.get("FsName"))  # fmt: skip
        try:
            await self.delete_file_system(str(extra["FileSystemId"]))
        except CloudError as exc:
            log.warning("could not delete duplicate %s yet: %s", extra["FileSystemId"], exc.message)

    # -- lookups -------------------------------------------------------------------------------------------

    async def _find_by_name(self, name: str, spec: FileSystemSpec) -> list[dict[str, Any]]:
        filters = {"VpcId": spec.params.vpc_id, "SubnetId": spec.params.subnet_id}
        found = []
        for info in await self._describe_all(filters):
            if info.get("FsName") != name or _state(info) is FileSystemState.DELETING:
                continue
            tags = _tags(info)
            # A shortened name could collide: the tag with the full name decides, where there is one.
            if tags.get(naming.TAG_VOLUME, spec.name) != spec.name:
                continue
            found.append(info)
        return found

    async def _describe_all(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        infos: list[dict[str, Any]] = []
        while True:
            try:
                page = await self._call("DescribeCfsFileSystems", {**filters, "Offset": len(infos), "Limit": _PAGE})
            except _ApiError as exc:
                raise exc.cloud_error() from None
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
        except _ApiError as exc:
            if exc.code in _GONE_CODES:
                return None
            raise exc.cloud_error() from None

    async def _to_file_system(self, info: dict[str, Any], requested: VolumeParameters | None) -> FileSystem:
        fs_id = str(info["FileSystemId"])
        state = _state(info)
        target = await self._mount_target(fs_id) if state is FileSystemState.AVAILABLE else None
        if state is FileSystemState.AVAILABLE and target is None:
            if requested is not None:
                raise CloudError(ErrorKind.PENDING, f"CFS file system {fs_id} has no mount target yet")
            state = FileSystemState.OTHER
        tags = _tags(info)
        vpc_id = str((target or {}).get("VpcId") or (requested.vpc_id if requested else ""))
        subnet_id = str((target or {}).get("SubnetId") or (requested.subnet_id if requested else ""))
        params = VolumeParameters(
            vpc_id=vpc_id,
            subnet_id=subnet_id,
            zone=str(info.get("Zone") or ""),
            storage_type=_enum(StorageType, info.get("StorageType"), StorageType.SD),
            pgroup_id=str((info.get("PGroup") or {}).get("PGroupId") or ""),
            vers=_enum(NfsVersion, tags.get(naming.TAG_VERS), NfsVersion.V3),
            resource_tags=tuple(sorted((k, v) for k, v in tags.items() if k not in naming.OWN_TAGS)),
        )
        capacity = tags.get(naming.TAG_CAPACITY, "")
        return FileSystem(
            id=fs_id,
            name=tags.get(naming.TAG_VOLUME, str(info.get("FsName") or "")),
            state=state,
            capacity_bytes=int(capacity) if capacity.isdigit() else int(info.get("SizeLimit") or 0),
            params=params,
            host=str((target or {}).get("IpAddress") or ""),
            export_fsid=str((target or {}).get("FSID") or ""),
        )

    def _is_ours(self, info: dict[str, Any]) -> bool:
        tags = _tags(info)
        if naming.TAG_VOLUME not in tags:
            return False
        return not self._config.cluster_id or tags.get(naming.TAG_CLUSTER) == self._config.cluster_id

    # -- the API call --------------------------------------------------------------------------------------

    def _budget(self) -> float:
        return remaining(self._config.default_budget) - self._config.margin

    async def _call(self, action: str, params: dict[str, Any], budget: float | None = None) -> dict[str, Any]:
        """One API action with retries for throttling and network trouble, within the caller's deadline."""
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps(params))
        method: Callable[[Any], Awaitable[Any]] = getattr(self._client, action)

        async def once() -> dict[str, Any]:
            try:
                response = await method(request)
            except TencentCloudSDKException as exc:
                raise _ApiError(action, str(exc.get_code()), str(exc.get_message())) from None
            except httpx.HTTPError as exc:
                raise _ApiError(action, "ClientNetworkError", type(exc).__name__) from None
            result: dict[str, Any] = json.loads(response.to_json_string())
            return result

        left = self._budget() if budget is None else budget
        return await retry(once, lambda exc: isinstance(exc, _ApiError) and is_retryable(exc.code), max(0.0, left))


class _ApiError(Exception):
    def __init__(self, action: str, code: str, message: str) -> None:
        super().__init__(f"{action}: {code}")
        self.action, self.code, self.message = action, code, message[:300]

    def cloud_error(self) -> CloudError:
        kind = classify(self.code)
        hint = HINTS.get(kind, "")
        text = f"CFS {self.action} failed: {self.code}: {self.message}" + (f" ({hint})" if hint else "")
        return CloudError(kind, text)


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
