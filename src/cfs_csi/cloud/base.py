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


class SnapshotState(enum.StrEnum):
    """A snapshot's states as the CFS API names them (``SnapshotInfo.Status``)."""

    CREATING = "creating"
    AVAILABLE = "available"
    #: Being restored into a new file system: the snapshot itself is complete and usable.
    RESTORING = "rollbacking_new"
    DELETING = "deleting"
    CREATE_FAILED = "create-failed"
    OTHER = "other"


@dataclass(frozen=True)
class FileSystemSpec:
    """What the caller wants: a file system called ``name`` with these parameters.

    ``source_snapshot`` (a snapshot id) makes it a restore: the new file system starts with the snapshot's
    content. The backend checks that the snapshot is one of ours before it restores anything.

    ``source_volume`` (a dedicated volume's file-system id) makes it a clone: the new file system starts with
    the source's content as it was when the clone was made (``tencent``: a temporary snapshot of the source,
    named after the new volume, restored and then deleted; ``local``: a copy). The backend checks that the
    source is a proven dedicated volume of ours (:func:`cfs_csi.cloud.ownership.clone_refusal`) before it copies
    anything. At most one of the two is set.
    """

    name: str
    capacity_bytes: int
    params: VolumeParameters
    source_snapshot: str = ""
    source_volume: str = ""


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
    #: The snapshot it was restored from ("" if none), as recorded when it was created.
    source_snapshot: str = ""
    #: The volume (file-system id) it was cloned from ("" if none), as recorded when it was created.
    source_volume: str = ""

    @property
    def ready(self) -> bool:
        return self.state is FileSystemState.AVAILABLE and bool(self.host)

    def volume_context(self) -> dict[str, str]:
        """What the node needs to mount it, plus the parameters (as in the seed's CreateVolume log)."""
        return {**self.params.to_context(), "host": self.host, "fsid": self.export_fsid}


@dataclass(frozen=True)
class Snapshot:
    """A snapshot of a whole file system, as the backend reports it."""

    id: str
    #: The CSI name it was taken for (from our tag), or the cloud's name for a snapshot that is not ours.
    name: str
    source_fs_id: str
    state: SnapshotState
    #: What a volume restored from it needs at least: the source's capacity when it was taken.
    size_bytes: int
    #: Seconds since the epoch.
    created_at: float
    owner: Ownership = field(default=UNPROVEN, compare=False)

    @property
    def ready(self) -> bool:
        return self.state in (SnapshotState.AVAILABLE, SnapshotState.RESTORING)


@dataclass(frozen=True)
class DirectoryQuota:
    """A directory quota of a file system: ``path`` as the CFS API writes it (``/cfs/<dir>``)."""

    fs_id: str
    path: str
    capacity_bytes: int
    used_bytes: int
    files_used: int
    #: The cloud's word for it: ``available`` once it is enforced (``inavailable`` while being set up).
    state: str = "available"


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

        A clone (``spec.source_volume``): NOT_FOUND if the source does not exist, REFUSED unless it is a proven
        dedicated volume of ours, PENDING while its temporary snapshot is being taken. What the clone leaves in
        the cloud besides its file system (a temporary snapshot) follows the same rule, and is deleted once the
        file system is available (by this call or, after an interruption, by the retry).
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
        does not exist is success. A clone's temporary snapshot still left (see :meth:`ensure_file_system`) is
        deleted first, so nothing of the volume outlives it."""
        ...

    async def probe(self) -> None:
        """Raise :class:`~cfs_csi.cloud.errors.CloudError` unless the backend answers."""
        ...

    # -- expansion -----------------------------------------------------------------------------------------

    async def expand_file_system(self, fs_id: str, capacity_bytes: int) -> FileSystem:
        """Grow a dedicated volume's file system to ``capacity_bytes`` (whole GiB) and return it as it is now.

        Where the storage type has a capacity limit (CFS: Standard, ``UpdateCfsFileSystemSizeLimit``) it is
        raised; elsewhere the new capacity is only recorded (each backend says where). Never shrinks: a
        capacity at or below the current one returns the file system unchanged. NOT_FOUND if there is none;
        REFUSED unless it is proven a dedicated volume of this driver (the ownership rule of deletion).
        """
        ...

    # -- snapshots -----------------------------------------------------------------------------------------

    async def ensure_snapshot(self, name: str, fs_id: str) -> Snapshot:
        """Return the snapshot called ``name``, taking one of ``fs_id`` if none exists.

        The same rules as :meth:`ensure_file_system`: found again by name after any interruption; a snapshot
        of that name of another file system is a CONFLICT; only a source proven to be a dedicated volume of
        this driver is snapshotted (REFUSED otherwise: a snapshot is a copy of its data that a restore would
        hand to whoever asks); NOT_FOUND if the source does not exist. A snapshot that failed is deleted and
        UNAVAILABLE raised; one still being taken is returned as it is (``ready`` False).
        """
        ...

    async def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        """The snapshot with this id (ours or not: see ``owner``), or ``None``."""
        ...

    async def list_snapshots(self, source_fs_id: str = "") -> list[Snapshot]:
        """Every snapshot this driver took (of ``source_fs_id`` only, if given)."""
        ...

    async def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete it if it is proven ours; REFUSED otherwise (and it stays). One that does not exist is success."""
        ...

    # -- directory quotas ----------------------------------------------------------------------------------

    async def set_directory_quota(self, fs_id: str, path: str, capacity_gib: int) -> DirectoryQuota:
        """Set (or change) the capacity quota of directory ``path`` (``/cfs/<dir>``, see
        :func:`cfs_csi.volume.quota.quota_path`) to ``capacity_gib`` GiB. Only on a file system proven ours (a
        dedicated volume or a shared class's); REFUSED otherwise, NOT_FOUND if it does not exist."""
        ...

    async def get_directory_quota(self, fs_id: str, path: str) -> DirectoryQuota | None:
        """The quota of ``path`` with its usage, or ``None`` if it has none (or the file system is gone)."""
        ...

    async def delete_directory_quota(self, fs_id: str, path: str) -> None:
        """Remove the quota of ``path`` (same ownership rule as setting it); none there is success."""
        ...
