"""The last step of NodePublishVolume: turn an :class:`NfsMount` into a mount at a target.

:class:`NfsMounter` runs the system's NFS mount helper, ``mount.nfs``, itself (what ``mount -t nfs`` would run,
without ``mount(8)`` in between), or ``mount -t nfs`` where there is no helper. :class:`BindMounter` serves the
``local`` backend and the CFS emulator: it takes the very same :class:`NfsMount` (same source, same options,
decided by the same code) and bind-mounts the directory that backs that export instead, so only this last
syscall differs.

The target is never given as a path string: ``mount`` or ``mount.nfs`` gets ``/proc/self/fd/N`` of the target
directory (opened without following symlinks; ``mount`` also ``--no-canonicalize``), so the kernel mounts onto
that very directory even if a component of its path is swapped for a symlink meanwhile. (``mount.nfs`` resolves
its mount point back to a path with ``realpath`` before mounting; the node therefore checks the mount table after
every mount and rolls a mount back that does not show at the target.) ``umount`` likewise gets the target's name
below its parent's handle. The bind mounter's source (an export directory of the admin's ``--export-root`` or of
the emulator) is trusted; the target is not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from cfs_csi.mount import runner
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.mountinfo import MountEntry, MountTable
from cfs_csi.mount.targets import OpenTarget, TargetRef
from cfs_csi.mount.umount2 import MNT_DETACH, MNT_FORCE, UNMOUNTS
from cfs_csi.volume.exports import ExportRoot
from cfs_csi.volume.nfs import NfsMount
from cfs_csi.volume.params import NfsVersion

log = logging.getLogger(__name__)

#: Per-mount flags that a bind mount can honour too (set by a remount); NFS-only options are not.
_VFS_FLAGS = frozenset({"ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime"})


#: Where ``mount(8)`` looks for a file system's helper program (util-linux's search path, in its order).
HELPER_DIRS = ("/sbin", "/sbin/fs.d", "/sbin/fs")


def find_mount_helper(fstype: str = "nfs", dirs: tuple[str, ...] = HELPER_DIRS) -> str | None:
    """The helper ``mount -t <fstype>`` would run (``mount.<fstype>`` in the first of ``dirs`` that has an
    executable one), or None."""
    for directory in dirs:
        candidate = os.path.join(directory, f"mount.{fstype}")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def chosen_helper(choice: str, dirs: tuple[str, ...] = HELPER_DIRS) -> str | None:
    """The ``mount.nfs`` that ``--nfs-mount-helper`` names: ``none`` (None: run ``mount -t nfs``), ``auto`` (the
    system's, if any) or an absolute path (used as given; a missing one fails each mount with its error)."""
    if choice == "none":
        return None
    if choice == "auto":
        return find_mount_helper("nfs", dirs)
    if not os.path.isabs(choice):
        raise ValueError(f"--nfs-mount-helper must be auto, none or an absolute path, not {choice!r}")
    return choice


class Mounter(Protocol):
    def unmounts_by_syscall(self, version: NfsVersion | None) -> bool:
        """Whether :func:`unmount` may use the ``umount2`` system call for a mount of this mounter made with NFS
        ``version`` (None: not known, a record from an older plugin), or must run ``umount(8)`` (see
        :class:`NfsMounter`)."""
        ...

    async def mount(self, nfs: NfsMount, target: OpenTarget) -> None:
        """Mount ``nfs`` onto the open directory ``target`` (which is not a mount point)."""
        ...

    def is_mount_of(self, nfs: NfsMount, entry: MountEntry, table: MountTable) -> bool:
        """Whether the mount ``entry`` shows the export of ``nfs``."""
        ...


class NfsMounter:
    """Mounts NFS through ``helper`` (the path of ``mount.nfs``) when given, else through ``mount -t nfs``.

    Why the helper directly (issue 15): ``mount -t nfs`` does nothing for an NFS mount but find ``mount.nfs`` and
    run it with the source, the mount point and ``-o <options>``; skipping it saves a process (about 2 ms here)
    per publish. ``-n``: no ``/etc/mtab`` to update (the node reads the kernel's table only).

    Unmounting: ``umount(8)`` runs ``umount.nfs``, which for NFSv3 also tells the server's mountd (UMNT) to drop
    this client from its list of mounts (``rmtab``, what ``showmount -a`` shows). NFSv4 has no such call, so a v4
    mount is unmounted with the system call (no process); a v3 mount, or one of unknown version, keeps the
    command.
    """

    def __init__(self, timeout: float, helper: str | None = None) -> None:
        self._timeout = timeout
        self._helper = helper
        log.info("NFS mounts run %s", helper or "mount -t nfs")

    def unmounts_by_syscall(self, version: NfsVersion | None) -> bool:
        return version is NfsVersion.V4

    async def mount(self, nfs: NfsMount, target: OpenTarget) -> None:
        options = ",".join(nfs.options)
        if self._helper is not None:
            argv = [self._helper, nfs.source, target.via_fd, "-n", "-o", options]
        else:
            argv = ["mount", "--no-canonicalize", "-t", "nfs", "-o", options, nfs.source, target.via_fd]
        try:
            await runner.run(argv, self._timeout, pass_fds=(target.fd,), shown=(target.via_fd, target.path))
        except MountError as exc:
            if "access denied" in exc.message:
                raise MountError(exc.kind, f"{exc.message} (the export path may not exist, or the file system's "
                                 "permission group does not admit this node)") from None  # fmt: skip
            raise

    def is_mount_of(self, nfs: NfsMount, entry: MountEntry, table: MountTable) -> bool:
        # The kernel reports the source without a trailing "/" (and v4 mounts as fstype nfs4).
        return entry.fstype.startswith("nfs") and entry.source.rstrip("/") == nfs.source.rstrip("/")


class BindMounter:
    def __init__(self, exports: ExportRoot, timeout: float) -> None:
        self._exports = exports
        self._timeout = timeout

    def unmounts_by_syscall(self, version: NfsVersion | None) -> bool:
        """A bind mount needs nothing but the system call (issue 15: no process per unmount)."""
        return True

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
                await unmount(target, self._timeout, syscall=True)
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
_LADDER = ((), ("-f",), ("-l",))
#: The same ladder as ``umount2`` flags.
_SYSCALL_LADDER = (0, MNT_FORCE, MNT_DETACH)


def _server_gone(error: MountError) -> bool:
    """Whether a failed step is worth the next one: the server is gone or does not answer (pure)."""
    return error.kind in (MountErrorKind.TIMEOUT, MountErrorKind.STALE) or any(
        words in error.message for words in _SERVER_GONE
    )


def ladder_budget(configured: float, caller_left: float) -> float:
    """How long the whole unmount ladder may take: the configured timeout, but never past the caller's deadline
    (``caller_left`` seconds away, ``inf`` without one), less a margin so that the answer reaches the caller
    before it gives up (a tenth of the time left, at most a second)."""
    return max(0.0, min(configured, caller_left - min(1.0, caller_left / 10)))


def step_timeout(left: float, steps_left: int) -> float:
    """The share of the ladder's time ``left`` that the next step gets: half while another step can follow (so
    ``umount -f`` and ``umount -l`` still have time after a hung ``umount``), all of it for the last one."""
    return left if steps_left <= 1 else left / 2


async def unmount(
    target: TargetRef, timeout: float, still_mounted: Callable[[], bool] | None = None, *, syscall: bool = False
) -> None:
    """Unmount ``target`` within ``timeout`` seconds overall; not being mounted is not an error for the caller to
    see (checked before).

    A mount whose NFS server is gone (file system deleted, mount target unreachable) makes ``umount`` hang or
    fail with ESTALE/EIO, and the kubelet cannot clean up the pod until it is gone. Such a mount is then
    force-unmounted (``umount -f`` aborts the pending NFS requests) and, failing that, detached (``umount -l``):
    it leaves the tree at once and the kernel lets go when its last open file closes. Neither writes or deletes
    anything; the data stays on the server.

    ``still_mounted`` (reads the mount table, never the mount) is asked after every failed step: a mount that
    went away meanwhile (a step that timed out had done its work, another process unmounted it) is a success,
    not an error from the next step's "not mounted". The steps share ``timeout``: the whole ladder never takes
    longer (the caller passes the smaller of its deadline and the configured timeout).

    ``umount`` is given the target's name below its parent's handle, so no component above the target is
    looked up again by name (the caller has checked that a mount is at exactly this path). With ``syscall``, the
    steps are ``umount2`` calls (:mod:`cfs_csi.mount.umount2`: same path, same ladder, same time shares, a
    daemon thread per step that keeps the call's lock file locked until the kernel returns).
    """
    via, fds, shown = target.via_parent, (target.parent_fd,), (target.via_parent, target.path)
    end = time.monotonic() + timeout
    failure: MountError | None = None
    for index, flags in enumerate(_LADDER):
        if failure is not None:
            log.warning("unmounting %s: %s; trying umount %s", target.path, failure.message, flags[0])
        step = step_timeout(end - time.monotonic(), len(_LADDER) - index)
        try:
            if not syscall:
                await runner.run(["umount", "--no-canonicalize", *flags, via], step, pass_fds=fds, shown=shown)
            elif runner.stopping():
                raise MountError(MountErrorKind.FAILED, "umount not started: the plugin is stopping")
            else:
                await UNMOUNTS.unmount(target, _SYSCALL_LADDER[index], step, runner.inherited())
            return
        except MountError as exc:
            failure = exc
        if still_mounted is not None and not await asyncio.to_thread(still_mounted):
            log.info("%s is no longer mounted after umount %s failed (%s)", target.path, " ".join(flags) or "",
                     failure.message)  # fmt: skip
            return
        if (index == 0 and not _server_gone(failure)) or time.monotonic() >= end:
            break  # a busy mount is not forced; and the time is up
    assert failure is not None
    raise failure
