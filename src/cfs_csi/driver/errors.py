"""CSI error codes: every failure that leaves a servicer is turned into one of these, here, once.

:class:`StatusCode` is gRPC's table of status codes (same names, same numbers) without the gRPC library: the node
plugin serves with grpclib and must not load grpcio's C core (issue 15), and the codes are part of the CSI
contract, not of whichever library carries them.
"""

from __future__ import annotations

import enum
from typing import Protocol

from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.volume.capacity import CapacityError
from cfs_csi.volume.errors import InvalidArgument


class StatusCode(enum.IntEnum):
    """gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html): the wire numbers."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class NamedCode(Protocol):
    """Any enum member naming a gRPC status, such as ``grpc.StatusCode.ABORTED``."""

    @property
    def name(self) -> str: ...


def status_code(code: StatusCode | NamedCode) -> StatusCode:
    """Our code for ``code``, matched by name: servicers that still raise with ``grpc.StatusCode`` keep working."""
    if isinstance(code, StatusCode):
        return code
    return StatusCode[code.name]


class CsiError(Exception):
    """Raised by servicers to answer with ``code`` and ``message``."""

    def __init__(self, code: StatusCode | NamedCode, message: str) -> None:
        super().__init__(message)
        self.code = status_code(code)
        self.message = message


_CLOUD_CODES = {
    ErrorKind.INVALID: StatusCode.INVALID_ARGUMENT,
    ErrorKind.CONFLICT: StatusCode.ALREADY_EXISTS,
    ErrorKind.EXHAUSTED: StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.DENIED: StatusCode.PERMISSION_DENIED,
    ErrorKind.UNAUTHENTICATED: StatusCode.UNAUTHENTICATED,
    # The external-provisioner retries ABORTED and keeps the PVC in the "provisioning" state.
    ErrorKind.PENDING: StatusCode.ABORTED,
    ErrorKind.UNAVAILABLE: StatusCode.UNAVAILABLE,
    ErrorKind.NOT_FOUND: StatusCode.NOT_FOUND,
    ErrorKind.INTERNAL: StatusCode.INTERNAL,
    ErrorKind.REFUSED: StatusCode.FAILED_PRECONDITION,
}

_MOUNT_CODES = {
    MountErrorKind.TIMEOUT: StatusCode.DEADLINE_EXCEEDED,
    MountErrorKind.FAILED: StatusCode.INTERNAL,
    MountErrorKind.NOT_FOUND: StatusCode.NOT_FOUND,
    MountErrorKind.STALE: StatusCode.INTERNAL,
}


def to_csi_error(exc: BaseException) -> CsiError | None:
    """The CSI error for a known exception type, or ``None`` for an unexpected one (a bug)."""
    if isinstance(exc, CsiError):
        return exc
    if isinstance(exc, InvalidArgument):
        return CsiError(StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, CapacityError):
        return CsiError(StatusCode.OUT_OF_RANGE, str(exc))
    if isinstance(exc, CloudError):
        return CsiError(_CLOUD_CODES[exc.kind], exc.message)
    if isinstance(exc, MountError):
        return CsiError(_MOUNT_CODES[exc.kind], exc.message)
    return None


def invalid(message: str) -> CsiError:
    return CsiError(StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> CsiError:
    return CsiError(StatusCode.NOT_FOUND, message)


def require(value: str, field: str) -> str:
    """The value of a required string field, or INVALID_ARGUMENT naming it."""
    if not value:
        raise invalid(f"{field} is required")
    return value
