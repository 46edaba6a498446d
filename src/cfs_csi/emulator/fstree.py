"""Walking, measuring, copying and removing an emulated file system's directory tree, safely.

The data directories are written by pods (through bind mounts) and pods are hostile: at any moment a
directory may be swapped for a symlink, or something may be mounted inside. So every walk here goes from a
directory file descriptor to the next with ``O_NOFOLLOW``, never follows a symlink, never enters another
file system (a mount point), and is bounded: a quota's usage or a snapshot's copy cannot make the emulator
read outside the tree or run forever.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CHUNK = 1024 * 1024


class TreeTooLarge(Exception):
    """A copy would exceed its byte or entry bound."""


def open_below(root: Path, parts: tuple[str, ...]) -> int:
    """A directory descriptor of ``root/<parts...>``, opened component by component without following any
    symlink. Raises ``FileNotFoundError`` or ``NotADirectoryError`` (a symlink counts as not a directory)."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                raise NotADirectoryError(part) from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass(frozen=True)
class Usage:
    """Apparent bytes of regular files and the number of entries (files, directories, links, others) below a
    directory, itself not counted; ``truncated`` when the walk stopped at its bound."""

    bytes: int
    entries: int
    truncated: bool = False


def _entries(fd: int) -> Iterator[tuple[str, os.stat_result]]:
    with os.scandir(fd) as it:
        for entry in it:
            with contextlib.suppress(OSError):  # vanished while we looked
                yield entry.name, os.stat(entry.name, dir_fd=fd, follow_symlinks=False)


def _subdir(fd: int, name: str, device: int) -> int | None:
    """The descriptor of directory ``name`` in ``fd`` if it is still a directory on ``device``, else None."""
    try:
        child = os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError:
        return None
    if os.fstat(child).st_dev != device:
        os.close(child)
        return None
    return child


def usage(fd: int, max_entries: int) -> Usage:
    """Measure the tree below directory ``fd`` (not closed here), visiting at most ``max_entries`` entries."""
    device = os.fstat(fd).st_dev
    total = entries = 0
    stack = [os.dup(fd)]
    try:
        while stack:
            current = stack.pop()
            try:
                for name, info in _entries(current):
                    if entries >= max_entries:
                        return Usage(total, entries, truncated=True)
                    entries += 1
                    if stat.S_ISREG(info.st_mode):
                        total += info.st_size
                    elif stat.S_ISDIR(info.st_mode) and info.st_dev == device:
                        child = _subdir(current, name, device)
                        if child is not None:
                            stack.append(child)
            finally:
                os.close(current)
    finally:
        for leftover in stack:
            os.close(leftover)
    return Usage(total, entries)


@dataclass
class _Budget:
    bytes: int
    entries: int

    def spend(self, size: int) -> None:
        self.entries -= 1
        self.bytes -= size
        if self.entries < 0 or self.bytes < 0:
            raise TreeTooLarge("the tree exceeds the copy bound")


def copy_tree(src_fd: int, dst: Path, max_bytes: int, max_entries: int) -> Usage:
    """Copy the tree below directory ``src_fd`` into the new directory ``dst`` (created here, and removed again
    if the copy fails). Regular files, directories and symlinks (as symlinks) are copied with their modes;
    devices, FIFOs, sockets and other file systems are left out. Returns what was copied."""
    budget = _Budget(max_bytes, max_entries)
    dst.mkdir(mode=0o755)
    try:
        _copy_dir(src_fd, dst, os.fstat(src_fd).st_dev, budget)
        os.chmod(dst, stat.S_IMODE(os.fstat(src_fd).st_mode))
    except BaseException:
        remove_tree(dst, dst.lstat().st_dev)
        raise
    return Usage(max_bytes - budget.bytes, max_entries - budget.entries)


def _copy_dir(src_fd: int, dst: Path, device: int, budget: _Budget) -> None:
    for name, info in _entries(src_fd):
        target = dst / name
        if stat.S_ISDIR(info.st_mode):
            child = _subdir(src_fd, name, device) if info.st_dev == device else None
            if child is None:
                continue
            try:
                budget.spend(0)
                target.mkdir(mode=0o700)
                _copy_dir(child, target, device, budget)
                os.chmod(target, stat.S_IMODE(os.fstat(child).st_mode))
            finally:
                os.close(child)
        elif stat.S_ISLNK(info.st_mode):
            budget.spend(0)
            with contextlib.suppress(OSError):
                os.symlink(os.readlink(name, dir_fd=src_fd), target)
        elif stat.S_ISREG(info.st_mode):
            budget.spend(info.st_size)
            _copy_file(src_fd, name, target, budget)


def _copy_file(src_fd: int, name: str, target: Path, budget: _Budget) -> None:
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=src_fd)
    except OSError:
        return  # replaced by something else (a symlink, a FIFO) since the listing: not copied
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            copied = 0
            while chunk := os.read(fd, _CHUNK):
                copied += len(chunk)
                if copied > info.st_size:  # growing while we copy: what is beyond the listed size counts too
                    _charge(budget, min(len(chunk), copied - info.st_size))
                os.write(out, chunk)
            os.fchmod(out, stat.S_IMODE(info.st_mode))
        finally:
            os.close(out)
    finally:
        os.close(fd)


def _charge(budget: _Budget, size: int) -> None:
    budget.bytes -= size
    if budget.bytes < 0:
        raise TreeTooLarge("the tree exceeds the copy bound")


def remove_tree(path: Path, device: int) -> bool:
    """Remove ``path`` without following symlinks or crossing into another file system.

    A data directory of the emulator may be the source of bind mounts, and something may be mounted inside
    it; deleting a file system must never delete data outside it. Returns False if something was left.
    """
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        path.unlink()
        return True
    if info.st_dev != device or os.path.ismount(path):
        return False
    complete = True
    for child in list(path.iterdir()):
        complete = remove_tree(child, device) and complete
    if complete:
        path.rmdir()
    return complete
