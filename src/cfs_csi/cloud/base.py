"""The file-storage interface every backend implements.

The interface speaks in whole file systems found by *name*, because a name is the only key that survives a
controller crash between "create" and "remember the id": a backend must always be able to find what an
earlier, interrupted call created, so that a retry resumes it instead of creating a second one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from cfs_csi.cloud.ownership import Origin, Ownership
from cfs_csi.volume.params import VolumeParameters

#: What a backend that forgot to say reports: refused by every deletion, never listed as a volume.
UNPROVEN = Ownership(Origin.INCONSISTENT, "the backend could not tell whose it is")


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
    #: Whose it is (see :mod:`cfs_csi.cloud.ownership`); not part of equality, which compares the volume.
    owner: Ownership = field(default=UNPROVEN, compare=False)

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

        Only a file system proven to be the one this driver made for ``spec.name`` is returned; a foreign one
        of that name is a CONFLICT. Nothing created by a call may leak, whatever fails after the creation:
        when the error is one the CO retries (:attr:`ErrorKind.retried`), the file system stays and the retry
        finds it by name; after any other error no retry may come, so it is deleted before the error is raised.
        """
        ...

    async def get_file_system(self, fs_id: str) -> FileSystem | None:
        """The file system with this id, or ``None`` if there is none."""
        ...

    async def list_file_systems(self) -> list[FileSystem]:
        """Every file system this driver manages (not others that share the account).

        One record that cannot be read (a tag or file that is not what this driver writes) is reported as
        well as it can be, or left out with a warning; it never makes the whole listing fail.
        """
        ...

    async def delete_file_system(self, fs_id: str) -> None:
        """Delete it if it is proven to be a dedicated volume of this driver (:mod:`cfs_csi.cloud.ownership`);
        anything else raises :class:`~cfs_csi.cloud.errors.CloudError` ``REFUSED`` and stays. A file system that
        does not exist is success."""
        ...

    async def probe(self) -> None:
        """Raise :class:`~cfs_csi.cloud.errors.CloudError` unless the backend answers."""
        ...
