"""The last step of NodePublishVolume: turn an :class:`NfsMount` into a mount at a target.

:class:`NfsMounter` runs ``mount -t nfs``. :class:`BindMounter` serves the ``local`` backend and the CFS
emulator: it takes the very same :class:`NfsMount` (same source, same options, decided by the same code)
and bind-mounts the directory that backs that export instead, so only this last syscall differs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Protocol

from cfs_csi.mount import runner
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.mountinfo import MountEntry, MountTable
from cfs_csi.volume.exports import ExportRoot
from cfs_csi.volume.nfs import NfsMount

log = logging.getLogger(__name__)

#: Per-mount flags that a bind mount can honour too (set by a remount); NFS-only options are not.
_VFS_FLAGS = frozenset({"ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime"})


class Mounter(Protocol):
    async def mount(self, nfs: NfsMount, target: str) -> None:
        """Mount ``nfs`` at ``target`` (which exists and is not a mount point)."""
        ...

    def is_mount_of(self, nfs: NfsMount, entry: MountEntry, table: MountTable) -> bool:
        """Whether the mount ``entry`` shows the export of ``nfs``."""
        ...


class NfsMounter:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout

    async def mount(self, nfs: NfsMount, target: str) -> None:
        await runner.run(["mount", "-t", "nfs", "-o", ",".join(nfs.options), nfs.source, target], self._timeout)

    def is_mount_of(self, nfs: NfsMount, entry: MountEntry, table: MountTable) -> bool:
        # The kernel reports the source without a trailing "/" (and v4 mounts as fstype nfs4).
        return entry.fstype.startswith("nfs") and entry.source.rstrip("/") == nfs.source.rstrip("/")


class BindMounter:
    def __init__(self, exports: ExportRoot, timeout: float) -> None:
        self._exports = exports
        self._timeout = timeout

    def backing_dir(self, nfs: NfsMount) -> str:
        return str(self._exports.directory_for(nfs.host, nfs.fsid, nfs.path))

    async def mount(self, nfs: NfsMount, target: str) -> None:
        source = self.backing_dir(nfs)
        if not await asyncio.to_thread(os.path.isdir, source):
            raise MountError(MountErrorKind.NOT_FOUND, f"export {nfs.source} does not exist ({source})")
        await runner.run(["mount", "--bind", source, target], self._timeout)
        flags = [option for option in nfs.options if option in _VFS_FLAGS]
        if flags:
            try:
                await runner.run(["mount", "-o", ",".join(["remount", "bind", *flags]), target], self._timeout)
            except MountError:
                # Never leave a writable mount behind when read-only was asked for.
                await unmount(target, self._timeout)
                raise

    def is_mount_of(self, nfs: NfsMount, entry: MountEntry, table: MountTable) -> bool:
        located = table.locate(os.path.realpath(self.backing_dir(nfs)))
        if located is None:
            return False
        holder, root = located
        return entry.device == holder.device and entry.root == root


#: What ``umount`` says about a mount whose server is gone (besides hanging until it is killed).
_SERVER_GONE = ("Stale file handle", "Input/output error", "Transport endpoint is not connected", "Host is down")


def _server_gone(error: MountError) -> bool:
    return error.kind is MountErrorKind.TIMEOUT or any(words in error.message for words in _SERVER_GONE)


async def unmount(target: str, timeout: float) -> None:
    """Unmount ``target``; not being mounted is not an error for the caller to see (checked before).

    A mount whose NFS server is gone (file system deleted, mount target unreachable) makes ``umount`` hang or
    fail with ESTALE/EIO, and the kubelet cannot clean up the pod until it is gone. Such a mount is then
    force-unmounted (``umount -f`` aborts the pending NFS requests) and, failing that, detached (``umount -l``):
    it leaves the tree at once and the kernel lets go when its last open file closes. Neither writes or deletes
    anything; the data stays on the server.
    """
    try:
        await runner.run(["umount", target], timeout)
        return
    except MountError as exc:
        if not _server_gone(exc):
            raise
        failure = exc
    for flag in ("-f", "-l"):
        log.warning("unmounting %s: %s; trying umount %s", target, failure.message, flag)
        try:
            await runner.run(["umount", flag, target], timeout)
            return
        except MountError as exc:
            failure = exc
    raise failure
