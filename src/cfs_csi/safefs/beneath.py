"""Open and create directories below a root handle, one component at a time, refusing symlinks.

The walk is ``openat(parent, component, O_DIRECTORY | O_NOFOLLOW)`` per component, so the answer is the
directory that was really there when each step was taken: a component replaced by a symlink (to ``..``, to
``/``, to another tenant's directory) fails the step instead of redirecting it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from cfs_csi.volume.errors import InvalidArgument

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_COMPONENT = 255


class UnsafePath(InvalidArgument):
    """A path that cannot be acted on safely: a component is a symlink or not a directory."""


def components(relative: str) -> list[str]:
    """The components of a relative path; InvalidArgument if it is empty, absolute, or has ``''``, ``.``, ``..``,
    a NUL or a component too long for a file system."""
    if not relative or relative.startswith("/"):
        raise InvalidArgument(f"path {relative[:100]!r} must be relative and not empty")
    parts = relative.rstrip("/").split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidArgument(f"path {relative[:100]!r} has an empty, '.' or '..' component")
        if "\x00" in part or len(part.encode(errors="surrogateescape")) > _MAX_COMPONENT:
            raise InvalidArgument(f"path {relative[:100]!r} has a component that is not a valid file name")
    return parts


def _step(parent_fd: int, name: str, where: str) -> int:
    """Open directory ``name`` in ``parent_fd`` without following a symlink; UnsafePath names why not."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
    try:
        mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "vanished while being opened", where) from None
    kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"
    raise UnsafePath(f"{where} is {kind}; refusing to follow or act on it")


def open_dir(root_fd: int, relative: str) -> int:
    """An ``O_DIRECTORY`` handle of ``relative`` below ``root_fd`` (the caller closes it).

    FileNotFoundError when a component is missing; UnsafePath when one is a symlink or not a directory.
    """
    return _walk(root_fd, relative, None)[0]


def make_dirs(root_fd: int, relative: str, mode: int) -> tuple[int, bool]:
    """Like :func:`open_dir`, creating missing components with ``mode`` (before the umask).

    Returns the leaf's handle and whether this call created the leaf. A component that another process
    creates at the same moment is simply opened; a symlink planted at any step is refused.
    """
    return _walk(root_fd, relative, mode)


def _walk(root_fd: int, relative: str, create_mode: int | None) -> tuple[int, bool]:
    fd = os.dup(root_fd)
    walked: list[str] = []
    created = False
    try:
        for part in components(relative):
            walked.append(part)
            created = False
            if create_mode is not None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, create_mode, dir_fd=fd)
                    created = True
            next_fd = _step(fd, part, "/".join(walked))
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd, created
