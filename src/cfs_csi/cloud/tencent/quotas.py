"""Directory quotas and the file-system size limit for the tencent backend (the calls; decisions are elsewhere).

Quotas are ``UserType=Dir`` quotas on ``/cfs/<dir>`` paths (:mod:`cfs_csi.volume.quota` decides the size and
writes the path). ``SetUserQuota`` on a path that has a quota changes it, so setting is idempotent; the quota
is read back with ``DescribeUserQuota`` (usage in whole GiB, as the API counts it). The caller proves the file
system ours first (:func:`cfs_csi.cloud.ownership.quota_refusal`).

The size limit (``UpdateCfsFileSystemSizeLimit``, ``FsLimit`` in GiB) exists for Standard (SD) file systems only,
and Tencent enables it per account on request; a refusal is reported with the cloud's code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cfs_csi.cloud.base import DirectoryQuota
from cfs_csi.cloud.errors import CloudError
from cfs_csi.cloud.tencent.api import ApiError
from cfs_csi.volume.capacity import stored_capacity
from cfs_csi.volume.params import StorageType
from cfs_csi.volume.quota import GIB

_PAGE = 100
#: Answers that mean "there is no such quota": deleting it is done.
QUOTA_GONE_CODES = frozenset({"ResourceNotFound", "ResourceNotFound.QuotaNotFound"})

#: Storage types whose file systems have a capacity limit to raise.
SIZE_LIMITED = frozenset({StorageType.SD})

Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class TencentQuotas:
    def __init__(self, call: Call, error: Callable[[ApiError], CloudError]) -> None:
        self._call, self._error = call, error

    async def set(self, fs_id: str, path: str, capacity_gib: int) -> None:
        request = {"FileSystemId": fs_id, "UserType": "Dir", "DirectoryPath": path, "CapacityHardLimit": capacity_gib}
        try:
            await self._call("SetUserQuota", request)
        except ApiError as exc:
            raise self._error(exc) from None

    async def get(self, fs_id: str, path: str) -> DirectoryQuota | None:
        offset = 0
        filters = [{"Name": "UserType", "Values": ["Dir"]}]
        while True:
            try:
                page = await self._call(
                    "DescribeUserQuota", {"FileSystemId": fs_id, "Filters": filters, "Offset": offset, "Limit": _PAGE}
                )
            except ApiError as exc:
                raise self._error(exc) from None
            batch = page.get("UserQuotaInfo") or []
            for info in batch:
                if info.get("DirectoryPath") == path and info.get("UserType", "Dir") == "Dir":
                    return _quota(fs_id, info)
            offset += len(batch)
            if not batch or offset >= int(page.get("TotalCount") or 0):
                return None

    async def delete(self, fs_id: str, path: str) -> None:
        try:
            await self._call("DeleteUserQuota", {"FileSystemId": fs_id, "UserType": "Dir", "DirectoryPath": path})
        except ApiError as exc:
            if exc.code in QUOTA_GONE_CODES:
                return
            raise self._error(exc) from None

    async def set_size_limit(self, fs_id: str, capacity_gib: int) -> None:
        try:
            await self._call("UpdateCfsFileSystemSizeLimit", {"FileSystemId": fs_id, "FsLimit": capacity_gib})
        except ApiError as exc:
            raise self._error(exc) from None


def _quota(fs_id: str, info: dict[str, Any]) -> DirectoryQuota:
    return DirectoryQuota(
        fs_id=fs_id,
        path=str(info.get("DirectoryPath") or ""),
        capacity_bytes=stored_capacity(info.get("CapacityHardLimit")) * GIB,
        used_bytes=stored_capacity(info.get("CapacityUsed")) * GIB,
        files_used=stored_capacity(info.get("FileUsed")),
        state=str(info.get("Status") or ""),
    )


def size_limit_bytes(info: dict[str, Any]) -> int:
    """A file system's capacity limit in bytes (``SizeLimit`` is GiB; 0 = none)."""
    limit = stored_capacity(info.get("SizeLimit"))
    return limit * GIB if limit * GIB <= 2**63 - 1 else 0
