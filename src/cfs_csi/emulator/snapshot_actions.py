"""The snapshot actions (``CreateCfsSnapshot``, ``DeleteCfsSnapshot``, ``DescribeCfsSnapshots``) and restoring a
snapshot into a new file system (``CreateCfsFileSystem`` with ``SnapshotId``).

A snapshot's content is copied when it is taken, under ``<export-root>/.cfs-emulator/snapshots/<id>/``, so
later writes to the file system never change it; the copy goes through ``fstree.copy_tree`` (no symlink
followed, no mount crossed) and is bounded by ``CloudSettings.snapshot_max_bytes`` (beyond it:
``ResourceInsufficient.SnapshotSizeLimitExceeded``). A restore copies the snapshot's content at once into
``.cfs-emulator/restore/<fs id>/``, which becomes the new file system's data directory when it is available,
so deleting the snapshot meanwhile changes nothing. Snapshots outlive their file system.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cfs_csi.emulator import errors, model, snapshots
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.fstree import TreeTooLarge, copy_tree, open_below, remove_tree
from cfs_csi.emulator.snapshots import Snapshot

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cfs_csi.emulator.actions import Action, Cloud, Response

log = logging.getLogger(__name__)

COPY_MAX_ENTRIES = 1_000_000
_PRIVATE = ".cfs-emulator"
_SEQ = "snapshot_seq"


class SnapshotActions:
    def __init__(self, cloud: Cloud) -> None:
        self._cloud = cloud

    def actions(self) -> dict[str, Action]:
        return {
            "CreateCfsSnapshot": self.create_snapshot,
            "DeleteCfsSnapshot": self.delete_snapshot,
            "DescribeCfsSnapshots": self.describe_snapshots,
        }

    # where content lives

    def _private(self, kind: str, name: str) -> Path | None:
        root = self._cloud.settings.export_root
        return None if root is None else root.root / _PRIVATE / kind / name

    def _copy(self, source: Path, parts: tuple[str, ...], dest: Path) -> int:
        """Copy ``source/<parts>`` into the new ``dest``; returns the bytes copied."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = open_below(source, parts)
        try:
            return copy_tree(fd, dest, self._cloud.settings.snapshot_max_bytes, COPY_MAX_ENTRIES).bytes
        finally:
            os.close(fd)

    @staticmethod
    def _discard(path: Path | None) -> None:
        if path is not None and path.exists():
            remove_tree(path, path.lstat().st_dev)

    # life cycle, called from Cloud._advance inside its transaction

    def advance(self, now: float) -> None:
        store = self._cloud.store
        for snap in store.snapshots.pending():
            target = snapshots.due_state(snap, now)
            if target == snapshots.AVAILABLE:
                store.snapshots.put(replace(snap, state=snapshots.AVAILABLE))
            elif target == "":
                store.snapshots.delete(snap.id)
                self._discard(self._private("snapshots", snap.id))

    def snapping(self) -> frozenset[str]:
        """File systems with a snapshot being taken (their ``SnapStatus`` is ``snapping``)."""
        return frozenset(s.fs_id for s in self._cloud.store.snapshots.pending() if s.state == snapshots.CREATING)

    # actions

    def create_snapshot(self, params: Mapping[str, object]) -> Response:
        request = snapshots.parse_create(params)
        cloud = self._cloud
        with cloud.session() as now:
            fs = cloud.existing(request.fs_id)
            if fs.storage_type not in snapshots.SNAPSHOT_TYPES:
                raise ApiError(errors.UNSUPPORTED_OPERATION, f"{fs.storage_type} file systems have no snapshots")
            if fs.state != model.AVAILABLE:
                raise ApiError(errors.INVALID_FS_STATUS, f"{fs.id} is {fs.state}; a snapshot needs it available")
            if cloud.store.snapshots.count_of(fs.id) >= snapshots.MAX_PER_FILE_SYSTEM:
                raise ApiError(errors.LIMIT_EXCEEDED, f"{fs.id} has {snapshots.MAX_PER_FILE_SYSTEM} snapshots")
            snap_id = f"snapcfs-{model.random_name(cloud.rng)}"
            while cloud.store.snapshots.get(snap_id) is not None:
                snap_id = f"snapcfs-{model.random_name(cloud.rng)}"
            size = self._take(fs, snap_id)
            snap = Snapshot(
                id=snap_id,
                seq=cloud.store.next_value(_SEQ),
                name=request.name,
                fs_id=fs.id,
                fs_name=fs.name,
                storage_type=fs.storage_type,
                tags=request.tags,
                size_bytes=size,
                created_at=now,
                ready_at=now + cloud.faults.config.snapshot_delay,
            )
            try:
                cloud.store.snapshots.put(snap)
                self.advance(now)  # a zero delay makes it available at once
            except BaseException:
                self._discard(self._private("snapshots", snap_id))
                raise
        return {"SnapshotId": snap_id}

    def _take(self, fs: model.FileSystem, snap_id: str) -> int:
        source, dest = self._cloud.data_dir(fs), self._private("snapshots", snap_id)
        if source is None or dest is None:
            return 0
        try:
            return self._copy(source, (), dest)
        except TreeTooLarge as exc:
            limit = self._cloud.settings.snapshot_max_bytes
            raise ApiError(errors.SNAPSHOT_SIZE_LIMIT_EXCEEDED, f"{fs.id} holds more than {limit} bytes") from exc

    def delete_snapshot(self, params: Mapping[str, object]) -> Response:
        """Every id must exist (else nothing happens); a creating one cannot be deleted yet; deleting one that is
        already ``deleting`` succeeds."""
        wanted = snapshots.parse_delete(params)
        cloud = self._cloud
        with cloud.session() as now:
            found = [cloud.store.snapshots.get(snap_id) for snap_id in wanted]
            for snap_id, snap in zip(wanted, found, strict=True):
                if snap is None:
                    raise ApiError(errors.SNAPSHOT_NOT_FOUND, f"snapshot {snap_id} does not exist")
                if snap.state == snapshots.CREATING:
                    raise ApiError(errors.INVALID_SNAPSHOT_STATUS, f"{snap_id} is still creating; retry later")
            delay = cloud.faults.config.delete_delay
            for snap in found:
                if snap is not None and snap.state == snapshots.AVAILABLE:
                    cloud.store.snapshots.put(replace(snap, state=snapshots.DELETING, delete_at=now + delay))
            self.advance(now)
        return {"SnapshotId": wanted[0]}

    def describe_snapshots(self, params: Mapping[str, object]) -> Response:
        query = snapshots.parse_describe(params)
        cloud = self._cloud
        with cloud.session() as now:
            found = [s for s in cloud.store.snapshots.all() if query.matches(s)]
        if query.descending:
            found.reverse()
        page = found[query.offset : query.offset + query.limit]
        region = cloud.settings.region
        return {
            "TotalCount": len(found),
            "Snapshots": [snapshots.snapshot_info(s, region, now) for s in page],
            "TotalSize": sum(snapshots.size_mib(s) for s in found),
        }

    # restore

    def stage_restore(self, snapshot_id: str, storage_type: str, fs_id: str) -> None:
        """Check that ``snapshot_id`` can be restored as ``storage_type`` and copy its content for ``fs_id``."""
        snap = self._cloud.store.snapshots.get(snapshot_id)
        if snap is None or snap.state == snapshots.DELETING:
            raise ApiError(errors.SNAPSHOT_NOT_FOUND, f"snapshot {snapshot_id} does not exist")
        if snap.state != snapshots.AVAILABLE:
            raise ApiError(errors.INVALID_SNAPSHOT_STATUS, f"snapshot {snapshot_id} is {snap.state}, not available")
        series = snapshots.SNAPSHOT_TYPES[snap.storage_type]
        if snapshots.SNAPSHOT_TYPES.get(storage_type) != series:
            message = f"a {series} snapshot restores into a {series} file system, not {storage_type}"
            raise ApiError(errors.INVALID_STORAGE_TYPE, message)
        source, dest = self._private("snapshots", snapshot_id), self._private("restore", fs_id)
        if source is not None and dest is not None and source.is_dir():
            self._discard(dest)
            self._copy(source.parent, (source.name,), dest)

    def take_staged(self, fs_id: str, data_dir: Path) -> bool:
        """Move a staged restore into place as ``data_dir`` (which must not exist yet); False if none."""
        staged = self._private("restore", fs_id)
        if staged is None or not staged.is_dir():
            return False
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(data_dir)
        return True

    def drop_staged(self, fs_id: str) -> None:
        self._discard(self._private("restore", fs_id))
