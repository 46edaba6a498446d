"""CSI Controller: one file system per volume, through a :class:`~cfs_csi.cloud.FileStorage` backend.

Every request is checked completely before any backend call (name, capabilities, parameters, capacity), so
a request that can never succeed creates nothing. What the backends report is read back defensively, so a
stored value (a tag anyone can edit) never breaks a response.

Expansion: a dedicated volume's file system grows (its size limit on CFS Standard, recorded elsewhere); a shared
class's volume (a directory, handle ``<fsid>:<dir>``) gets its directory quota raised. NFS has no file system on
the node to resize, and a quota is enforced by the server, so a dedicated volume answers
``node_expansion_required`` false (Kubernetes marks the claim resized at once). A shared volume answers true: the
kubelet then calls NodeExpandVolume where the volume is published, which records the new quota that the node's
NodeGetVolumeStats reports as the volume's capacity (the node has no cloud access to learn it otherwise).

Snapshots are of whole dedicated file systems (CFS snapshots a file system, not a directory): CreateSnapshot of
a shared volume answers INVALID_ARGUMENT saying so. A volume restored from a snapshot is a new file system
created from it; only snapshots this driver took for this cluster are restored (FAILED_PRECONDITION otherwise,
see :mod:`cfs_csi.cloud.ownership`).

Cloning (a volume as content source) is a restore from a temporary snapshot of the source in the cloud (the
backend's business: :mod:`cfs_csi.cloud.tencent.clones`). Only a dedicated volume of this driver and cluster is
cloned (FAILED_PRECONDITION otherwise, like snapshots: a clone hands the source's data to whoever names its id);
a shared volume is INVALID_ARGUMENT (a directory of a share, and CFS snapshots whole file systems); the class's
parameters apply to the clone, within the storage series CFS restores into (:mod:`cfs_csi.volume.clone`).
"""

from __future__ import annotations

import re
from typing import Protocol, TypeVar

from google.protobuf import timestamp_pb2

from cfs_csi.cloud.base import FileStorage, FileSystem, FileSystemSpec, Snapshot
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.ownership import Origin
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.capabilities import first_unsupported
from cfs_csi.driver.errors import CsiError, StatusCode, invalid, not_found, require
from cfs_csi.driver.grpcserve import CallContext
from cfs_csi.driver.locks import InFlight
from cfs_csi.driver.sources import SNAPSHOT_ID, content_source
from cfs_csi.volume.capacity import MAX_CAPACITY, CapacityError, required_capacity, stored_capacity
from cfs_csi.volume.handles import DEDICATED_ID, shared_handle
from cfs_csi.volume.names import check_snapshot_name, check_volume_name, cut
from cfs_csi.volume.params import parse_parameters
from cfs_csi.volume.quota import quota_for_claim, quota_path

_RPC = csi_pb2.ControllerServiceCapability.RPC

#: Only what is implemented: no attach (NFS needs none), no modification.
CAPABILITIES = (
    _RPC.CREATE_DELETE_VOLUME,
    _RPC.LIST_VOLUMES,
    _RPC.GET_VOLUME,
    _RPC.VOLUME_CONDITION,
    _RPC.EXPAND_VOLUME,
    _RPC.CREATE_DELETE_SNAPSHOT,
    _RPC.LIST_SNAPSHOTS,
    _RPC.CLONE_VOLUME,
)

#: Whether the node must take a grown volume's new size (see the module's docstring): a dedicated volume's file
#: system needs nothing on the node; a shared volume's new quota is recorded by NodeExpandVolume for its stats.
NODE_EXPANSION_REQUIRED = False
SHARED_NODE_EXPANSION_REQUIRED = True

#: Volume ids are file-system ids. ListVolumes tokens are the last volume id of the previous page, so a page
#: survives deletions. Anything else is no volume of ours, answered without asking the backend.
_VOLUME_ID = DEDICATED_ID
_TOKEN = _VOLUME_ID
_SNAPSHOT_ID = SNAPSHOT_ID


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


_Item = TypeVar("_Item", bound=_Identified)


def check_page_request(max_entries: int, token: str, issued: re.Pattern[str]) -> None:
    """ListVolumes' and ListSnapshots' paging arguments: a token is an id this driver handed out (ABORTED else)."""
    if max_entries < 0:
        raise invalid("max_entries must not be negative")
    if token and not issued.fullmatch(token):
        raise CsiError(StatusCode.ABORTED, f"starting_token {cut(token)!r} was not issued by this driver")


