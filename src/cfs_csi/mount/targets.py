"""Reaching a target directory below the kubelet's pods directory without following a symlink.

Every step goes through :mod:`cfs_csi.safefs` from an open handle of the pods directory: the parent is opened
component by component with ``O_NOFOLLOW``, the target itself too, and mount and unmount are then handed
``/proc/self/fd/N`` paths (with ``--no-canonicalize``) so that ``mount(8)`` never turns the handle back into a
string that a swapped component could redirect. A target is only ever removed with ``rmdir`` of a name in a
parent reached that way: a regular file, a symlink or a non-empty directory is never removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from cfs_csi import safefs
from cfs_csi.mount.podpath import PodPath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class PodsDirMissing(Exception):
    """``<kubelet dir>/pods`` does not exist: ``--kubelet-dir`` does not name this node's kubelet directory."""


@dataclass(frozen=True)
class TargetRef:
    """A target named by its parent's handle (reached without symlinks) and its name in that parent."""

    parent_fd: int
    name: str
    #: The path as the kubelet names it: for messages only, never acted on.
    path: str

    @property
    def via_parent(self) -> str:
        """The target as a path that starts at the parent's handle: only the last component is looked up."""
        return f"/proc/self/fd/{self.parent_fd}/{self.name}"


@dataclass(frozen=True)
class OpenTarget(TargetRef):
    """A target directory that is open: a mount onto :attr:`via_fd` lands on exactly this directory."""

    fd: int
    #: This call created the directory (so a failed publish removes it again).
    created: bool

    @property
    def via_fd(self) -> str:
        return f"/proc/self/fd/{self.fd}"


class PodsDir:
    """The kubelet's pods directory. Its own path is the admin's (trusted, may hold symlinks such as
    ``/var/lib/kubelet -> /data/kubelet``); nothing below it is trusted."""

    def __init__(self, kubelet_dir: str) -> None:
        self.path = os.path.join(os.path.normpath(kubelet_dir), "pods")

    @contextlib.contextmanager
    def open(self) -> Iterator[OpenPods]:
        try:
            fd = os.open(self.path, _DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            raise PodsDirMissing(
                f"{self.path} is not a directory: is --kubelet-dir this node's kubelet directory?"
            ) from None
        try:
            yield OpenPods(fd, os.readlink(f"/proc/self/fd/{fd}"))
        finally:
            os.close(fd)


@dataclass(frozen=True)
class OpenPods:
    fd: int
    #: Where the directory really is: the kernel's mount table names mount points by this path.
    real_path: str

    def real(self, target: PodPath) -> str:
        """Where ``target`` would be in the mount table (a mount table path never goes through a symlink)."""
        return f"{self.real_path.rstrip('/')}/{target.relative}"

    @contextlib.contextmanager
    def parent(self, target: PodPath) -> Iterator[TargetRef | None]:
        """The target's parent, opened without following symlinks; ``None`` if a component does not exist.

        :class:`~cfs_csi.safefs.UnsafePath` (INVALID_ARGUMENT) if a component is a symlink or not a directory.
        """
        try:
            fd = safefs.open_dir(self.fd, "/".join(target.parent)) if target.parent else os.dup(self.fd)
        except FileNotFoundError:
            yield None
            return
        try:
            yield TargetRef(fd, target.name, target.path)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def make_target(self, target: PodPath, mode: int = 0o750) -> Iterator[OpenTarget]:
        """The target directory, created with its missing parents, each step refusing a symlink or a file."""
        parent = "/".join(target.parent)
        parent_fd = safefs.make_dirs(self.fd, parent, mode)[0] if parent else os.dup(self.fd)
        try:
            created = False
            try:
                os.mkdir(target.name, mode, dir_fd=parent_fd)
                created = True
            except FileExistsError:
                pass
            fd = safefs.open_dir(parent_fd, target.name)
            try:
                yield OpenTarget(parent_fd, target.name, target.path, fd, created)
            finally:
                os.close(fd)
        finally:
            os.close(parent_fd)


def check_is_directory(target: TargetRef) -> None:
    """InvalidArgument unless the (unmounted) target is a directory or absent: a symlink or a file is not a
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
    try:
        os.rmdir(target.name, dir_fd=target.parent_fd)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EBUSY):
            return False
        raise
    return True
