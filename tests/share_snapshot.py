"""A listing of a whole share (path, type, mode, symlink target, content hash), to prove what changed."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

Entry = tuple[str, int, str]  # (kind, permission bits, symlink target or sha256 of the content)


def snapshot(root: Path) -> dict[str, Entry]:
    """Every entry below ``root`` by relative path; symlinks are recorded, never followed."""
    listing: dict[str, Entry] = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                kind, detail = "link", os.readlink(path)
            elif stat.S_ISDIR(info.st_mode):
                kind, detail = "dir", ""
            elif stat.S_ISREG(info.st_mode):
                kind, detail = "file", hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                kind, detail = "other", ""
            listing[str(path.relative_to(root))] = (kind, stat.S_IMODE(info.st_mode), detail)
    return listing


def changed(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> set[str]:
    """Paths added, removed or changed (type, mode, target or content)."""
    return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}


def inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/")


def outside(before: Mapping[str, Entry], after: Mapping[str, Entry], allowed: Iterable[str]) -> set[str]:
    """The changes that are not inside any of the ``allowed`` directories (empty when all is well)."""
    allowed = list(allowed)
    return {path for path in changed(before, after) if not any(inside(path, d) for d in allowed)}
