"""CSI error codes: every failure that leaves a servicer is turned into one of these, here, once."""

from __future__ import annotations

import grpc

from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.volume.capacity import CapacityError
from cfs_csi.volume.errors import InvalidArgument


class CsiError(Exception):
    """Raised by servicers to answer with ``code`` and ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_CLOUD_CODES = {
    ErrorKind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    # The external-provisioner retries ABORTED and keeps the PVC in the "provisioning" state.
    ErrorKind.PENDING: grpc.StatusCode.ABORTED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
    ErrorKind.REFUSED: grpc.StatusCode.FAILED_PRECONDITION,
}

_MOUNT_CODES = {
    MountErrorKind.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    MountErrorKind.FAILED: grpc.StatusCode.INTERNAL,
    MountErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    MountErrorKind.STALE: grpc.StatusCode.INTERNAL,
}


def to_csi_error(exc: BaseException) -> CsiError | None:
    """The CSI error for a known exception type, or ``None`` for an unexpected one (a bug)."""
    if isinstance(exc, CsiError):
        return exc
    if isinstance(exc, InvalidArgument):
        return CsiError(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, CapacityError):
        return CsiError(grpc.StatusCode.OUT_OF_RANGE, str(exc))
    if isinstance(exc, CloudError):
        return CsiError(_CLOUD_CODES[exc.kind], exc.message)
    if isinstance(exc, MountError):
        return CsiError(_MOUNT_CODES[exc.kind], exc.message)
    return None


def invalid(message: str) -> CsiError:
    return CsiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> CsiError:
    return CsiError(grpc.StatusCode.NOT_FOUND, message)


def require(value: str, field: str) -> str:
    """The value of a required string field, or INVALID_ARGUMENT naming it."""
    if not value:
        raise invalid(f"{field} is required")
    return value
