"""Volume names: the one check every CreateVolume passes before any backend sees the name, and log-safe cuts.

A CSI name is chosen by the CO (csi-provisioner makes ``pvc-<claim uid>``), but it reaches us over a socket
that anything with access can write to, so it is checked like any hostile input:

- 1 to 128 characters: the CSI spec has the CO keep names within 128 bytes, csi-sanity's longest name is 128,
  and the cloud must hold the full name in a tag (CFS tag values take up to 255 characters).
- ASCII letters, digits and ``.`` ``_`` ``-`` ``+``, starting with a letter or digit. Kubernetes volume names
  are DNS subdomains (a subset); ``+`` is in csi-sanity's names. No NUL, control character, space, slash or
  non-ASCII letter can reach a cloud name, a tag, a file or a log line.
- Not ``sharedCFS-...`` (in any case): that prefix names the file system of a shared StorageClass, which the
  operator creates through the same backend. A dedicated volume of that name would *be* the share (found by
  name), and deleting the volume would delete every claim's data in it.
"""

from __future__ import annotations

import re

from cfs_csi.volume.errors import InvalidArgument

MAX_NAME_LENGTH = 128

#: Start of the cloud name of a shared class's file system (the operator's ``shared_fs_name``).
SHARED_PREFIX = "sharedCFS-"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_BAD_CHAR = re.compile(r"[^A-Za-z0-9._+-]")

#: Longest piece of an untrusted value quoted in a message or a log line.
QUOTE_LIMIT = 64


def cut(value: str, limit: int = QUOTE_LIMIT) -> str:
    """``value``, or its first ``limit`` characters and a marker with the full length (for messages and logs)."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}...[{len(value)} characters]"


def is_shared_name(name: str) -> bool:
    """Whether ``name`` (a volume name, before any cluster prefix) is reserved for a shared class's file system."""
    return name[: len(SHARED_PREFIX)].lower() == SHARED_PREFIX.lower()


def check_volume_name(name: str) -> str:
    """Return ``name`` if it may name a dedicated volume, else raise :class:`InvalidArgument` about the name."""
    _check_name(name, "volume")
    if is_shared_name(name):
        raise InvalidArgument(
            f"volume name {name!r} starts with {SHARED_PREFIX!r}, which is reserved for the file systems of "
            "shared StorageClasses; a dedicated volume cannot take that name"
        )
    return name


def check_snapshot_name(name: str) -> str:
    """Return ``name`` if it may name a snapshot (the same rules as a volume name, less the shared prefix)."""
    _check_name(name, "snapshot")
    return name


def _check_name(name: str, kind: str) -> None:
    if not name:
        raise InvalidArgument("name is required")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"{kind} name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed "
            f"(it begins {cut(name, 32)!r})"
        )
    if not _NAME.fullmatch(name):
        bad = _BAD_CHAR.search(name)
        where = (
            f"{bad.group()!r} at position {bad.start()}" if bad else "a first character that is not a letter or digit"
        )
        raise InvalidArgument(
            f"{kind} name {cut(name)!r} has {where}; names are ASCII letters, digits, '.', '_', '-' and '+', "
            "starting with a letter or digit"
        )