def page_of(items: list[_Item], token: str, max_entries: int) -> tuple[list[_Item], str]:
    """One page of ``items`` in id order after ``token``, and the next token ("" on the last page) (pure).

    The token is the last id handed out, not an offset, so an item created or deleted between pages moves nothing.
    """
    ordered = sorted(items, key=lambda item: item.id)
    remaining = [item for item in ordered if item.id > token] if token else ordered
    page = remaining[:max_entries] if max_entries else remaining
    return page, page[-1].id if page and len(remaining) > len(page) else ""


class ControllerServicer:
    def __init__(self, storage: FileStorage) -> None:
        self._storage = storage
        self._in_flight = InFlight()

    async def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: CallContext
    ) -> csi_pb2.CreateVolumeResponse:
        """Everything is validated before the backend is called; then nothing created may leak.

        The rule for failures after a file system was created (implemented by each backend's
        ``ensure_file_system``): an error the CO retries leaves it for the retry to find by name (the cloud name
        and our tags); any other error deletes it before answering. What follows the backend call here only
        compares an existing file system with the request (ALREADY_EXISTS, never for one just created from
        this very request) and builds a response that cannot fail.
        """
        name = check_volume_name(request.name)
        if not request.volume_capabilities:
            raise invalid("volume_capabilities is required")
        reason = first_unsupported(request.volume_capabilities)
        if reason:
            raise invalid(reason)
        params = self._storage.with_defaults(parse_parameters(request.parameters))
        required, limit = request.capacity_range.required_bytes, request.capacity_range.limit_bytes
        source = await content_source(self._storage, request, params)
        if (source.snapshot or source.volume) and not required and not limit:
            required = source.least_bytes  # no size asked: the source's
        capacity = required_capacity(required, limit, MAX_CAPACITY[params.storage_type])
        source.check_capacity(capacity)
        wanted = FileSystemSpec(
            name=name,
            capacity_bytes=capacity,
            params=params,
            source_snapshot=source.snapshot_id,
            source_volume=source.volume_id,
        )
        with self._in_flight.hold(f"name/{name}"):
            fs = await self._storage.ensure_file_system(wanted)
        if fs.capacity_bytes != capacity:
            raise CsiError(
                StatusCode.ALREADY_EXISTS,
                f"volume {name!r} exists with capacity {fs.capacity_bytes} bytes, not {capacity}",
            )
        if fs.params != params:
            raise CsiError(StatusCode.ALREADY_EXISTS, f"volume {name!r} exists with other parameters ({fs.id})")
        if (fs.source_snapshot, fs.source_volume) != (wanted.source_snapshot, wanted.source_volume):
            raise CsiError(
                StatusCode.ALREADY_EXISTS,
                f"volume {name!r} exists with another content source "
                f"({fs.source_snapshot or fs.source_volume or 'none'})",
            )
        if not fs.ready:
            raise CloudError(ErrorKind.PENDING, f"file system {fs.id} is {fs.state.value}; retry later")
        return csi_pb2.CreateVolumeResponse(volume=_volume(fs))

    async def DeleteVolume(
        self, request: csi_pb2.DeleteVolumeRequest, context: CallContext
    ) -> csi_pb2.DeleteVolumeResponse:
        """Deletes only a dedicated volume's file system, proven by the backend (:mod:`cfs_csi.cloud.ownership`).

        A shared class's file system, one without our tags (the vendor driver's, unless the controller runs
        with ``--delete-vendor-volumes``), or another cluster's answers FAILED_PRECONDITION and stays.
        """
        volume_id = require(request.volume_id, "volume_id")
        if not _VOLUME_ID.fullmatch(volume_id):
            return csi_pb2.DeleteVolumeResponse()  # no file system has such an id: already gone
        with self._in_flight.hold(f"id/{volume_id}"):
            await self._storage.delete_file_system(volume_id)
        return csi_pb2.DeleteVolumeResponse()

    async def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, context: CallContext
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        volume_id = require(request.volume_id, "volume_id")
        if not request.volume_capabilities:
            raise invalid("volume_capabilities is required")
        fs = await self._get(volume_id)
        if fs is None:
            raise not_found(f"volume {cut(volume_id)} does not exist")
        reason = first_unsupported(request.volume_capabilities)
        if (
            reason is None
            and request.parameters
            and self._storage.with_defaults(parse_parameters(request.parameters)) != fs.params
        ):
            reason = "the parameters differ from those the volume was created with"
        if reason:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message=reason)
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context,
            volume_capabilities=request.volume_capabilities,
            parameters=request.parameters,
        )
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    async def ListVolumes(
        self, request: csi_pb2.ListVolumesRequest, context: CallContext
    ) -> csi_pb2.ListVolumesResponse:
        check_page_request(request.max_entries, request.starting_token, _TOKEN)
        listed = await self._storage.list_file_systems()
        page, next_token = page_of(
            [fs for fs in listed if fs.owner.origin is Origin.VOLUME], request.starting_token, request.max_entries
        )
        return csi_pb2.ListVolumesResponse(
            entries=[
                csi_pb2.ListVolumesResponse.Entry(
                    volume=_volume(fs),
                    status=csi_pb2.ListVolumesResponse.VolumeStatus(volume_condition=_condition(fs)),
                )
                for fs in page
            ],
            next_token=next_token,
        )

    async def ControllerGetVolume(
        self, request: csi_pb2.ControllerGetVolumeRequest, context: CallContext
    ) -> csi_pb2.ControllerGetVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        fs = await self._get(volume_id)
        if fs is None:
            raise not_found(f"volume {cut(volume_id)} does not exist")
        return csi_pb2.ControllerGetVolumeResponse(
            volume=_volume(fs),
            status=csi_pb2.ControllerGetVolumeResponse.VolumeStatus(volume_condition=_condition(fs)),
        )

    async def _get(self, volume_id: str) -> FileSystem | None:
        return await self._storage.get_file_system(volume_id) if _VOLUME_ID.fullmatch(volume_id) else None

    async def ControllerExpandVolume(
        self, request: csi_pb2.ControllerExpandVolumeRequest, context: CallContext
    ) -> csi_pb2.ControllerExpandVolumeResponse:
        """Grow a dedicated volume's file system, or raise a shared volume's directory quota (never shrinks)."""
        volume_id = require(request.volume_id, "volume_id")
        if request.HasField("volume_capability"):
            reason = first_unsupported([request.volume_capability])
            if reason:
                raise invalid(reason)
        required, limit = request.capacity_range.required_bytes, request.capacity_range.limit_bytes
        if not required and not limit:
            raise invalid("capacity_range is required")
        if _VOLUME_ID.fullmatch(volume_id):
            fs = await self._storage.get_file_system(volume_id)
            if fs is None:
                raise not_found(f"volume {volume_id} does not exist")
            capacity = required_capacity(required, limit, MAX_CAPACITY[fs.params.storage_type])
            with self._in_flight.hold(f"id/{volume_id}"):
                grown = await self._storage.expand_file_system(volume_id, capacity)
            return csi_pb2.ControllerExpandVolumeResponse(
                capacity_bytes=max(stored_capacity(grown.capacity_bytes), capacity),
                node_expansion_required=NODE_EXPANSION_REQUIRED,
            )
        handle = shared_handle(volume_id)
        if handle is None:
            raise not_found(f"volume {cut(volume_id)} does not exist")
        decision = quota_for_claim(required or limit)
        if not decision.possible:
            raise CapacityError(decision.reason)
        if limit and decision.capacity_bytes > limit:
            raise CapacityError(f"{decision.reason}, which exceeds limit_bytes {limit}")
        share = await self._shared_file_system(handle.share)
        with self._in_flight.hold(f"id/{volume_id}"):
            quota = await self._storage.set_directory_quota(
                share.id, quota_path(handle.directory), decision.capacity_gib
            )
        return csi_pb2.ControllerExpandVolumeResponse(
            capacity_bytes=quota.capacity_bytes, node_expansion_required=SHARED_NODE_EXPANSION_REQUIRED
        )

    async def _shared_file_system(self, share: str) -> FileSystem:
        """The shared class's file system a shared volume's handle names (by export FSID, or by server)."""
        for fs in await self._storage.list_file_systems():
            if fs.owner.origin is Origin.SHARED and share in (fs.export_fsid, fs.host):
                return fs
        raise not_found(f"no shared file system of this driver is exported as {cut(share)}")

    # -- snapshots -----------------------------------------------------------------------------------------

    async def CreateSnapshot(
        self, request: csi_pb2.CreateSnapshotRequest, context: CallContext
    ) -> csi_pb2.CreateSnapshotResponse:
        """Take (or find again by name) a snapshot of a dedicated volume's whole file system."""
        name = check_snapshot_name(request.name)
        source = require(request.source_volume_id, "source_volume_id")
        if shared_handle(source) is not None:
            raise invalid(
                f"volume {cut(source)} is a directory of a shared class's file system; CFS snapshots whole file "
                "systems, and a snapshot of the share would hold every claim's data: use a dedicated class"
            )
        if not _VOLUME_ID.fullmatch(source):
            raise not_found(f"volume {cut(source)} does not exist")
        with self._in_flight.hold(f"snapshot/{name}"):
            snapshot = await self._storage.ensure_snapshot(name, source)
        return csi_pb2.CreateSnapshotResponse(snapshot=_snapshot(snapshot))

    async def DeleteSnapshot(
        self, request: csi_pb2.DeleteSnapshotRequest, context: CallContext
    ) -> csi_pb2.DeleteSnapshotResponse:
        """Deletes only a snapshot proven ours; one that is not is FAILED_PRECONDITION and stays."""
        snapshot_id = require(request.snapshot_id, "snapshot_id")
        if not _SNAPSHOT_ID.fullmatch(snapshot_id):
            return csi_pb2.DeleteSnapshotResponse()  # no snapshot has such an id: already gone
        with self._in_flight.hold(f"snapshot-id/{snapshot_id}"):
            await self._storage.delete_snapshot(snapshot_id)
        return csi_pb2.DeleteSnapshotResponse()

    async def ListSnapshots(
        self, request: csi_pb2.ListSnapshotsRequest, context: CallContext
    ) -> csi_pb2.ListSnapshotsResponse:
        """Our snapshots by id, filtered by ``snapshot_id`` and ``source_volume_id`` (both when both are given)."""
        check_page_request(request.max_entries, request.starting_token, _SNAPSHOT_ID)
        snapshots = await self._filtered_snapshots(request.snapshot_id, request.source_volume_id)
        page, next_token = page_of(
            [s for s in snapshots if s.owner.origin is Origin.SNAPSHOT], request.starting_token, request.max_entries
        )
        return csi_pb2.ListSnapshotsResponse(
            entries=[csi_pb2.ListSnapshotsResponse.Entry(snapshot=_snapshot(s)) for s in page], next_token=next_token
        )

    async def _filtered_snapshots(self, snapshot_id: str, source: str) -> list[Snapshot]:
        if snapshot_id:
            found = await self._storage.get_snapshot(snapshot_id) if _SNAPSHOT_ID.fullmatch(snapshot_id) else None
            return [found] if found is not None and (not source or found.source_fs_id == source) else []
        if source:
            return await self._storage.list_snapshots(source) if _VOLUME_ID.fullmatch(source) else []
        return await self._storage.list_snapshots()

    async def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest, context: CallContext
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.ControllerServiceCapability(rpc=csi_pb2.ControllerServiceCapability.RPC(type=rpc))
                for rpc in CAPABILITIES
            ]
        )


