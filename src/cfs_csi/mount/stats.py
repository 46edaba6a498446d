"""Volume statistics with a deadline: ``statvfs`` on a dead NFS mount blocks in the kernel forever."""

from __future__ import annotations

import asyncio
import errno
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cfs_csi.mount.errors import MountError, MountErrorKind

# A small pool of its own: threads stuck on dead mounts must not starve the default executor.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="statvfs")

_STALE = {errno.ESTALE, errno.EIO, errno.ENOTCONN, errno.EHOSTDOWN}


@dataclass(frozen=True)
class VolumeStats:
    total_bytes: int
    available_bytes: int
    used_bytes: int
    total_inodes: int
    free_inodes: int
    used_inodes: int


async def volume_stats(path: str, timeout: float) -> VolumeStats:
    """``statvfs`` of ``path``; :class:`MountError` STALE for a broken mount, TIMEOUT for a hung one."""
    loop = asyncio.get_running_loop()
    try:
        st = await asyncio.wait_for(loop.run_in_executor(_POOL, os.statvfs, path), timeout)
    except TimeoutError:
        raise MountError(MountErrorKind.TIMEOUT, f"statvfs of {path} did not answer within {timeout:.0f}s") from None
    except OSError as exc:
        kind = MountErrorKind.STALE if exc.errno in _STALE else MountErrorKind.FAILED
        raise MountError(kind, f"statvfs of {path} failed: {exc.strerror}") from exc
    total = st.f_blocks * st.f_frsize
    available = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return VolumeStats(
        total_bytes=total,
        available_bytes=available,
        used_bytes=used,
        total_inodes=st.f_files,
        free_inodes=st.f_ffree,
        used_inodes=st.f_files - st.f_ffree,
    )
