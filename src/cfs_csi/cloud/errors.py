"""Backend failures, classified by what the caller should do about them.

The cloud layer knows nothing of gRPC; the driver maps each :class:`ErrorKind` to a CSI code once
(:mod:`cfs_csi.driver.errors`).
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    INVALID = "invalid"  # the request can never succeed as written
    CONFLICT = "conflict"  # the name is taken by something incompatible
    EXHAUSTED = "exhausted"  # quota, sold out, no IPs left
    DENIED = "denied"  # authenticated but not allowed
    UNAUTHENTICATED = "unauthenticated"  # credentials missing or wrong
    PENDING = "pending"  # still being created/deleted: retry later, nothing is wrong
    UNAVAILABLE = "unavailable"  # throttled, network or server trouble after retries
    NOT_FOUND = "not_found"
    INTERNAL = "internal"


class CloudError(Exception):
    """A failure of the file-storage backend, with a message fit for a cluster admin (no secrets)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
