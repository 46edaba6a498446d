"""The capacity actions: directory quotas (``SetUserQuota``, ``DeleteUserQuota``, ``DescribeUserQuota``) and the
file system's size limit (``UpdateCfsFileSystemSizeLimit``), over the cloud's store.

A quota's usage (``CapacityUsed``, ``FileUsed``) is measured from the directory's real content on every
``DescribeUserQuota``, after the transaction (a walk must not hold the store's lock), with ``fstree.usage``:
no symlink followed, no mount crossed, at most ``USAGE_MAX_ENTRIES`` entries. The limits are recorded and
shown but not enforced on the local directory: a write beyond them succeeds (the real service fails it).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cfs_csi.emulator import errors, model, quotas
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.fstree import Usage, open_below, usage
from cfs_csi.emulator.model import FileSystem
from cfs_csi.emulator.quotas import Quota
from cfs_csi.emulator.validate import SIZE_LIMIT_TYPES, parse_size_limit

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cfs_csi.emulator.actions import Action, Cloud, Response

USAGE_MAX_ENTRIES = 100_000
"""The bound of one quota directory's usage walk; beyond it the figures are what was counted so far."""


def _require_available(fs: FileSystem) -> None:
    if fs.state != model.AVAILABLE:
        raise ApiError(errors.INVALID_FS_STATUS, f"{fs.id} is {fs.state}; this needs an available file system")


def measure(root: Path | None, quota: Quota) -> Usage:
    """The usage of ``quota``'s directory below the data directory ``root`` (zero if either is missing)."""
    if root is None:
        return Usage(0, 0)
    try:
        fd = open_below(root, quota.parts)
    except OSError:
        return Usage(0, 0)
    try:
        return usage(fd, USAGE_MAX_ENTRIES)
    finally:
        os.close(fd)


class CapacityActions:
    def __init__(self, cloud: Cloud) -> None:
        self._cloud = cloud

    def actions(self) -> dict[str, Action]:
        return {
            "SetUserQuota": self.set_user_quota,
            "DeleteUserQuota": self.delete_user_quota,
            "DescribeUserQuota": self.describe_user_quota,
            "UpdateCfsFileSystemSizeLimit": self.update_size_limit,
        }

    def update_size_limit(self, params: Mapping[str, object]) -> Response:
        """Record the limit: ``DescribeCfsFileSystems`` then shows it as ``SizeLimit`` and ``Capacity`` (GiB).
        A limit below what the file system holds is accepted (the documentation is silent; writes would fail)."""
        fs_id, limit = parse_size_limit(params)
        cloud = self._cloud
        with cloud.session():
            fs = cloud.existing(fs_id)
            if fs.storage_type not in SIZE_LIMIT_TYPES:
                message = f"{fs_id} is {fs.storage_type}: only {', '.join(SIZE_LIMIT_TYPES)} file systems take a limit"
                raise ApiError(errors.UNSUPPORTED_OPERATION, message)
            _require_available(fs)
            cloud.store.update(replace(fs, size_limit_gib=limit))
        return {}

    def set_user_quota(self, params: Mapping[str, object]) -> Response:
        """Set or change a directory quota. Setting the same limits again changes nothing (idempotent)."""
        request = quotas.parse_set(params)
        cloud = self._cloud
        with cloud.session() as now:
            fs = cloud.existing(request.fs_id)
            _require_available(fs)
            existing = cloud.store.quotas.of(fs.id)
            same = next((q for q in existing if q.path == request.path), None)
            quotas.check_nesting(request.path, (q for q in existing if q.path != request.path))
            if same is None and len(existing) >= quotas.MAX_QUOTAS:
                raise ApiError(errors.QUOTAS_EXCEEDED, f"{fs.id} has {quotas.MAX_QUOTAS} directory quotas already")
            self._check_directory(fs, request.path)
            if same is None or (same.capacity_gib, same.file_limit) != (request.capacity_gib, request.file_limit):
                ready = now + cloud.faults.config.quota_delay
                created = same.created_at if same else now
                limits = (request.capacity_gib, request.file_limit)
                cloud.store.quotas.put(Quota(fs.id, request.path, *limits, created_at=created, ready_at=ready))
        return {"UserId": request.user_id}

    def _check_directory(self, fs: FileSystem, path: str) -> None:
        root = self._cloud.data_dir(fs)
        if root is None:
            return  # no export root: nothing to look at
        try:
            os.close(open_below(root, quotas.split_path(path)))
        except OSError as exc:
            message = f"{path} does not exist in {fs.id} or is not a directory (a symlink is not)"
            raise ApiError(errors.CFS_PATH, message) from exc

    def delete_user_quota(self, params: Mapping[str, object]) -> Response:
        """Delete a directory quota; deleting one that does not exist succeeds too (our choice, see the docs)."""
        fs_id, path = quotas.parse_delete(params)
        cloud = self._cloud
        with cloud.session():
            fs = cloud.existing(fs_id)
            if fs.state == model.CREATING:
                raise ApiError(errors.INVALID_FS_STATUS, f"{fs_id} is still creating")
            cloud.store.quotas.delete(fs.id, path)
        return {}

    def describe_user_quota(self, params: Mapping[str, object]) -> Response:
        query = quotas.parse_describe(params)
        cloud = self._cloud
        with cloud.session() as now:
            fs = cloud.existing(query.fs_id)
            found = [q for q in cloud.store.quotas.of(fs.id) if query.matches(q)]
            root = cloud.data_dir(fs)
        page = found[query.offset : query.offset + query.limit]
        entries = [quotas.user_quota(q, measure(root, q), now) for q in page]
        return {"TotalCount": len(found), "UserQuotaInfo": entries}
