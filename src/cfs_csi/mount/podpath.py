"""Which paths the node plugin may act on: only ones strictly below the kubelet's pods directory (pure).

The node plugin runs privileged on the host, and whoever names a target path names what gets mounted over or
removed. The kubelet only ever names paths below ``<kubelet dir>/pods/``; anything else (``/``, ``/etc``, a
path that climbs out with ``..``) is refused here before any system call, and a malformed path (a NUL byte,
longer than the kernel takes) is refused as the caller's mistake instead of failing later as an OSError.

This decides on the string only. The components of an accepted path are then walked from a handle of the pods
directory without following symlinks (:mod:`cfs_csi.mount.targets`), because a string says nothing about what
is on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cfs_csi.volume.errors import InvalidArgument

#: The kernel's limits: PATH_MAX counts the terminating NUL, NAME_MAX is per component (bytes, not characters).
PATH_MAX = 4096
NAME_MAX = 255


class OutsidePods(InvalidArgument):
    """A well-formed path that is not strictly below the pods directory (relative, ``/``, another tree).

    A subclass so that NodeGetVolumeStats can answer NOT_FOUND ("no volume at that path", as the CSI spec and
    csi-sanity ask) where publish and unpublish answer INVALID_ARGUMENT.
    """


@dataclass(frozen=True)
class PodPath:
    """A target accepted by :func:`pod_path`: ``path`` as the kubelet names it (normalised) and its components
    below the pods directory (at least one; none is empty, ``.`` or ``..``)."""

    path: str
    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def parent(self) -> tuple[str, ...]:
        return self.parts[:-1]

    @property
    def relative(self) -> str:
        return "/".join(self.parts)


def _short(path: str) -> str:
    """Enough of ``path`` for a message (a 5000-character path must not flood the log)."""
    return repr(path if len(path) <= 200 else path[:200] + "...")


def pod_path(pods_dir: str, path: str) -> PodPath:
    """Accept ``path`` if it is a well-formed absolute path strictly below ``pods_dir``.

    ``pods_dir`` is trusted (the admin's ``--kubelet-dir``) and absolute. ``..`` is refused rather than
    normalised away: the kernel resolves ``a/..`` through whatever ``a`` is on disk, a string function cannot.
    """
    if "\x00" in path:
        raise InvalidArgument(f"path {_short(path)} contains a NUL byte")
    encoded = os.fsencode(path)
    if len(encoded) >= PATH_MAX:
        raise InvalidArgument(f"path {_short(path)} is {len(encoded)} bytes long; the limit is {PATH_MAX - 1}")
    raw_parts = path.split("/")
    if any(len(os.fsencode(part)) > NAME_MAX for part in raw_parts):
        raise InvalidArgument(f"path {_short(path)} has a component longer than {NAME_MAX} bytes")
    if ".." in raw_parts:
        raise InvalidArgument(f"path {_short(path)} has a '..' component")
    if not path.startswith("/"):
        raise OutsidePods(f"path {_short(path)} is not absolute")
    normal = os.path.normpath(path)
    base = os.path.normpath(pods_dir)
    prefix = base.rstrip("/") + "/"
    if not normal.startswith(prefix) or normal == base:
        raise OutsidePods(f"path {_short(normal)} is not below the kubelet's pods directory {base}")
    return PodPath(path=normal, parts=tuple(normal[len(prefix) :].split("/")))