def _volume(fs: FileSystem) -> csi_pb2.Volume:
    capacity = stored_capacity(fs.capacity_bytes)  # 0 ("unknown") rather than a response that cannot be built
    volume = csi_pb2.Volume(volume_id=fs.id, capacity_bytes=capacity, volume_context=fs.volume_context())
    if fs.source_snapshot:
        volume.content_source.snapshot.snapshot_id = fs.source_snapshot
    elif fs.source_volume:
        volume.content_source.volume.volume_id = fs.source_volume
    return volume


def _snapshot(snapshot: Snapshot) -> csi_pb2.Snapshot:
    created = timestamp_pb2.Timestamp()
    created.FromNanoseconds(int(max(0.0, snapshot.created_at) * 1e9))
    return csi_pb2.Snapshot(
        snapshot_id=snapshot.id,
        source_volume_id=snapshot.source_fs_id,
        size_bytes=stored_capacity(snapshot.size_bytes),
        creation_time=created,
        ready_to_use=snapshot.ready,
    )


def _condition(fs: FileSystem) -> csi_pb2.VolumeCondition:
    if fs.ready:
        return csi_pb2.VolumeCondition(abnormal=False, message="available")
    return csi_pb2.VolumeCondition(abnormal=True, message=f"file system {fs.id} is {fs.state.value}")
