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
    REFUSED = "refused"  # not ours to change (a shared, foreign or other cluster's file system): act by hand

    @property
    def retried(self) -> bool:
        """Whether the CO keeps calling after this answer (csi-provisioner's non-final codes: ABORTED,
        UNAVAILABLE, RESOURCE_EXHAUSTED), even when the claim is deleted meanwhile. After any other answer no
        retry may ever come, so nothing created in the failed call may be left behind for one to find."""
        return self in (ErrorKind.PENDING, ErrorKind.UNAVAILABLE, ErrorKind.EXHAUSTED)


class CloudError(Exception):
    """A failure of the file-storage backend, with a message fit for a cluster admin (no secrets)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
