"""The file-storage interface every backend implements.

The interface speaks in whole file systems found by *name*, because a name is the only key that survives a
controller crash between "create" and "remember the id": a backend must always be able to find what an
earlier, interrupted call created, so that a retry resumes it instead of creating a second one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from cfs_csi.volume.params import VolumeParameters


class FileSystemState(enum.StrEnum):
    """Life-cycle states as the CFS API names them."""

    CREATING = "creating"
    CREATE_FAILED = "create_failed"
    AVAILABLE = "available"
    DELETING = "deleting"
    DELETE_FAILED = "delete_failed"
    OTHER = "other"


@dataclass(frozen=True)
class FileSystemSpec:
    """What the caller wants: a file system called ``name`` with these parameters."""

    name: str
    capacity_bytes: int
    params: VolumeParameters


@dataclass(frozen=True)
class FileSystem:
    """A file system as the backend reports it."""

    id: str
    name: str
    state: FileSystemState
    capacity_bytes: int
    params: VolumeParameters
    host: str = ""
    export_fsid: str = ""

    @property
    def ready(self) -> bool:
        return self.state is FileSystemState.AVAILABLE and bool(self.host)

    def volume_context(self) -> dict[str, str]:
        """What the node needs to mount it, plus the parameters (as in the seed's CreateVolume log)."""
        return {**self.params.to_context(), "host": self.host, "fsid": self.export_fsid}


class FileStorage(Protocol):
    """A place that creates, finds and deletes file systems. All methods are idempotent."""

    def with_defaults(self, params: VolumeParameters) -> VolumeParameters:
        """``params`` with the backend's defaults filled in (the zone the controller runs in, say).

        Called before :meth:`ensure_file_system` so that the parameters compared for idempotency, and those
        reported in the volume context, are the ones the file system really has.
        """
        ...

    async def ensure_file_system(self, spec: FileSystemSpec) -> FileSystem:
        """Return the file system called ``spec.name``, creating it if none exists.

        Returns an existing file system as it is, even if its parameters differ from ``spec``: the caller
        decides whether that is a conflict. Raises :class:`~cfs_csi.cloud.errors.CloudError` with kind
        ``PENDING`` while it is not usable yet.
        """
        ...

    async def get_file_system(self, fs_id: str) -> FileSystem | None:
        """The file system with this id, or ``None`` if there is none."""
        ...

    async def list_file_systems(self) -> list[FileSystem]:
        """Every file system this driver manages (not others that share the account)."""
        ...

    async def delete_file_system(self, fs_id: str) -> None:
        """Delete it; a file system that does not exist is success."""
        ...

    async def probe(self) -> None:
        """Raise :class:`~cfs_csi.cloud.errors.CloudError` unless the backend answers."""
        ...
