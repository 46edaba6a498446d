"""The provisioner's cloud access: directory quotas on the share's file system, through :class:`FileStorage`.

The backend is built on first use, not at start-up: a provisioner whose classes never set a quota (``off``, or
no claim yet) never loads the cloud client, and stays at its idle memory. Every call names the share's own file
system (the operator gives its cloud id as ``CFS_ID``), never one a PV or a claim names, and the backend
refuses to touch quotas on a file system it cannot prove is a volume or shared class of this driver.

Every failure is a :class:`QuotaFailure`: the cloud's :class:`ErrorKind` (``None`` when the cloud was never
reached: no cloud id, a backend that cannot be built) and a message fit for an event (no secrets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.metrics import record as metrics

if TYPE_CHECKING:
    from cfs_csi.cloud.base import DirectoryQuota, FileStorage

T = TypeVar("T")


class QuotaFailure(Exception):
    def __init__(self, kind: ErrorKind | None, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


class ShareQuotas:
    """Directory quotas of one file system (``fs_id``), with a backend built by ``build`` when first needed."""

    def __init__(self, fs_id: str, build: Callable[[], FileStorage] | None) -> None:
        self.fs_id = fs_id
        self._build = build
        self._storage: FileStorage | None = None
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the backend was built (for tests and benchmarks: the idle process has none)."""
        return self._storage is not None

    async def _backend(self) -> FileStorage:
        if not self.fs_id:
            raise QuotaFailure(None, "the provisioner does not know its file system's cloud id (CFS_ID, which the "
                                     "operator sets); is its Deployment from an older operator?")  # fmt: skip
        if self._build is None:
            raise QuotaFailure(None, "the provisioner was started without cloud access (no --backend)")
        async with self._lock:
            if self._storage is None:
                try:  # in a thread: the tencent backend may ask the metadata service for its region
                    self._storage = await asyncio.to_thread(self._build)
                except (RuntimeError, ValueError, OSError) as exc:
                    raise QuotaFailure(None, f"the cloud backend could not be set up: {exc}") from None
            return self._storage

    async def set(self, path: str, capacity_gib: int) -> DirectoryQuota:
        try:
            storage = await self._backend()
            quota = await _calling(storage.set_directory_quota(self.fs_id, path, capacity_gib))
        except QuotaFailure:
            metrics.quota("set", "failed")
            raise
        metrics.quota("set", "ok")
        return quota

    async def delete(self, path: str) -> None:
        try:
            storage = await self._backend()
            await _calling(storage.delete_directory_quota(self.fs_id, path))
        except QuotaFailure:
            metrics.quota("remove", "failed")
            raise
        metrics.quota("remove", "ok")

    async def get(self, path: str) -> DirectoryQuota | None:
        storage = await self._backend()
        return await _calling(storage.get_directory_quota(self.fs_id, path))


async def _calling(call: Awaitable[T]) -> T:
    """``await call``, its failures as :class:`QuotaFailure`."""
    try:
        return await call
    except CloudError as exc:
        raise QuotaFailure(exc.kind, exc.message) from None
    except (OSError, TimeoutError) as exc:  # the transport's own, should one escape the backend
        raise QuotaFailure(ErrorKind.UNAVAILABLE, f"the CFS API did not answer: {exc}") from None
