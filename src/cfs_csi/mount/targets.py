"""Reaching a target directory below the kubelet's pods directory without following a symlink.

Every step goes through :mod:`cfs_csi.safefs` from an open handle of the pods directory: the parent is opened
component by component with ``O_NOFOLLOW``, the target itself too, and mount and unmount are then handed
``/proc/self/fd/N`` paths (with ``--no-canonicalize``) so that ``mount(8)`` never turns the handle back into a
string that a swapped component could redirect. A target is only ever removed with ``rmdir`` of a name in a
parent reached that way: a regular file, a symlink or a non-empty directory is never removed.

A walk can block when a component sits on a network file system that does not answer, so the node runs it with
:func:`in_thread` unless :func:`walk_is_local` shows, from the mount table, that every component it touches is on
the pods directory's own, local, file system (a thread hop costs about 0.3 ms, the step itself 0.06 ms: issue 15).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from cfs_csi import safefs
from cfs_csi.mount.mountinfo import MountTable
from cfs_csi.mount.podpath import PodPath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

T = TypeVar("T")


#: File-system types whose calls may wait on a server (``fuse.sshfs`` counts as ``fuse``).
NETWORK_FS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "fuse", "fuseblk", "afs", "lustre", "gfs2",
     "ocfs2", "beegfs", "gpfs", "virtiofs"}
)  # fmt: skip


def is_network_fs(fstype: str) -> bool:
    return fstype.split(".", 1)[0] in NETWORK_FS


def fs_is_local(table: MountTable, path: str) -> bool:
    """Whether the file system holding ``path`` (a real path) is one whose calls never wait on a server (pure)."""
    located = table.locate(path)
    return located is not None and not is_network_fs(located[0].fstype)


def walk_is_local(table: MountTable, pods_real: str, target: PodPath, include_target: bool) -> bool:
    """Whether no component below ``pods_real`` down to the target's parent (and the target itself, if
    ``include_target``) is a mount point in ``table``: a walk then stays on the pods directory's file system (pure).
    """
    parts = target.parts if include_target else target.parent
    path = pods_real.rstrip("/")
    for part in parts:
        path = f"{path}/{part}"
        if table.at(path) is not None:
            return False
    return True


class PodsDirMissing(Exception):
    """``<kubelet dir>/pods`` does not exist: ``--kubelet-dir`` does not name this node's kubelet directory."""


@dataclass(frozen=True)
class TargetRef:
    """A target named by its parent's handle (reached without symlinks) and its name in that parent.

    The caller closes it. The target itself is not opened: it may be a mount point of a dead NFS server.
    """

    parent_fd: int
    name: str
    #: The path as the kubelet names it: for messages only, never acted on.
    path: str

    @property
    def via_parent(self) -> str:
        """The target as a path that starts at the parent's handle: only the last component is looked up."""
        return f"/proc/self/fd/{self.parent_fd}/{self.name}"

    def close(self) -> None:
        os.close(self.parent_fd)


