"""Act on one entry of a directory handle: look, remove a tree, rename, keep a small file.

Each function takes the handle of the entry's parent (from :func:`open_parent`, itself a symlink-refusing walk)
and a single name, so the only thing that can change under us is that one entry. Each checks the entry with
``lstat`` through the handle first and refuses a symlink; the operation itself (``rmtree`` on an fd,
``rename`` within one handle, ``O_NOFOLLOW`` opens) never follows one either, so a swap after the check cannot
redirect it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat

from cfs_csi.safefs.beneath import UnsafePath, components, open_dir

_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


def open_parent(root_fd: int, relative: str) -> tuple[int, str]:
    """(handle of the parent directory of ``relative``, the leaf's name); the caller closes the handle."""
    parts = components(relative)
    if len(parts) == 1:
        return os.dup(root_fd), parts[0]
    return open_dir(root_fd, "/".join(parts[:-1])), parts[-1]


def entry_mode(parent_fd: int, name: str) -> int | None:
    """``st_mode`` of ``name`` itself (a symlink is not followed), ``None`` if there is no such entry."""
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None


def _require_directory(parent_fd: int, name: str) -> bool:
    """True for a real directory, False if absent; UnsafePath for a symlink or anything else."""
    mode = entry_mode(parent_fd, name)
    if mode is None:
        return False
    if not stat.S_ISDIR(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"
        raise UnsafePath(f"{name} is {kind}; refusing to act on it")
    return True


def remove_tree(parent_fd: int, name: str) -> bool:
    """Delete directory ``name`` and everything in it; False if it was already gone.

    ``shutil.rmtree`` with ``dir_fd`` is the fd-based walk (``rmtree.avoids_symlink_attacks``): it re-checks
    each directory it enters against the ``lstat`` it took, so a symlink inside the tree, or one swapped in
    for the tree itself, is unlinked or refused, never followed.
    """
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - every Linux Python has it
        raise OSError(errno.ENOSYS, "this platform's rmtree can follow symlinks")
    if not _require_directory(parent_fd, name):
        return False
    shutil.rmtree(name, dir_fd=parent_fd)
    return True


def rename_directory(parent_fd: int, name: str, new_name: str) -> None:
    """Rename directory ``name`` to ``new_name`` in the same parent, never replacing an existing entry.

    ``rename`` acts on the entry, not on what a symlink points to, and both names are taken in one handle, so
    nothing outside the parent can be moved or replaced. ``new_name`` is checked first; NFS has no
    ``RENAME_NOREPLACE``, so an entry created between the check and the rename by whoever can write the parent
    could still be replaced if it is an empty directory (a non-empty one or a file makes the rename fail).
    """
    components(new_name)
    if not _require_directory(parent_fd, name):
        raise FileNotFoundError(errno.ENOENT, "no such directory", name)
    if entry_mode(parent_fd, new_name) is not None:
        raise FileExistsError(errno.EEXIST, "would replace an existing entry", new_name)
    os.rename(name, new_name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)


def write_file(dir_fd: int, name: str, data: bytes, mode: int = 0o600) -> None:
    """Replace file ``name`` with ``data`` atomically (a temporary entry renamed over it); never through a link."""
    temporary = f".{name}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary, dir_fd=dir_fd)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, mode, dir_fd=dir_fd)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def read_file(dir_fd: int, name: str, limit: int = 65536) -> bytes | None:
    """The first ``limit`` bytes of regular file ``name``; ``None`` if absent. A symlink is refused."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{name} is a symbolic link; refusing to read it") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"{name} is not a regular file")
        return os.read(fd, limit)
    finally:
        os.close(fd)


def remove_file(dir_fd: int, name: str) -> None:
    """Unlink ``name`` (a file or a symlink itself, never its target); absent is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
