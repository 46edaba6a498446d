"""Cloud error codes, classified: what a CSI caller should be told, and what is worth retrying.

Pure tables over the code strings of ``TencentCloudSDKException`` (the API's ``Error.Code``, or the SDK's own
``ClientNetworkError``/``ServerNetworkError``), so they are tested without any cloud.
"""

from __future__ import annotations

from cfs_csi.cloud.errors import ErrorKind

#: Transient: back off and try again within the caller's deadline.
_RETRYABLE_PREFIXES = ("RequestLimitExceeded", "InternalError", "ServerNetworkError", "ClientNetworkError")

#: Gone already: DeleteVolume succeeds, lookups find nothing.
NOT_FOUND_CODES = frozenset({"ResourceNotFound.FileSystemNotFound", "ResourceNotFound.FsNotExist"})

#: No such snapshot: DeleteSnapshot succeeds, lookups find nothing (a malformed id cannot name one either).
SNAPSHOT_GONE_CODES = frozenset({"ResourceNotFound.SnapshotNotFound", "InvalidParameterValue.InvalidSnapshotId"})

_EXACT = {
    "FailedOperation.ClientTokenInUse": ErrorKind.PENDING,
    "InvalidParameterValue.InvalidFsStatus": ErrorKind.PENDING,
    # A snapshot still being taken (or deleted) cannot be restored or deleted yet: retried.
    "InvalidParameterValue.InvalidSnapshotStatus": ErrorKind.PENDING,
    # The file system's quota count is used up: nothing the request could change.
    "InvalidParameterValue.ProjectQuotasExceeded": ErrorKind.EXHAUSTED,
    "AuthFailure.UnauthorizedOperation": ErrorKind.DENIED,
    "OperationDenied": ErrorKind.DENIED,
    "UnsupportedOperation.UnverifiedUser": ErrorKind.DENIED,
    "UnsupportedOperation.UnauthorizedCfsQcsRole": ErrorKind.DENIED,
    "UnsupportedOperation.OutOfService": ErrorKind.DENIED,
    "ResourceNotFound.PgroupNotFound": ErrorKind.INVALID,
    "ResourceNotFound.ResourcePackageNotFound": ErrorKind.INVALID,
    "ResourcesSoldOut": ErrorKind.EXHAUSTED,
    "InvalidAction": ErrorKind.INTERNAL,
}

_PREFIXES = (
    ("ResourceInUse", ErrorKind.PENDING),
    ("AuthFailure", ErrorKind.UNAUTHENTICATED),
    ("UnauthorizedOperation", ErrorKind.DENIED),
    ("ResourceInsufficient", ErrorKind.EXHAUSTED),
    ("LimitExceeded", ErrorKind.EXHAUSTED),
    ("InvalidParameter", ErrorKind.INVALID),
    ("InvalidParameterValue", ErrorKind.INVALID),
    ("MissingParameter", ErrorKind.INVALID),
    ("UnknownParameter", ErrorKind.INVALID),
    ("UnsupportedOperation", ErrorKind.INVALID),
    ("ResourceNotFound", ErrorKind.NOT_FOUND),
    ("ResourceUnavailable", ErrorKind.UNAVAILABLE),
)


def is_retryable(code: str) -> bool:
    return code.startswith(_RETRYABLE_PREFIXES)


def classify(code: str) -> ErrorKind:
    """The :class:`ErrorKind` of a cloud error code; unknown codes are INTERNAL (a bug to look at)."""
    if is_retryable(code):
        return ErrorKind.UNAVAILABLE
    if code in _EXACT:
        return _EXACT[code]
    for prefix, kind in _PREFIXES:
        if code == prefix or code.startswith(prefix + "."):
            return kind
    return ErrorKind.INTERNAL


#: What an admin should look at, per kind (appended to the cloud's own message).
HINTS = {
    ErrorKind.UNAUTHENTICATED: "check the credentials (Secret, instance role or TKE OIDC)",
    ErrorKind.DENIED: "grant the CAM policy QcloudCFSFullAccess (or the CFS actions) to the credentials",
    ErrorKind.EXHAUSTED: "a quota, the subnet's free IPs or the zone's stock is exhausted",
    ErrorKind.INVALID: "check the StorageClass parameters and the request",
    ErrorKind.UNAVAILABLE: "the CFS API is throttling or unreachable; the call will be retried",
}
