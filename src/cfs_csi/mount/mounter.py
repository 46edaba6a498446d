"""The last step of NodePublishVolume: turn an :class:`NfsMount` into a mount at a target.

:class:`NfsMounter` runs ``mount -t nfs``. :class:`BindMounter` serves the ``local`` backend and the CFS
emulator: it takes the very same :class:`NfsMount` (same source, same options, decided by the same code)
and bind-mounts the directory that backs that export instead, so only this last syscall differs.

The target is never given as a path string: ``mount`` gets ``/proc/self/fd/N`` of the target directory (opened
without following symlinks) and ``--no-canonicalize``, so the kernel mounts onto that very directory even if a
component of its path is swapped for a symlink meanwhile. (``mount.nfs`` resolves its mount point back to a
path with ``realpath`` before mounting; the node therefore checks the mount table after every mount and rolls a
mount back that does not show at the target.) ``umount`` likewise gets the target's name below its parent's
handle. The bind mounter's source (an export directory of the admin's ``--export-root`` or of the
emulator) is trusted; the target is not.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Protocol

from cfs_csi.mount import runner
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.mountinfo import MountEntry, MountTable
from cfs_csi.mount.targets import OpenTarget, TargetRef
from cfs_csi.volume.exports import ExportRoot
from cfs_csi.volume.nfs import NfsMount

log = logging.getLogger(__name__)

#: Per-mount flags that a bind mount can honour too (set by a remount); NFS-only options are not.
_VFS_FLAGS = frozenset({"ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime"})


class Mounter(Protocol):
    async def mount(self, nfs: NfsMount, target: OpenTarget) -> None:
        """Mount ``nfs`` onto the open directory ``target`` (which is not a mount point)."""
        ...

    def is_mount_of(self, nfs: NfsMount, entry: MountEntry, table: MountTable) -> bool:
        """Whether the mount ``entry`` shows the export of ``nfs``."""
        ...


class NfsMounter:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout

    async def mount(self, nfs: NfsMount, target: OpenTarget) -> None:
        await runner.run(
            ["mount", "--no-canonicalize", "-t", "nfs", "-o", ",".join(nfs.options), nfs.source, target.via_fd],
            self._timeout,
            pass_fds=(target.fd,),
            shown=(target.via_fd, target.path),
        )

    def is_mount_of(self, nfs: NfsMount, entry: MountEntry, table: MountTable) -> bool:
        # The kernel reports the source without a trailing "/" (and v4 mounts as fstype nfs4).
        return entry.fstype.startswith("nfs") and entry.source.rstrip("/") == nfs.source.rstrip("/")


class BindMounter:
    def __init__(self, exports: ExportRoot, timeout: float) -> None:
        self._exports = exports
        self._timeout = timeout

    def backing_dir(self, nfs: NfsMount) -> str:
        return str(self._exports.directory_for(nfs.host, nfs.fsid, nfs.path))

    async def mount(self, nfs: NfsMount, target: OpenTarget) -> None:
        source = self.backing_dir(nfs)
        if not await asyncio.to_thread(os.path.isdir, source):
            raise MountError(MountErrorKind.NOT_FOUND, f"export {nfs.source} does not exist ({source})")
        await runner.run(
            ["mount", "--no-canonicalize", "--bind", source, target.via_fd],
            self._timeout,
            pass_fds=(target.fd,),
            shown=(target.via_fd, target.path),
        )
        flags = [option for option in nfs.options if option in _VFS_FLAGS]
        if flags:
            try:
                await self._remount(source, target, flags)
            except (MountError, OSError):
                # Never leave a writable mount behind when read-only was asked for.
                await unmount(target, self._timeout)
                raise

    async def _remount(self, source: str, target: OpenTarget, flags: list[str]) -> None:
        """Apply per-mount flags to the new bind mount, reached as the mount root now at the target's name.

        The handle opened before mounting shows the directory underneath, not the mount; the name is opened
        again (``O_NOFOLLOW``) and must be the root of a bind of ``source`` (same device and inode).
        """
        root = os.open(target.name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=target.parent_fd)
        try:
            seen, wanted = os.fstat(root), os.stat(source)
            if (seen.st_dev, seen.st_ino) != (wanted.st_dev, wanted.st_ino):
                raise MountError(MountErrorKind.FAILED, f"{target.path} does not show the bind mount of {source}")
            via = f"/proc/self/fd/{root}"
            argv = ["mount", "--no-canonicalize", "-o", ",".join(["remount", "bind", *flags]), via]
            await runner.run(argv, self._timeout, pass_fds=(root,), shown=(via, target.path))
        finally:
            os.close(root)  # an open handle of the mount root would keep it busy

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


async def unmount(target: TargetRef, timeout: float) -> None:
    """Unmount ``target``; not being mounted is not an error for the caller to see (checked before).

    A mount whose NFS server is gone (file system deleted, mount target unreachable) makes ``umount`` hang or
    fail with ESTALE/EIO, and the kubelet cannot clean up the pod until it is gone. Such a mount is then
    force-unmounted (``umount -f`` aborts the pending NFS requests) and, failing that, detached (``umount -l``):
    it leaves the tree at once and the kernel lets go when its last open file closes. Neither writes or deletes
    anything; the data stays on the server.

    ``umount`` is given the target's name below its parent's handle, so no component above the target is
    looked up again by name (the caller has checked that a mount is at exactly this path).
    """
    via, fds, shown = target.via_parent, (target.parent_fd,), (target.via_parent, target.path)
    try:
        await runner.run(["umount", "--no-canonicalize", via], timeout, pass_fds=fds, shown=shown)
        return
    except MountError as exc:
        if not _server_gone(exc):
            raise
        failure = exc
    for flag in ("-f", "-l"):
        log.warning("unmounting %s: %s; trying umount %s", target.path, failure.message, flag)
        try:
            await runner.run(["umount", "--no-canonicalize", flag, via], timeout, pass_fds=fds, shown=shown)
            return
        except MountError as exc:
            failure = exc
    raise failure
