"""CreateVolume's content source: a snapshot to restore or a volume to clone, checked before any cloud change.

Both are ids anyone who reaches the controller's socket (or creates a claim) can name, so each is checked as
hostile input: it must exist (NOT_FOUND), be ours (FAILED_PRECONDITION: a restore or clone would hand its data to
whoever named it, :mod:`cfs_csi.cloud.ownership`), be usable now (ABORTED while being taken or created), and fit
the request (OUT_OF_RANGE for a volume smaller than its source; INVALID_ARGUMENT for a shared volume, which is a
directory of a file system every claim of its class shares, or a class whose storage type CFS cannot restore
the source into, :mod:`cfs_csi.volume.clone`). The backend checks ownership again before it copies anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cfs_csi.cloud.base import FileStorage, FileSystem, Snapshot
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.ownership import Origin, clone_refusal
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.errors import CsiError, StatusCode, invalid, not_found, require
from cfs_csi.volume.capacity import CapacityError
from cfs_csi.volume.clone import storage_type_refusal
from cfs_csi.volume.handles import DEDICATED_ID, shared_handle
from cfs_csi.volume.names import cut
from cfs_csi.volume.params import VolumeParameters

#: Snapshot ids as CFS writes them; ListSnapshots tokens are the last snapshot id of the previous page.
SNAPSHOT_ID = re.compile(r"snapcfs-[0-9a-z]{1,32}")


@dataclass(frozen=True)
class ContentSource:
    """What a new volume starts with: nothing, a snapshot's content or another volume's."""

    snapshot: Snapshot | None = None
    volume: FileSystem | None = None

    @property
    def snapshot_id(self) -> str:
        return self.snapshot.id if self.snapshot is not None else ""

    @property
    def volume_id(self) -> str:
        return self.volume.id if self.volume is not None else ""

    @property
    def least_bytes(self) -> int:
        """The smallest capacity the new volume may have (the source's; 0 when there is none or it is unknown)."""
        if self.snapshot is not None:
            return self.snapshot.size_bytes
        return self.volume.capacity_bytes if self.volume is not None else 0

    def check_capacity(self, capacity: int) -> None:
        """OUT_OF_RANGE (:class:`CapacityError`) if ``capacity`` cannot hold the source's content."""
        least = self.least_bytes
        if capacity >= least:
            return
        if self.snapshot is not None:
            raise CapacityError(
                f"snapshot {self.snapshot.id} was taken of a volume of {least} bytes; a volume restored from it "
                f"needs at least that, not {capacity}"
            )
        raise CapacityError(
            f"volume {self.volume_id} has {least} bytes; a clone of it needs at least that, not {capacity}"
        )


async def content_source(
    storage: FileStorage, request: csi_pb2.CreateVolumeRequest, params: VolumeParameters
) -> ContentSource:
    """The checked source of ``request`` (whose class parameters, with defaults, are ``params``)."""
    if not request.HasField("volume_content_source"):
        return ContentSource()
    source = request.volume_content_source
    kind = source.WhichOneof("type")
    if kind == "snapshot":
        return ContentSource(snapshot=await _snapshot(storage, source.snapshot.snapshot_id))
    if kind == "volume":
        return ContentSource(volume=await _volume(storage, source.volume.volume_id, params))
    raise invalid("volume_content_source must name a snapshot or a volume")


async def _snapshot(storage: FileStorage, snapshot_id: str) -> Snapshot:
    require(snapshot_id, "volume_content_source.snapshot.snapshot_id")
    snapshot = await storage.get_snapshot(snapshot_id) if SNAPSHOT_ID.fullmatch(snapshot_id) else None
    if snapshot is None:
        raise not_found(f"snapshot {cut(snapshot_id)} does not exist")
    if snapshot.owner.origin is not Origin.SNAPSHOT:
        raise CsiError(
            StatusCode.FAILED_PRECONDITION,
            f"snapshot {cut(snapshot_id)} was not taken by this driver for this cluster as a CSI snapshot "
            f"({snapshot.owner.detail}); restoring it would hand its data to whoever asked",
        )
    if not snapshot.ready:
        raise CloudError(ErrorKind.PENDING, f"snapshot {snapshot_id} is {snapshot.state.value}; retry later")
    return snapshot


async def _volume(storage: FileStorage, volume_id: str, params: VolumeParameters) -> FileSystem:
    require(volume_id, "volume_content_source.volume.volume_id")
    if shared_handle(volume_id) is not None:
        raise invalid(
            f"volume {cut(volume_id)} is a directory of a shared class's file system and cannot be cloned: a clone "
            "is made from a CFS snapshot, CFS snapshots whole file systems, and a snapshot of the share would hold "
            "every claim's data; use a dedicated class"
        )
    fs = await storage.get_file_system(volume_id) if DEDICATED_ID.fullmatch(volume_id) else None
    if fs is None:
        raise not_found(f"source volume {cut(volume_id)} does not exist")
    refusal = clone_refusal(volume_id, fs.owner)
    if refusal is not None:
        raise CsiError(StatusCode.FAILED_PRECONDITION, refusal)
    reason = storage_type_refusal(fs.params.storage_type.value, params.storage_type.value)
    if reason is not None:
        raise invalid(reason)
    if not fs.ready:
        raise CloudError(ErrorKind.PENDING, f"source volume {fs.id} is {fs.state.value}; retry later")
    return fs
