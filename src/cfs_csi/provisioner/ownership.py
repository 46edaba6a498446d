"""Which volume owns which directory of the share, and what a claim may do with a path (pure).

A directory belongs to exactly one PersistentVolume. Sharing one, or nesting one inside another, lets one
tenant read another's files and lets deleting one claim delete another's data, so every overlap is refused.

The record of ownership is the PersistentVolumes themselves: every PV of our CSI driver whose attributes name
this share (host and fsid) owns its ``path``, whoever made it (this provisioner, another class on the same file
system, an admin's static PV). The API server keeps them across provisioner restarts and a list read is
current, so there is no second copy that could drift from the truth. Two moments have no PV yet, and each has
its own record:

- a claim being provisioned right now: an in-process :class:`Reservations`, taken before the PVs are listed
  and held until its PV exists, so two concurrent provisions can never both take one path;
- a crash between creating the directory and creating the PV: the owner record that :mod:`.disk` writes in
  the provisioner's reserved directory before the ``mkdir``, so the retry recognises its own directory
  (:attr:`Verdict.RESUME`) instead of refusing it forever as someone else's.

A directory that exists but that nothing names (a retained PV deleted by the admin, an archive, data copied in)
is someone's data: it is reused only when the class says ``reuseExistingDirectory: "true"``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cfs_csi import DRIVER_NAME
from cfs_csi.volume.errors import InvalidArgument

REUSE_PARAMETER = "reuseExistingDirectory"


def normalized(path: object) -> str | None:
    """A PV's ``path`` attribute as a directory below the share, as text; ``None`` if it names no such directory.

    ``None`` for the share root itself (the operator's share PV for the provisioner pod names it: the whole
    share, not a claim's directory; counting it would refuse every path) and for a path leading out of the
    share, which owns nothing on it.
    """
    parts: list[str] = []
    for part in str(path or "").split("/"):
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts) or None


def share_owners(pvs: Iterable[Mapping[str, Any]], server: str, fsid: str) -> dict[str, str]:
    """``{PV name: directory}`` for every PV of our driver on this share (host and fsid) that names a directory."""
    owners: dict[str, str] = {}
    for pv in pvs:
        csi = (pv.get("spec") or {}).get("csi") or {}
        attributes = csi.get("volumeAttributes") or {}
        if csi.get("driver") != DRIVER_NAME:
            continue
        if attributes.get("host") != server or str(attributes.get("fsid") or "") != fsid:
            continue
        directory = normalized(attributes.get("path"))
        if directory is not None:
            owners[str((pv.get("metadata") or {}).get("name", ""))] = directory
    return owners


def overlap(path: str, other: str) -> str | None:
    """How ``path`` overlaps ``other`` (``"is"``, ``"is inside"``, ``"contains"``), or ``None``."""
    if path == other:
        return "is"
    if path.startswith(other + "/"):
        return "is inside"
    if other.startswith(path + "/"):
        return "contains"
    return None


def conflict(path: str, volume: str, owners: Mapping[str, str]) -> str | None:
    """Why ``path`` cannot belong to ``volume``: it is, is inside or contains another volume's directory."""
    for other, directory in sorted(owners.items()):
        relation = overlap(path, directory)
        if other != volume and relation:
            target = "the directory" if relation == "is" else f"the directory {directory!r}"
            return f"directory {path!r} {relation} {target} of PersistentVolume {other}"
    return None


class Verdict(enum.Enum):
    CREATE = "create"  # absent: create it and give it the class's mode
    RESUME = "resume"  # present, and our owner record says this volume created it (a crash before the PV)
    REUSE = "reuse"  # present, nobody's, and the class opted in: used as it is, mode untouched
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""


def provision_decision(
    path: str, volume: str, owners: Mapping[str, str], exists: bool, recorded: str | None, reuse: bool
) -> Decision:
    """May ``volume`` take directory ``path``, and how.

    ``owners``: other volumes' directories (PVs and reservations); ``exists``: whether ``path`` is a directory
    now; ``recorded``: the path in ``volume``'s own owner record, if any; ``reuse``: the class's opt-in.
    """
    reason = conflict(path, volume, owners)
    if reason:
        return Decision(Verdict.REFUSE, reason)
    if not exists:
        return Decision(Verdict.CREATE)
    if recorded == path:
        return Decision(Verdict.RESUME)
    if reuse:
        return Decision(Verdict.REUSE)
    return Decision(
        Verdict.REFUSE,
        f"directory {path!r} already exists and no PersistentVolume names it (retained or archived data?); "
        f'it is reused only when the StorageClass sets {REUSE_PARAMETER}: "true"',
    )


def reuse_existing(parameters: Mapping[str, str] | None) -> bool:
    """The class's ``reuseExistingDirectory`` (case-insensitive key); absent is ``False``, and so is doubt."""
    folded = {k.strip().lower(): str(v).strip().lower() for k, v in (parameters or {}).items()}
    value = folded.get(REUSE_PARAMETER.lower(), "false")
    if value not in ("true", "false"):
        raise InvalidArgument(f'StorageClass parameter {REUSE_PARAMETER} {value!r} is not "true" or "false"')
    return value == "true"


class Reservations:
    """Directories being provisioned right now, by volume: what the PVs cannot say yet.

    Used only from the event loop's thread, so taking one is atomic without a lock.
    """

    def __init__(self) -> None:
        self._paths: dict[str, str] = {}

    def reserve(self, volume: str, path: str) -> str | None:
        """Take ``path`` for ``volume``; the conflict instead if another provision in flight overlaps it."""
        reason = conflict(path, volume, self._paths)
        if reason:
            return f"{reason}, which is being provisioned right now"
        self._paths[volume] = path
        return None

    def release(self, volume: str) -> None:
        self._paths.pop(volume, None)

    def owners(self) -> dict[str, str]:
        return dict(self._paths)
