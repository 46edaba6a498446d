"""CSI Controller: one file system per volume, through a :class:`~cfs_csi.cloud.FileStorage` backend.

Every request is checked completely before any backend call (name, capabilities, parameters, capacity), so
a request that can never succeed creates nothing. What the backends report is read back defensively, so a
stored value (a tag anyone can edit) never breaks a response.
"""

from __future__ import annotations

import re

from cfs_csi.cloud.base import FileStorage, FileSystem, FileSystemSpec
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.ownership import Origin
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.capabilities import first_unsupported
from cfs_csi.driver.errors import CsiError, StatusCode, invalid, not_found, require
from cfs_csi.driver.grpcserve import CallContext
from cfs_csi.driver.locks import InFlight
from cfs_csi.volume.capacity import MAX_CAPACITY, required_capacity, stored_capacity
from cfs_csi.volume.names import check_volume_name, cut
from cfs_csi.volume.params import parse_parameters

_RPC = csi_pb2.ControllerServiceCapability.RPC

#: Only what is implemented: no attach (NFS needs none), no snapshots or expansion yet.
CAPABILITIES = (_RPC.CREATE_DELETE_VOLUME, _RPC.LIST_VOLUMES, _RPC.GET_VOLUME, _RPC.VOLUME_CONDITION)

#: Volume ids are file-system ids. ListVolumes tokens are the last volume id of the previous page, so a page
#: survives deletions. Anything else is no volume of ours, answered without asking the backend.
_VOLUME_ID = re.compile(r"cfs-[0-9a-z]{1,32}")
_TOKEN = _VOLUME_ID


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
        if request.HasField("volume_content_source"):
            raise invalid("creating a volume from a snapshot or another volume is not supported")
        params = self._storage.with_defaults(parse_parameters(request.parameters))
        capacity = required_capacity(
            request.capacity_range.required_bytes, request.capacity_range.limit_bytes, MAX_CAPACITY[params.storage_type]
        )
        wanted = FileSystemSpec(name=name, capacity_bytes=capacity, params=params)
        with self._in_flight.hold(f"name/{name}"):
            fs = await self._storage.ensure_file_system(wanted)
        if fs.capacity_bytes != capacity:
            raise CsiError(
                StatusCode.ALREADY_EXISTS,
                f"volume {name!r} exists with capacity {fs.capacity_bytes} bytes, not {capacity}",
            )
        if fs.params != params:
            raise CsiError(StatusCode.ALREADY_EXISTS, f"volume {name!r} exists with other parameters ({fs.id})")
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
        if request.max_entries < 0:
            raise invalid("max_entries must not be negative")
        token = request.starting_token
        if token and not _TOKEN.fullmatch(token):
            raise CsiError(StatusCode.ABORTED, f"starting_token {token!r} was not issued by this driver")
        listed = await self._storage.list_file_systems()
        systems = sorted((fs for fs in listed if fs.owner.origin is Origin.VOLUME), key=lambda fs: fs.id)
        remaining = [fs for fs in systems if fs.id > token] if token else systems
        page = remaining[: request.max_entries] if request.max_entries else remaining
        next_token = page[-1].id if page and len(remaining) > len(page) else ""
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
    return csi_pb2.Volume(volume_id=fs.id, capacity_bytes=capacity, volume_context=fs.volume_context())


def _condition(fs: FileSystem) -> csi_pb2.VolumeCondition:
    if fs.ready:
        return csi_pb2.VolumeCondition(abnormal=False, message="available")
    return csi_pb2.VolumeCondition(abnormal=True, message=f"file system {fs.id} is {fs.state.value}")
