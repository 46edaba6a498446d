"""Where a claim's directory goes on the share, and what happens to it when its volume is released.

These are text decisions only: a path is refused here when it is empty, absolute, has ``..``, ``.``, an empty
or invalid component, or names the provisioner's own reserved directory. Whether a path may be used (does
another volume own it?) is :mod:`.ownership`; reaching it on disk without following a symlink is
:mod:`cfs_csi.safefs`, walked from a handle of the share root (see :mod:`.disk`). Resolving a string to a real
path and then acting on the string was a race a pod could win, so there is no such check any more.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping

from cfs_csi.volume.errors import InvalidArgument

_VARIABLE = re.compile(r"\$\{\.PVC\.(?P<field>[A-Za-z]+)(?:\.(?P<key>[^}]+))?\}")
_MAX_COMPONENT = 255

#: The provisioner's own top-level directory on the share (owner records, see :mod:`.disk`). No pattern and no
#: PV may name it or anything in it: no claim's directory is ever there, so no pod can reach it.
RESERVED = ".cfs-csi-provisioner"


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
    """``path`` if it names a directory strictly below the share, as text; InvalidArgument otherwise.

    The provisioner's reserved directory (:data:`RESERVED`) and anything below it are refused too.
    """
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
    if parts[0] == RESERVED:
        raise InvalidArgument(f"{prefix} is inside {RESERVED}, which the provisioner keeps for itself")
    return "/".join(parts)


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
