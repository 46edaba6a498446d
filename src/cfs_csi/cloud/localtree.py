"""The local backend's snapshots and quota usage: copy or measure a tree that pods can write, never following a link.

A local file system's directory is bind-mounted into pods, so everything in it is hostile: a symlink to
``/etc``, a FIFO that would block a reader, a tree deep enough to exhaust file descriptors, entries swapped
while we walk. Every step here starts from an open directory handle (reached through :mod:`cfs_csi.safefs`) and
takes one name at a time:

- directories are opened with ``O_DIRECTORY | O_NOFOLLOW``, files with ``O_NOFOLLOW | O_NONBLOCK`` and checked
  with ``fstat`` after opening, so a swap between the listing and the open is refused, not followed;
- symbolic links are copied as links (their text, never their target); device nodes, FIFOs and sockets are
  skipped (counted), since a snapshot of a CFS file system holds data, not devices;
- new entries are created with ``O_EXCL`` in a directory this code made, so nothing existing is overwritten;
- the walk is bounded in depth (:data:`MAX_DEPTH`), so a hostile tree fails the call instead of the process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

MAX_DEPTH = 256
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class TreeError(OSError):
    """The tree cannot be copied or measured safely (too deep)."""


@dataclass
class Usage:
    bytes: int = 0
    files: int = 0
    skipped: int = 0


def _entries(dir_fd: int) -> list[tuple[str, int]]:
    """``(name, st_mode)`` of every entry, the mode from ``lstat`` (a link is reported as a link)."""
    found = []
    with os.scandir(dir_fd) as listing:
        for entry in listing:
            with contextlib.suppress(FileNotFoundError):
                found.append((entry.name, entry.stat(follow_symlinks=False).st_mode))
    return found


def _open_child_dir(parent_fd: int, name: str) -> int | None:
    """The child directory's handle, or ``None`` if it was swapped for something else or vanished."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink now
            return None
        raise


def _walk(root_fd: int) -> Iterator[tuple[int, str, int, int]]:
    """Depth-first ``(parent handle, name, lstat mode, depth)``, directories before their content."""
    stack: list[tuple[int, Iterator[tuple[str, int]], int]] = [(os.dup(root_fd), iter(_entries(root_fd)), 1)]
    try:
        while stack:
            fd, names, depth = stack[-1]
            item = next(names, None)
            if item is None:
                os.close(fd)
                stack.pop()
                continue
            name, mode = item
            yield fd, name, mode, depth
            if stat.S_ISDIR(mode):
                if depth >= MAX_DEPTH:
                    raise TreeError(f"the tree is deeper than {MAX_DEPTH} directories")
                child = _open_child_dir(fd, name)
                if child is not None:
                    stack.append((child, iter(_entries(child)), depth + 1))
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def measure(root_fd: int) -> Usage:
    """Bytes of regular files (their size) and entries below ``root_fd``, as a quota counts them."""
    usage = Usage()
    for parent, name, mode, _ in _walk(root_fd):
        usage.files += 1
        if stat.S_ISREG(mode):
            with contextlib.suppress(FileNotFoundError):
                usage.bytes += os.stat(name, dir_fd=parent, follow_symlinks=False).st_size
    return usage


def copy_tree(src_fd: int, dst_fd: int) -> Usage:
    """Copy everything below ``src_fd`` into the empty directory ``dst_fd``; what was copied and skipped."""
    usage = Usage()
    stack: list[tuple[int, int, Iterator[tuple[str, int]], int]] = [
        (os.dup(src_fd), os.dup(dst_fd), iter(_entries(src_fd)), 1)
    ]
    try:
        while stack:
            src, dst, names, depth = stack[-1]
            item = next(names, None)
            if item is None:
                os.close(src)
                os.close(dst)
                stack.pop()
                continue
            name, mode = item
            if stat.S_ISDIR(mode):
                if depth >= MAX_DEPTH:
                    raise TreeError(f"the tree is deeper than {MAX_DEPTH} directories")
                child = _open_child_dir(src, name)
                if child is None:  # swapped for a link or removed since the listing: not copied
                    usage.skipped += 1
                    continue
                try:
                    os.mkdir(name, 0o700, dir_fd=dst)
                    made = os.open(name, _DIR_FLAGS, dir_fd=dst)
                except BaseException:
                    os.close(child)
                    raise
                _copy_owner_and_mode(child, made)
                stack.append((child, made, iter(_entries(child)), depth + 1))
            elif stat.S_ISREG(mode):
                copied = _copy_file(src, name, dst)
                if copied is None:
                    usage.skipped += 1
                    continue
                usage.bytes += copied
            elif stat.S_ISLNK(mode):
                try:
                    os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
                except FileNotFoundError:
                    usage.skipped += 1
                    continue
            else:
                usage.skipped += 1
                continue
            usage.files += 1
    finally:
        for src, dst, _, _ in stack:
            os.close(src)
            os.close(dst)
    return usage


def _copy_owner_and_mode(src: int, dst: int) -> None:
    info = os.fstat(src)
    os.fchown(dst, info.st_uid, info.st_gid)
    os.fchmod(dst, stat.S_IMODE(info.st_mode))


def _copy_file(parent: int, name: str, out: int) -> int | None:
    """Bytes copied, or ``None`` when the entry is no longer a regular file (swapped or removed)."""
    try:
        src = os.open(name, _READ_FLAGS, dir_fd=parent)
    except OSError:  # removed, or a symlink now (ELOOP)
        return None
    try:
        info = os.fstat(src)
        if not stat.S_ISREG(info.st_mode):  # swapped for a FIFO or a device after the listing
            return None
        dst = os.open(name, _WRITE_FLAGS, 0o600, dir_fd=out)
        try:
            copied = 0
            while chunk := os.read(src, _CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view) :]
                copied += len(chunk)
            os.fchown(dst, info.st_uid, info.st_gid)
            os.fchmod(dst, stat.S_IMODE(info.st_mode))
            os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))
            return copied
        finally:
            os.close(dst)
    finally:
        os.close(src)


def copy_directory(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> Usage:
    """:func:`copy_tree` between two directories named by path (neither may be a link): a snapshot's copy, a
    restore or a clone of the local backend. ``destination`` must be empty and made by the caller."""
    src = os.open(source, _DIR_FLAGS)
    try:
        dst = os.open(destination, _DIR_FLAGS)
        try:
            return copy_tree(src, dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)
