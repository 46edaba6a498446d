"""CSI Node: mount a file system (or a sub-directory of one) into a pod's target path, and report on it.

No staging: an NFS mount has no device to attach or format, so each publish mounts directly. The mount
table is the source of truth for what is mounted; targets are removed with ``rmdir`` only, so a failed
unmount can never turn into deleting the volume's data.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from dataclasses import dataclass

import grpc

from cfs_csi.csi import csi_pb2, csi_pb2_grpc
from cfs_csi.driver.capabilities import unsupported_reason
from cfs_csi.driver.errors import CsiError, invalid, not_found, require
from cfs_csi.driver.locks import InFlight
from cfs_csi.driver.published import Publication, PublishedVolumes
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.mounter import Mounter, unmount
from cfs_csi.mount.mountinfo import MountTable, read_mount_table
from cfs_csi.mount.stats import volume_stats
from cfs_csi.volume.nfs import nfs_mount_for

log = logging.getLogger(__name__)

_NODE_RPC = csi_pb2.NodeServiceCapability.RPC
CAPABILITIES = (_NODE_RPC.GET_VOLUME_STATS, _NODE_RPC.VOLUME_CONDITION, _NODE_RPC.SINGLE_NODE_MULTI_WRITER)
_SINGLE_WRITER = csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER

#: Stacked mounts at one target are unmounted one by one, up to this many.
_MAX_STACKED = 8


@dataclass(frozen=True)
class NodeTimeouts:
    mount: float = 90.0
    unmount: float = 60.0
    stats: float = 10.0


class NodeServicer(csi_pb2_grpc.NodeServicer):  # type: ignore[misc]
    def __init__(self, node_id: str, mounter: Mounter, published: PublishedVolumes, timeouts: NodeTimeouts) -> None:
        self._node_id = node_id
        self._mounter = mounter
        self._published = published
        self._timeouts = timeouts
        self._in_flight = InFlight()

    async def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodePublishVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        target = _absolute(require(request.target_path, "target_path"))
        if not request.HasField("volume_capability"):
            raise invalid("volume_capability is required")
        reason = unsupported_reason(request.volume_capability)
        if reason:
            raise invalid(reason)
        nfs = nfs_mount_for(request.volume_context, request.volume_capability.mount.mount_flags, request.readonly)
        exclusive = request.volume_capability.access_mode.mode == _SINGLE_WRITER
        with self._in_flight.hold(f"volume/{volume_id}", f"target/{target}"):
            table = read_mount_table()
            self._check_exclusive(volume_id, target, exclusive, table)
            existing = table.at(target)
            if existing is not None:
                if not self._mounter.is_mount_of(nfs, existing, table) or existing.read_only != nfs.read_only:
                    raise CsiError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"{target} is already mounted from {existing.source} "
                        f"({'ro' if existing.read_only else 'rw'}), not from {nfs.source} as requested",
                    )
            else:
                await asyncio.to_thread(_make_target, target)
                log.info("mounting %s at %s with options %s", nfs.source, target, ",".join(nfs.options))
                await self._mounter.mount(nfs, target)
            self._published.record(
                Publication(volume_id=volume_id, target_path=target, source=nfs.source, exclusive=exclusive)
            )
        return csi_pb2.NodePublishVolumeResponse()

    def _check_exclusive(self, volume_id: str, target: str, exclusive: bool, table: MountTable) -> None:
        """SINGLE_NODE_SINGLE_WRITER: refuse a second target while another still holds the volume."""
        for other in self._published.of_volume(volume_id):
            if other.target_path != target and (exclusive or other.exclusive) and table.at(other.target_path):
                raise CsiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"volume {volume_id} is published for a single writer at {other.target_path}",
                )

    async def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        target = _absolute(require(request.target_path, "target_path"))
        with self._in_flight.hold(f"volume/{volume_id}", f"target/{target}"):
            for _ in range(_MAX_STACKED):
                if read_mount_table().at(target) is None:
                    break
                await unmount(target, self._timeouts.unmount)
            else:
                raise CsiError(grpc.StatusCode.INTERNAL, f"{target} is still mounted after {_MAX_STACKED} unmounts")
            await asyncio.to_thread(_remove_target, target)
            self._published.forget(target)
        return csi_pb2.NodeUnpublishVolumeResponse()

    async def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        volume_id = require(request.volume_id, "volume_id")
        path = os.path.normpath(require(request.volume_path, "volume_path"))
        if not os.path.isabs(path):
            raise not_found(f"volume {volume_id} is not published at {path}: not an absolute path")
        publication = self._published.get(path)
        mounted = read_mount_table().at(path) is not None
        if publication is not None and publication.volume_id != volume_id:
            raise not_found(f"{path} holds volume {publication.volume_id}, not {volume_id}")
        if publication is None and not mounted:
            raise not_found(f"volume {volume_id} is not published at {path}")
        if not mounted:
            return _abnormal(f"{path} should hold volume {volume_id} but nothing is mounted there")
        try:
            stats = await volume_stats(path, self._timeouts.stats)
        except MountError as exc:
            if exc.kind in (MountErrorKind.STALE, MountErrorKind.TIMEOUT):
                return _abnormal(f"{exc.message}; the pod may need to be restarted to remount")
            raise
        usage = [
            csi_pb2.VolumeUsage(
                unit=csi_pb2.VolumeUsage.BYTES,
                total=stats.total_bytes,
                available=stats.available_bytes,
                used=stats.used_bytes,
            ),
            csi_pb2.VolumeUsage(
                unit=csi_pb2.VolumeUsage.INODES,
                total=stats.total_inodes,
                available=stats.free_inodes,
                used=stats.used_inodes,
            ),
        ]
        return csi_pb2.NodeGetVolumeStatsResponse(
            usage=usage, volume_condition=csi_pb2.VolumeCondition(abnormal=False, message="mounted")
        )

    async def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.NodeServiceCapability(rpc=csi_pb2.NodeServiceCapability.RPC(type=rpc)) for rpc in CAPABILITIES
            ]
        )

    async def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.NodeGetInfoResponse:
        return csi_pb2.NodeGetInfoResponse(node_id=self._node_id)


def _abnormal(message: str) -> csi_pb2.NodeGetVolumeStatsResponse:
    return csi_pb2.NodeGetVolumeStatsResponse(volume_condition=csi_pb2.VolumeCondition(abnormal=True, message=message))


def _absolute(path: str) -> str:
    if not os.path.isabs(path):
        raise invalid(f"path {path!r} must be absolute")
    return os.path.normpath(path)


def _make_target(target: str) -> None:
    try:
        os.makedirs(target, exist_ok=True)
    except FileExistsError:
        raise invalid(f"target path {target} exists and is not a directory") from None


def _remove_target(target: str) -> None:
    """Remove the (unmounted) target directory; never anything below it."""
    try:
        os.rmdir(target)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        os.unlink(target)
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise
        # Data written into the bare directory while nothing was mounted: keep it, and say so.
        log.warning("target %s is not empty after unmount; leaving it in place", target)
