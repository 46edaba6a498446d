"""Cloud error codes -> CSI codes: the table an admin relies on when a PVC stays Pending."""

from __future__ import annotations

import pytest

from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.tencent.errors import classify, is_retryable
from cfs_csi.driver.errors import StatusCode, to_csi_error

CASES = [
    ("InvalidParameterValue.InvalidVpcId", ErrorKind.INVALID, StatusCode.INVALID_ARGUMENT),
    ("InvalidParameterValue.FsNameLimitExceeded", ErrorKind.INVALID, StatusCode.INVALID_ARGUMENT),
    ("InvalidParameter", ErrorKind.INVALID, StatusCode.INVALID_ARGUMENT),
    ("MissingParameter", ErrorKind.INVALID, StatusCode.INVALID_ARGUMENT),
    ("ResourceNotFound.PgroupNotFound", ErrorKind.INVALID, StatusCode.INVALID_ARGUMENT),
    ("UnsupportedOperation.BasicNetInterfaceNotSupported", ErrorKind.INVALID, StatusCode.INVALID_ARGUMENT),
    ("ResourceInsufficient.FileSystemLimitExceeded", ErrorKind.EXHAUSTED, StatusCode.RESOURCE_EXHAUSTED),
    ("ResourceInsufficient.SubnetIpAllOccupied", ErrorKind.EXHAUSTED, StatusCode.RESOURCE_EXHAUSTED),
    ("ResourceInsufficient.RegionSoldOut", ErrorKind.EXHAUSTED, StatusCode.RESOURCE_EXHAUSTED),
    ("ResourcesSoldOut", ErrorKind.EXHAUSTED, StatusCode.RESOURCE_EXHAUSTED),
    ("AuthFailure.SignatureFailure", ErrorKind.UNAUTHENTICATED, StatusCode.UNAUTHENTICATED),
    ("AuthFailure.SecretIdNotFound", ErrorKind.UNAUTHENTICATED, StatusCode.UNAUTHENTICATED),
    ("AuthFailure.TokenFailure", ErrorKind.UNAUTHENTICATED, StatusCode.UNAUTHENTICATED),
    ("AuthFailure.UnauthorizedOperation", ErrorKind.DENIED, StatusCode.PERMISSION_DENIED),
    ("UnauthorizedOperation", ErrorKind.DENIED, StatusCode.PERMISSION_DENIED),
    ("UnsupportedOperation.UnverifiedUser", ErrorKind.DENIED, StatusCode.PERMISSION_DENIED),
    ("UnsupportedOperation.OutOfService", ErrorKind.DENIED, StatusCode.PERMISSION_DENIED),
    ("RequestLimitExceeded", ErrorKind.UNAVAILABLE, StatusCode.UNAVAILABLE),
    ("InternalError.Timeout", ErrorKind.UNAVAILABLE, StatusCode.UNAVAILABLE),
    ("ServerNetworkError", ErrorKind.UNAVAILABLE, StatusCode.UNAVAILABLE),
    ("ClientNetworkError", ErrorKind.UNAVAILABLE, StatusCode.UNAVAILABLE),
    ("FailedOperation.ClientTokenInUse", ErrorKind.PENDING, StatusCode.ABORTED),
    ("ResourceInUse", ErrorKind.PENDING, StatusCode.ABORTED),
    ("ResourceNotFound.FileSystemNotFound", ErrorKind.NOT_FOUND, StatusCode.NOT_FOUND),
    ("InvalidAction", ErrorKind.INTERNAL, StatusCode.INTERNAL),
    ("SomethingNew.NobodyKnows", ErrorKind.INTERNAL, StatusCode.INTERNAL),
]


@pytest.mark.parametrize(("code", "kind", "grpc_code"), CASES, ids=[c[0] for c in CASES])
def test_cloud_code_to_csi_code(code: str, kind: ErrorKind, grpc_code: StatusCode) -> None:
    assert classify(code) is kind
    error = to_csi_error(CloudError(classify(code), "x"))
    assert error is not None and error.code == grpc_code


@pytest.mark.parametrize(
    ("code", "retry"),
    [("RequestLimitExceeded", True), ("RequestLimitExceeded.UinLimitExceeded", True), ("InternalError", True),
     ("ClientNetworkError", True), ("ServerNetworkError", True), ("InvalidParameter", False),
     ("FailedOperation.ClientTokenInUse", False), ("AuthFailure.SignatureFailure", False)],
)  # fmt: skip
def test_retryable(code: str, retry: bool) -> None:
    assert is_retryable(code) is retry
