"""Where a claim's directory goes on the share, and what happens to it when its volume is released.

The rule that matters most: nothing outside the volume's own directory is ever created, renamed or deleted,
whatever a StorageClass pattern, a claim's labels or a PersistentVolume's attributes say. Every path is
checked twice: as text (no ``..``, not absolute, not empty) and, before any change on disk, as a real path
(symlinks resolved) strictly below the share root.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from cfs_csi.volume.errors import InvalidArgument

_VARIABLE = re.compile(r"\$\{\.PVC\.(?P<field>[A-Za-z]+)(?:\.(?P<key>[^}]+))?\}")
_MAX_COMPONENT = 255


def default_directory(namespace: str, name: str, pv_name: str) -> str:
    """``<namespace>-<claim>-<volume>``: unique because the volume name carries the claim's uid."""
    return f"{namespace}-{name}-{pv_name}"


def directory_for(
    pattern: str, namespace: str, name: str, pv_name: str, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> str:
    """The claim's directory, relative to the share: the pattern expanded, or the default name.

    ``${.PVC.namespace}``, ``${.PVC.name}``, ``${.PVC.labels.<key>}`` and ``${.PVC.annotations.<key>}`` are
    replaced; a missing label or annotation expands to nothing. The result is refused (InvalidArgument) when it
    is empty, absolute, or has an empty, ``.`` or ``..`` component, or an unknown variable.
    """
    if not pattern.strip():
        return checked_relative(default_directory(namespace, name, pv_name))

    def expand(match: re.Match[str]) -> str:
        field, key = match["field"], match["key"]
        if field == "namespace" and key is None:
            return namespace
        if field == "name" and key is None:
            return name
        if field == "labels" and key:
            return labels.get(key, "")
        if field == "annotations" and key:
            return annotations.get(key, "")
        raise InvalidArgument(f"pathPattern variable {match.group(0)!r} is not supported")

    expanded = _VARIABLE.sub(expand, pattern.strip())
    if "${" in expanded:
        raise InvalidArgument(f"pathPattern {pattern!r} has a variable that is not supported")
    return checked_relative(expanded, what=f"pathPattern {pattern!r} gives {expanded!r}, which")


def checked_relative(path: str, what: str = "") -> str:
    """``path`` if it names a directory strictly below the share, as text; InvalidArgument otherwise."""
    prefix = what or f"path {path!r}"
    if not path or not path.strip("/"):
        raise InvalidArgument(f"{prefix} is empty: it would be the share root")
    if path.startswith("/"):
        raise InvalidArgument(f"{prefix} is absolute")
    parts = path.rstrip("/").split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidArgument(f"{prefix} has an empty, '.' or '..' component")
        if "\x00" in part or any(ord(c) < 32 for c in part) or len(part.encode()) > _MAX_COMPONENT:
            raise InvalidArgument(f"{prefix} has a component that is not a valid directory name")
    return "/".join(parts)


def contained(share_root: Path, relative: str) -> Path:
    """The real directory for ``relative`` under ``share_root``, refused unless strictly inside it.

    Resolving symlinks first means a directory replaced by a link to ``/`` (or to the share root) is caught.
    """
    root = Path(os.path.realpath(share_root))
    target = Path(os.path.realpath(root / checked_relative(relative)))
    if target == root or root not in target.parents:
        raise InvalidArgument(f"{relative!r} resolves to {target}, outside the volume's own directory")
    return target


def archive_name(directory: str, exists: Callable[[str], bool]) -> str:
    """``archived-<dir>`` next to the directory; ``archived-<dir>-2``, ``-3``... if older archives exist."""
    parent, _, leaf = checked_relative(directory).rpartition("/")
    base = f"{parent}/archived-{leaf}" if parent else f"archived-{leaf}"
    candidate, number = base, 1
    while exists(candidate):
        number += 1
        candidate = f"{base}-{number}"
    return candidate


class DeleteAction(enum.Enum):
    DELETE = "delete"
    RETAIN = "retain"
    ARCHIVE = "archive"


def delete_action(parameters: Mapping[str, str] | None) -> DeleteAction:
    """``onDelete`` wins; else ``archiveOnDelete: "false"`` deletes; anything else archives.

    Archiving is also the answer when the StorageClass is gone (``None``): when unsure, keep the data.
    """
    folded = {k.strip().lower(): v.strip().lower() for k, v in (parameters or {}).items()}
    on_delete = folded.get("ondelete", "")
    if on_delete == "delete":
        return DeleteAction.DELETE
    if on_delete == "retain":
        return DeleteAction.RETAIN
    if parameters is not None and folded.get("archiveondelete") == "false":
        return DeleteAction.DELETE
    return DeleteAction.ARCHIVE
