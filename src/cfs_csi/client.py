"""A small CSI client: :class:`CsiClient` for tests and benchmarks (``cfs-csi client`` is :mod:`cfs_csi.clientcli`).

It exists so that trying the driver needs nothing but this package (no grpcurl, no Go tools).
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from cfs_csi.csi import csi_pb2, csi_pb2_grpc

_MODE = csi_pb2.VolumeCapability.AccessMode


def mount_capability(
    mode: csi_pb2.VolumeCapability.AccessMode.Mode = _MODE.MULTI_NODE_MULTI_WRITER, mount_flags: tuple[str, ...] = ()
) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(mount_flags)),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


class CsiClient:
    """Typed shortcuts over the three CSI services on one channel."""

    def __init__(self, endpoint: str) -> None:
        target = endpoint if endpoint.startswith("unix:") else f"unix://{endpoint}"
        # Reconnect quickly to a plugin that restarted (gRPC's default backoff grows to two minutes).
        options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000)]
        self.channel = grpc.aio.insecure_channel(target, options=options)
        self.identity = csi_pb2_grpc.IdentityStub(self.channel)
        self.controller = csi_pb2_grpc.ControllerStub(self.channel)
        self.node = csi_pb2_grpc.NodeStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> CsiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def create_volume(
        self,
        name: str,
        parameters: Mapping[str, str] | None = None,
        required_bytes: int = 0,
        secrets: Mapping[str, str] | None = None,
    ) -> csi_pb2.Volume:
        response = await self.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name=name,
                capacity_range=csi_pb2.CapacityRange(required_bytes=required_bytes),
                volume_capabilities=[mount_capability()],
                parameters=dict(parameters or {}),
                secrets=dict(secrets or {}),
            )
        )
        volume: csi_pb2.Volume = response.volume
        return volume

    async def delete_volume(self, volume_id: str, secrets: Mapping[str, str] | None = None) -> None:
        request = csi_pb2.DeleteVolumeRequest(volume_id=volume_id, secrets=dict(secrets or {}))
        await self.controller.DeleteVolume(request)

    async def publish(
        self,
        volume: csi_pb2.Volume,
        target: str,
        readonly: bool = False,
        mount_flags: tuple[str, ...] = (),
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        await self.node.NodePublishVolume(
            csi_pb2.NodePublishVolumeRequest(
                volume_id=volume.volume_id,
                target_path=target,
                volume_capability=mount_capability(mount_flags=mount_flags),
                readonly=readonly,
                volume_context=volume.volume_context,
                secrets=dict(secrets or {}),
            )
        )

    async def unpublish(self, volume_id: str, target: str) -> None:
        await self.node.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target))

    async def stats(self, volume_id: str, path: str) -> csi_pb2.NodeGetVolumeStatsResponse:
        response: csi_pb2.NodeGetVolumeStatsResponse = await self.node.NodeGetVolumeStats(
            csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume_id, volume_path=path)
        )
        return response
