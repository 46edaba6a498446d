"""Directory quotas of CFS: what quota a claim gets, and the path the API wants (pure, table-tested).

CFS sets quotas on directories (``SetUserQuota`` with ``UserType=Dir``) in whole GiB, from 10 GiB to
10,000,000 GiB (``CapacityHardLimit``, API 2019-07-19), on the directory's path inside the file system written
as ``/cfs/<dir>`` (not a mount point's path). Quotas of nested directories are refused by the API ("no
containment between directories"), which one directory per claim never asks for.

A claim is given the smallest quota the API accepts that is not below the claim: its size rounded up to a
whole GiB, raised to 10 GiB when smaller. A raised quota is still a limit (far below a whole file system), so it
is set, and the decision says it is not exact, for whoever must report or refuse that (a class that requires
exact quotas). A claim above the largest quota, or of no size at all, gets none, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from cfs_csi.volume.errors import InvalidArgument

GIB = 1024**3
MIN_QUOTA_GIB = 10
MAX_QUOTA_GIB = 10_000_000
#: The prefix of every quota path: the file system's root as the quota API names it.
QUOTA_ROOT = "/cfs"
#: Longest directory path accepted (the API documents none; the file system's limit is 4096 bytes).
MAX_PATH_BYTES = 1024


@dataclass(frozen=True)
class QuotaDecision:
    """``capacity_gib`` is 0 when no quota can be set; ``reason`` then says why (else why it is not exact)."""

    capacity_gib: int
    exact: bool
    reason: str = ""

    @property
    def possible(self) -> bool:
        return self.capacity_gib > 0

    @property
    def capacity_bytes(self) -> int:
        return self.capacity_gib * GIB


def quota_for_claim(size_bytes: int) -> QuotaDecision:
    """The directory quota a claim of ``size_bytes`` gets, or why it gets none."""
    if size_bytes <= 0:
        return QuotaDecision(0, False, "the claim names no size, so there is no quota to set")
    gib = -(-size_bytes // GIB)
    if gib > MAX_QUOTA_GIB:
        return QuotaDecision(
            0, False, f"the claim's {size_bytes} bytes exceed the largest CFS directory quota ({MAX_QUOTA_GIB} GiB)"
        )
    if gib < MIN_QUOTA_GIB:
        return QuotaDecision(
            MIN_QUOTA_GIB,
            False,
            f"CFS directory quotas start at {MIN_QUOTA_GIB} GiB; the claim asks {size_bytes} bytes, so its "
            f"directory may hold up to {MIN_QUOTA_GIB} GiB",
        )
    exact = gib * GIB == size_bytes
    reason = "" if exact else f"quotas are whole GiB: {size_bytes} bytes rounded up to {gib} GiB"
    return QuotaDecision(gib, exact, reason)


def quota_path(directory: str) -> str:
    """``/cfs/<directory>`` for a directory relative to the file system's root (as a shared PV's ``path``).

    Refuses what is not a plain relative path (no ``..``, no empty or ``.`` component, no control characters):
    the result goes into a cloud API call that limits whatever directory it names.
    """
    parts = directory.strip("/").split("/")
    if not directory.strip("/") or any(part in ("", ".", "..") for part in parts):
        raise InvalidArgument(f"directory {directory[:100]!r} is not a plain relative path")
    if (
        any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in directory)
        or len(directory.encode(errors="surrogateescape")) > MAX_PATH_BYTES
    ):
        raise InvalidArgument(f"directory {directory[:100]!r} has characters a quota path cannot carry")
    return f"{QUOTA_ROOT}/{'/'.join(parts)}"


def directory_of(path: str) -> str:
    """The inverse of :func:`quota_path`: ``/cfs/a/b`` -> ``a/b``; InvalidArgument for any other path."""
    prefix = QUOTA_ROOT + "/"
    if not path.startswith(prefix):
        raise InvalidArgument(f"quota path {path[:100]!r} does not start with {prefix}")
    directory = path[len(prefix) :]
    if quota_path(directory) != path:
        raise InvalidArgument(f"quota path {path[:100]!r} is not in canonical form")
    return directory