@dataclass(frozen=True)
class OpenTarget(TargetRef):
    """A target directory that is open: a mount onto :attr:`via_fd` lands on exactly this directory."""

    fd: int
    #: This call created the directory (so a failed publish removes it again).
    created: bool
    #: The parents this call created, relative to the pods directory, outermost first (removed again likewise).
    created_parents: tuple[str, ...] = ()

    @property
    def via_fd(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        os.close(self.fd)
        super().close()


@dataclass(frozen=True)
class PodsDir:
    """The kubelet's pods directory. Its own path is the admin's (trusted, may hold symlinks such as
    ``/var/lib/kubelet -> /data/kubelet``); nothing below it is trusted."""

    kubelet_dir: str

    @property
    def path(self) -> str:
        return os.path.join(os.path.abspath(self.kubelet_dir), "pods")

    def open(self) -> OpenPods:
        """A handle of the pods directory (the caller closes it), opened anew for each call so that a pods
        directory that is replaced or mounted anew is followed."""
        try:
            fd = os.open(self.path, _DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            raise PodsDirMissing(
                f"{self.path} is not a directory: is --kubelet-dir this node's kubelet directory?"
            ) from None
        try:
            return OpenPods(fd, os.readlink(f"/proc/self/fd/{fd}"))
        except BaseException:
            os.close(fd)
            raise


@dataclass(frozen=True)
class OpenPods:
    fd: int
    #: Where the directory really is: the kernel's mount table names mount points by this path.
    real_path: str

    def close(self) -> None:
        os.close(self.fd)

    def real(self, target: PodPath) -> str:
        """Where ``target`` would be in the mount table (a mount table path never goes through a symlink)."""
        return f"{self.real_path.rstrip('/')}/{target.relative}"

    def open_parent(self, target: PodPath) -> TargetRef | None:
        """The target's parent, opened without following symlinks; ``None`` if a component does not exist.

        :class:`~cfs_csi.safefs.UnsafePath` (INVALID_ARGUMENT) if a component is a symlink or not a directory.
        """
        try:
            with _naming(target):
                fd = safefs.open_dir(self.fd, "/".join(target.parent)) if target.parent else os.dup(self.fd)
        except FileNotFoundError:
            return None
        return TargetRef(fd, target.name, target.path)

    def make_target(self, target: PodPath, mode: int = 0o750) -> OpenTarget:
        """The target directory, created with its missing parents, each step refusing a symlink or a file."""
        parent = "/".join(target.parent)
        missing: tuple[str, ...] = ()
        with _naming(target):
            if not parent:
                parent_fd = os.dup(self.fd)
            else:
                try:
                    parent_fd = safefs.open_dir(self.fd, parent)  # as a rule: the kubelet creates the parents
                except FileNotFoundError:
                    missing = self._missing_parents(target)
                    parent_fd = safefs.make_dirs(self.fd, parent, mode)[0]
        try:
            created = False
            try:
                os.mkdir(target.name, mode, dir_fd=parent_fd)
                created = True
            except FileExistsError:
                pass
            with _naming(target):
                fd = safefs.open_dir(parent_fd, target.name)
        except BaseException:
            os.close(parent_fd)
            raise
        return OpenTarget(parent_fd, target.name, target.path, fd, created, missing)

    def _missing_parents(self, target: PodPath) -> tuple[str, ...]:
        """The target's parents that do not exist yet, outermost first (the target's parent is one of them)."""
        prefixes = ["/".join(target.parent[: depth + 1]) for depth in range(len(target.parent))]
        for index in range(len(prefixes) - 1, 0, -1):
            try:
                os.close(safefs.open_dir(self.fd, prefixes[index - 1]))
            except FileNotFoundError:
                continue
            return tuple(prefixes[index:])
        return tuple(prefixes)

    def remove_created(self, target: OpenTarget) -> None:
        """Undo :meth:`make_target` after a failed publish: ``rmdir`` the target if it created it, then the parents
        it created, innermost first, stopping at the first that is not empty (someone else put something there)."""
        if target.created and not remove_target(target):
            return
        for relative in reversed(target.created_parents):
            head, _, name = relative.rpartition("/")
            try:
                fd = safefs.open_dir(self.fd, head) if head else os.dup(self.fd)
            except (FileNotFoundError, safefs.UnsafePath):
                return
            try:
                if not remove_target(TargetRef(fd, name, relative)):
                    return
            finally:
                os.close(fd)


@contextlib.contextmanager
def _naming(target: PodPath) -> Iterator[None]:
    """Say which target a refused component belongs to (safefs names the component only)."""
    try:
        yield
    except safefs.UnsafePath as exc:
        raise safefs.UnsafePath(f"target {target.path}: {exc}") from None


def check_is_directory(target: TargetRef) -> None:
    """UnsafePath (INVALID_ARGUMENT) unless the target is a directory or absent: a symlink or a file is not a
    target the node could have published, and is left alone. Only for a target that is not a mount point: a
    ``stat`` of a mount point would wait on its (possibly dead) server."""
    try:
        mode = os.stat(target.name, dir_fd=target.parent_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"
        raise safefs.UnsafePath(f"{target.path} is {kind}; the node only publishes on directories and leaves it")


def remove_target(target: TargetRef) -> bool:
    """``rmdir`` the (unmounted) target; True if it is gone. Never removes anything else: a file, a symlink
    (``rmdir`` refuses both) or a directory with content (written while nothing was mounted) stays."""
    return try_remove_target(target) is True


def try_remove_target(target: TargetRef) -> bool | None:
    """:func:`remove_target`, telling apart a target that is still a mount point (``None``: EBUSY, something is
    mounted there) from one that stays for its content or kind (False). Right after an unmount this answers,
    without reading the mount table again, whether another mount was stacked underneath."""
    try:
        os.rmdir(target.name, dir_fd=target.parent_fd)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return None
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            return False
        raise
    return True


async def in_thread_unless(inline: bool, step: Callable[[], T]) -> T:
    """``step()`` here when ``inline`` (it cannot block: see :func:`walk_is_local`), else :func:`in_thread`."""
    return step() if inline else await in_thread(step)


async def in_thread(step: Callable[[], T]) -> T:
    """Run a blocking file-system step in a thread, and wait for it to end even if the call is cancelled.

    The step uses handles that the caller closes afterwards; closing one while the thread still runs would let
    the thread act through whatever the number is reused for next. A result that holds handles (``close()``)
    is closed when the call was cancelled meanwhile.
    """
    future = asyncio.ensure_future(asyncio.to_thread(step))
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])  # unlike awaiting it, waiting does not cancel the step
        except asyncio.CancelledError:
            cancelled = True
    result = future.result()
    if cancelled:
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise asyncio.CancelledError
    return result
