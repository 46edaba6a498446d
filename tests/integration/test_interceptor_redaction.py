"""An error message that quotes a credential reaches the caller (and so a Kubernetes Event) redacted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cfs_csi.client import CsiClient
from cfs_csi.cloud.base import FileSystem, FileSystemSpec
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.controller import ControllerServicer
from cfs_csi.driver.grpcserve import GrpcServer
from cfs_csi.driver.interceptor import intercept
from cfs_csi.logsetup import forget_secrets, register_secret
from cfs_csi.volume.params import VolumeParameters

SECRET_ID = "AKIDinterceptortest000000000000000000"
SIGNATURE = "9f" * 32


class _RejectingCloud:
    """The boundary nobody can run here (the real Tencent cloud), answering as it does for a revoked key."""

    def with_defaults(self, params: VolumeParameters) -> VolumeParameters:
        return params

    async def ensure_file_system(self, spec: FileSystemSpec) -> FileSystem:
        raise CloudError(
            ErrorKind.UNAUTHENTICATED,
            f"CFS CreateCfsFileSystem failed: AuthFailure.SecretIdNotFound: The SecretId {SECRET_ID} is not found "
            f"(Authorization: TC3-HMAC-SHA256 Credential={SECRET_ID}/2026-11-29/cfs/tc3_request, "
            f"SignedHeaders=content-type;host, Signature={SIGNATURE})",
        )


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[str]:
    register_secret(SECRET_ID)
    server = GrpcServer()
    service = csi_pb2.DESCRIPTOR.services_by_name["Controller"]
    server.add(service, ControllerServicer(_RejectingCloud()), intercept)  # type: ignore[arg-type]
    await server.start(str(tmp_path / "csi.sock"))
    try:
        yield f"unix://{tmp_path / 'csi.sock'}"
    finally:
        await server.stop(None)
        forget_secrets()


async def test_error_messages_sent_to_the_caller_are_redacted(controller: str) -> None:
    async with CsiClient(controller) as client:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.controller.CreateVolume(
                csi_pb2.CreateVolumeRequest(
                    name="pvc-redaction",
                    volume_capabilities=[csi_pb2.VolumeCapability(
                        mount=csi_pb2.VolumeCapability.MountVolume(),
                        access_mode=csi_pb2.VolumeCapability.AccessMode(
                            mode=csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER),
                    )],
                    parameters={"vpcid": "vpc-abcdefgh", "subnetid": "subnet-abcdefgh"},
                )
            )  # fmt: skip
    details = caught.value.details() or ""
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "AuthFailure.SecretIdNotFound" in details  # the reason stays readable
    assert SECRET_ID not in details
    assert SIGNATURE not in details
