"""Snapshots and directory quotas of the ``local`` backend (records as JSON files, data as copies).

A snapshot is ``snapshots/<id>.json`` plus a copy of the file system's export directory in ``snapshots/<id>/``,
made by :func:`.localtree.copy_tree` (never following a link a pod planted). The record is written in state
``creating`` before the copy starts, so after a crash the name finds it again and the next call copies afresh;
it turns ``available`` only once the copy is complete. Everything recorded here was made by this driver, so
ownership is by record (there are no tags to check), like the backend's file systems.

Quotas are recorded per file system in ``quotas/<fs id>.json`` (path -> GiB); a local directory cannot enforce
them, so only their usage is real: measured by walking the directory from a handle, without following links.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import string
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from cfs_csi import safefs
from cfs_csi.cloud.base import DirectoryQuota, Snapshot, SnapshotState
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.localtree import copy_tree, measure
from cfs_csi.cloud.ownership import Origin, Ownership
from cfs_csi.volume.capacity import stored_capacity
from cfs_csi.volume.names import cut
from cfs_csi.volume.quota import GIB, directory_of

log = logging.getLogger(__name__)

_OURS = Ownership(Origin.SNAPSHOT)
_ALPHABET = string.ascii_lowercase + string.digits
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalSnapshots:
    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir / "snapshots"
        self._quota_dir = state_dir / "quotas"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._quota_dir.mkdir(parents=True, exist_ok=True)
        self._by_id: dict[str, Snapshot] = {}
        self._busy: set[str] = set()
        for path in sorted(self._dir.glob("*.json")):
            try:
                snapshot = _decode(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("skipping unreadable snapshot record %s: %s", path.name, cut(str(exc)))
                continue
            self._by_id[snapshot.id] = snapshot

    # -- snapshots -----------------------------------------------------------------------------------------

    def by_name(self, name: str) -> Snapshot | None:
        return next((s for s in self._by_id.values() if s.name == name), None)

    def busy(self, snapshot_id: str) -> bool:
        return snapshot_id in self._busy

    def get(self, snapshot_id: str) -> Snapshot | None:
        return self._by_id.get(snapshot_id)

    def all(self) -> list[Snapshot]:
        return list(self._by_id.values())

    async def take(
        self, name: str, fs_id: str, capacity_bytes: int, export_dir: Path, resumed: Snapshot | None
    ) -> Snapshot:
        """Copy ``export_dir`` into a new snapshot (or again into ``resumed``, left ``creating`` by a crash)."""
        snapshot = resumed or Snapshot(
            id=f"snapcfs-{''.join(secrets.choice(_ALPHABET) for _ in range(8))}",
            name=name,
            source_fs_id=fs_id,
            state=SnapshotState.CREATING,
            size_bytes=capacity_bytes,
            created_at=time.time(),
            owner=_OURS,
        )
        self._by_id[snapshot.id] = snapshot  # before the first await: a concurrent call finds it
        self._busy.add(snapshot.id)
        try:
            await asyncio.to_thread(self._copy_in, snapshot, export_dir)
            ready = replace(snapshot, state=SnapshotState.AVAILABLE)
            await asyncio.to_thread(self._write, ready)
        except OSError as exc:
            # Final: nothing of a failed snapshot stays (no retry may come to resume it).
            await asyncio.to_thread(self._remove, snapshot.id)
            self._by_id.pop(snapshot.id, None)
            raise CloudError(ErrorKind.INTERNAL, f"cannot take local snapshot: {exc.strerror or exc}") from exc
        finally:
            self._busy.discard(snapshot.id)
        self._by_id[snapshot.id] = ready
        log.info("took snapshot %s (%s) of %s", ready.id, cut(name), fs_id)
        return ready

    def restorable(self, snapshot_id: str) -> Snapshot:
        """The snapshot a restore may copy from: NOT_FOUND if there is none, PENDING while it is being taken."""
        snapshot = self._by_id.get(snapshot_id)
        if snapshot is None:
            raise CloudError(ErrorKind.NOT_FOUND, f"snapshot {cut(snapshot_id)} does not exist")
        if not snapshot.ready or snapshot.id in self._busy:
            raise CloudError(ErrorKind.PENDING, f"snapshot {snapshot_id} is {snapshot.state.value}")
        return snapshot

    def copy_out(self, snapshot_id: str, destination: Path) -> None:
        """Copy a snapshot's data into the empty directory ``destination`` (the caller's own new directory)."""
        src = os.open(self._data(snapshot_id), _DIR_FLAGS)
        try:
            dst = os.open(destination, _DIR_FLAGS)
            try:
                copy_tree(src, dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    async def delete(self, snapshot_id: str) -> None:
        if snapshot_id not in self._by_id:
            return
        if snapshot_id in self._busy:
            raise CloudError(ErrorKind.PENDING, f"snapshot {snapshot_id} is being taken or restored")
        await asyncio.to_thread(self._remove, snapshot_id)
        self._by_id.pop(snapshot_id, None)
        log.info("deleted snapshot %s", snapshot_id)

    def _data(self, snapshot_id: str) -> Path:
        return self._dir / snapshot_id

    def _copy_in(self, snapshot: Snapshot, export_dir: Path) -> None:
        self._write(snapshot)
        data = self._data(snapshot.id)
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(mode=0o700)
        src = os.open(export_dir, _DIR_FLAGS)
        try:
            dst = os.open(data, _DIR_FLAGS)
            try:
                usage = copy_tree(src, dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        if usage.skipped:
            log.info("snapshot %s: %d entries not copied (devices, FIFOs, sockets or changed while copied)",
                     snapshot.id, usage.skipped)  # fmt: skip

    def _remove(self, snapshot_id: str) -> None:
        # The record goes last: after a crash half-way the id still names the data to remove.
        shutil.rmtree(self._data(snapshot_id), ignore_errors=True)
        (self._dir / f"{snapshot_id}.json").unlink(missing_ok=True)

    def _write(self, snapshot: Snapshot) -> None:
        path = self._dir / f"{snapshot.id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in asdict(snapshot).items() if k != "owner"}))
        os.replace(tmp, path)

    # -- quotas --------------------------------------------------------------------------------------------

    def record_quota(self, fs_id: str, path: str, capacity_gib: int) -> None:
        """Record (``capacity_gib`` > 0) or remove (0) the quota of ``path``."""
        directory_of(path)  # a path the API would refuse is refused here too
        quotas = self._quotas(fs_id)
        if capacity_gib > 0:
            quotas[path] = capacity_gib
        else:
            quotas.pop(path, None)
        file = self._quota_dir / f"{fs_id}.json"
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(quotas))
        os.replace(tmp, file)

    def quota(self, fs_id: str, path: str, export_dir: Path) -> DirectoryQuota | None:
        gib = self._quotas(fs_id).get(path)
        if not gib:
            return None
        used, files = 0, 0
        try:
            root = os.open(export_dir, _DIR_FLAGS)
        except FileNotFoundError:
            root = -1
        if root >= 0:
            try:
                handle = safefs.open_dir(root, directory_of(path))
            except (FileNotFoundError, safefs.UnsafePath):
                handle = -1  # no directory (yet), or a link in its place: nothing of it is counted
            finally:
                os.close(root)
            if handle >= 0:
                try:
                    usage = measure(handle)
                finally:
                    os.close(handle)
                used, files = usage.bytes, usage.files
        return DirectoryQuota(fs_id=fs_id, path=path, capacity_bytes=gib * GIB, used_bytes=used, files_used=files)

    def forget_quotas(self, fs_id: str) -> None:
        (self._quota_dir / f"{fs_id}.json").unlink(missing_ok=True)

    def _quotas(self, fs_id: str) -> dict[str, int]:
        try:
            data = json.loads((self._quota_dir / f"{fs_id}.json").read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("unreadable quota record of %s: %s", fs_id, cut(str(exc)))
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool) and v > 0}


def _decode(data: dict[str, Any]) -> Snapshot:
    return Snapshot(
        id=str(data["id"]),
        name=str(data["name"]),
        source_fs_id=str(data["source_fs_id"]),
        state=SnapshotState(data["state"]),
        size_bytes=stored_capacity(data.get("size_bytes")),
        created_at=float(data["created_at"]),
        owner=_OURS,
    )
