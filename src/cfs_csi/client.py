"""A small CSI client: ``cfs-csi client ...`` for humans, :class:`CsiClient` for tests and benchmarks.

It exists so that trying the driver needs nothing but this package (no grpcurl, no Go tools).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import json_format

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
        self, name: str, parameters: Mapping[str, str] | None = None, required_bytes: int = 0
    ) -> csi_pb2.Volume:
        response = await self.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name=name,
                capacity_range=csi_pb2.CapacityRange(required_bytes=required_bytes),
                volume_capabilities=[mount_capability()],
                parameters=dict(parameters or {}),
            )
        )
        volume: csi_pb2.Volume = response.volume
        return volume

    async def delete_volume(self, volume_id: str) -> None:
        await self.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))

    async def publish(
        self, volume: csi_pb2.Volume, target: str, readonly: bool = False, mount_flags: tuple[str, ...] = ()
    ) -> None:
        await self.node.NodePublishVolume(
            csi_pb2.NodePublishVolumeRequest(
                volume_id=volume.volume_id,
                target_path=target,
                volume_capability=mount_capability(mount_flags=mount_flags),
                readonly=readonly,
                volume_context=volume.volume_context,
            )
        )

    async def unpublish(self, volume_id: str, target: str) -> None:
        await self.node.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target))

    async def stats(self, volume_id: str, path: str) -> csi_pb2.NodeGetVolumeStatsResponse:
        response: csi_pb2.NodeGetVolumeStatsResponse = await self.node.NodeGetVolumeStats(
            csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume_id, volume_path=path)
        )
        return response


def _print(message: Any) -> None:
    print(json.dumps(json_format.MessageToDict(message), indent=2, sort_keys=True))


async def _client_main(args: argparse.Namespace) -> int:
    async with CsiClient(args.endpoint) as client:
        try:
            if args.action == "info":
                _print(await client.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest()))
                _print(await client.identity.Probe(csi_pb2.ProbeRequest()))
            elif args.action == "create":
                params = dict(item.split("=", 1) for item in args.param)
                _print(await client.create_volume(args.name, params, args.size_gib * 1024**3))
            elif args.action == "delete":
                await client.delete_volume(args.volume_id)
            elif args.action == "publish":
                context = dict(item.split("=", 1) for item in args.context)
                volume = csi_pb2.Volume(volume_id=args.volume_id, volume_context=context)
                await client.publish(volume, args.target, readonly=args.readonly)
            elif args.action == "unpublish":
                await client.unpublish(args.volume_id, args.target)
            elif args.action == "stats":
                _print(await client.stats(args.volume_id, args.target))
        except grpc.aio.AioRpcError as exc:
            print(f"{exc.code().name}: {exc.details()}")
            return 1
    return 0


def add_client_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("client", help="call a running driver (for trying it out)")
    p.add_argument("--endpoint", default="unix:///csi/csi.sock")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("info", help="plugin name, version and readiness")
    create = actions.add_parser("create", help="CreateVolume; prints the volume")
    create.add_argument("name")
    create.add_argument("--size-gib", type=int, default=10)
    create.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    delete = actions.add_parser("delete", help="DeleteVolume")
    delete.add_argument("volume_id")
    publish = actions.add_parser("publish", help="NodePublishVolume with a volume context")
    publish.add_argument("volume_id")
    publish.add_argument("target")
    publish.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="volume_context entries as printed by create (host, fsid, vers)",
    )
    publish.add_argument("--readonly", action="store_true")
    for name in ("unpublish", "stats"):
        q = actions.add_parser(name)
        q.add_argument("volume_id")
        q.add_argument("target")
    p.set_defaults(run=lambda args: asyncio.run(_client_main(args)))
