"""The embedded ``local`` backend: file systems are directories on this machine.

It lets the whole driver run (and be tested) without a cloud account. Metadata is one JSON file per file
system, written atomically, so a restarted controller finds what it created before, just as the Tencent
backend finds it again by name in the cloud.

The metadata holds only what this driver created, so there are no tags: a name says whether a file system is
a shared class's, which DeleteVolume refuses (:mod:`cfs_csi.cloud.ownership`). A metadata file that cannot be
read is skipped with a warning (its directory is left alone), so one bad file never stops the controller or
breaks ListVolumes.

Snapshots, expansion and quotas (:mod:`.localsnap`): a snapshot is a copy of the export directory under
``snapshots/<id>/data`` taken without following any link (:mod:`.localtree`); a restore copies it back into the
new file system's directory. A local file system has no capacity limit, so expansion only records the new
capacity in its metadata. A clone copies the source's export directory into the new one (the same copy, never
following a link), so it needs no temporary snapshot. Quotas are recorded (not enforced: a local directory has no
quota) and their usage is measured by walking the directory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import string
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from cfs_csi.cloud.base import DirectoryQuota, FileSystem, FileSystemSpec, FileSystemState, Snapshot
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.localsnap import LocalSnapshots
from cfs_csi.cloud.localtree import copy_directory
from cfs_csi.cloud.ownership import deletion_refusal, judge_named, quota_refusal
from cfs_csi.volume.capacity import stored_capacity
from cfs_csi.volume.exports import ExportRoot
from cfs_csi.volume.names import cut
from cfs_csi.volume.params import NfsVersion, StorageType, VolumeParameters

log = logging.getLogger(__name__)

_ALPHABET = string.ascii_lowercase + string.digits


def _random_id(length: int = 8) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


class LocalFileStorage:
    """File systems under ``state_dir``: metadata in ``filesystems/``, data in ``exports/<host>/<fsid>/``."""

    def __init__(self, state_dir: Path, host: str = "127.0.0.1") -> None:
        self._meta_dir = state_dir / "filesystems"
        self.exports = ExportRoot(state_dir / "exports")
        self._host = host
        self._by_id: dict[str, FileSystem] = {}
        self._creating: set[str] = set()
        self._meta_dir.mkdir(parents=True, exist_ok=True)
        self.exports.root.mkdir(parents=True, exist_ok=True)
        self._snapshots = LocalSnapshots(state_dir)
        for path in sorted(self._meta_dir.glob("*.json")):
            try:
                fs = _decode(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("skipping unreadable file-system record %s: %s", path.name, cut(str(exc)))
                continue
            self._by_id[fs.id] = fs
        self._by_name = {fs.name: fs for fs in self._by_id.values()}

    def with_defaults(self, params: VolumeParameters) -> VolumeParameters:
        return params

    async def ensure_file_system(self, spec: FileSystemSpec) -> FileSystem:
        existing = self._by_name.get(spec.name)
        if existing is not None and existing.state is not FileSystemState.CREATING:
            return existing
        if existing is not None and existing.id in self._creating:
            raise CloudError(ErrorKind.PENDING, f"file system {existing.id} is still being created")
        fs = existing or FileSystem(
            id=f"cfs-{_random_id()}",
            name=spec.name,
            state=FileSystemState.CREATING,
            capacity_bytes=spec.capacity_bytes,
            params=spec.params,
            host=self._host,
            export_fsid=_random_id(),
            owner=judge_named(spec.name),
            source_snapshot=spec.source_snapshot,
            source_volume=spec.source_volume,
        )
        # The content comes from what the record names, so a creation resumed after a crash copies it too.
        try:
            source = self._snapshots.restorable(fs.source_snapshot) if fs.source_snapshot else None
            clone_of = self._export_dir(self._owned_volume(fs.source_volume, "cloned")) if fs.source_volume else None
        except CloudError as exc:
            if existing is not None and not exc.kind.retried:  # a resumed one that can never finish: removed
                await asyncio.to_thread(self._delete_on_disk, existing)
                self._forget(existing)
            raise
        # Registered before the first await, so a concurrent call for the same name sees it. A file system
        # left in CREATING by a crash is resumed here: its metadata was written before its directory.
        self._by_name[fs.name] = self._by_id[fs.id] = fs
        self._creating.add(fs.id)
        try:
            await asyncio.to_thread(self._create_on_disk, fs, source, clone_of)
            ready = replace(fs, state=FileSystemState.AVAILABLE)
            await asyncio.to_thread(self._write_meta, ready)
        except OSError as exc:
            # INTERNAL is final: no retry may come to resume it, so what this call made is removed again.
            await asyncio.to_thread(self._delete_on_disk, fs)
            self._forget(fs)
            raise CloudError(ErrorKind.INTERNAL, f"cannot create local file system: {exc.strerror or exc}") from exc
        finally:
            self._creating.discard(fs.id)
        self._by_name[fs.name] = self._by_id[fs.id] = ready
        return ready

    async def get_file_system(self, fs_id: str) -> FileSystem | None:
        return self._by_id.get(fs_id)

    async def list_file_systems(self) -> list[FileSystem]:
        return list(self._by_id.values())

    async def delete_file_system(self, fs_id: str) -> None:
        fs = self._by_id.get(fs_id)
        if fs is None:
            return
        refusal = deletion_refusal(fs_id, judge_named(fs.name))
        if refusal is not None:
            raise CloudError(ErrorKind.REFUSED, refusal)
        await asyncio.to_thread(self._delete_on_disk, fs)
        self._forget(fs)

    def _forget(self, fs: FileSystem) -> None:
        self._by_id.pop(fs.id, None)
        if self._by_name.get(fs.name) is fs:
            del self._by_name[fs.name]

    async def probe(self) -> None:
        if not os.access(self.exports.root, os.W_OK):
            raise CloudError(ErrorKind.UNAVAILABLE, f"local state directory {self.exports.root} is not writable")

    def _export_dir(self, fs: FileSystem) -> Path:
        return self.exports.file_system_dir(fs.host, fs.export_fsid)

    def _create_on_disk(self, fs: FileSystem, source: Snapshot | None = None, clone_of: Path | None = None) -> None:
        self._write_meta(fs)
        directory = self._export_dir(fs)
        if source is None and clone_of is None:
            directory.mkdir(parents=True, exist_ok=True)
            return
        # A restore or a clone (also one resumed after a crash): the copy goes into a fresh directory and is then
        # renamed, so the volume never shows half a copy. A clone copies the source's directory as it is now,
        # never following a link a pod planted in it (:func:`.localtree.copy_tree`).
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = directory.with_name(directory.name + ".restoring")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        if source is not None:
            self._snapshots.copy_out(source.id, staging)
        elif clone_of is not None:
            usage = copy_directory(clone_of, staging)
            if usage.skipped:
                log.info("clone %s: %d entries not copied (devices, FIFOs, sockets or changed while copied)",
                         fs.id, usage.skipped)  # fmt: skip
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(staging, directory)

    def _delete_on_disk(self, fs: FileSystem) -> None:
        # Metadata goes last: if we crash half-way, a retry still knows which directory to remove.
        directory = self.exports.file_system_dir(fs.host, fs.export_fsid)
        shutil.rmtree(directory.with_name(directory.name + ".restoring"), ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
        self._snapshots.forget_quotas(fs.id)
        (self._meta_dir / f"{fs.id}.json").unlink(missing_ok=True)
        self._meta_dir.joinpath(f"{fs.id}.tmp").unlink(missing_ok=True)

    # -- expansion, snapshots, quotas ----------------------------------------------------------------------

    async def expand_file_system(self, fs_id: str, capacity_bytes: int) -> FileSystem:
        fs = self._owned_volume(fs_id, "expanded")
        if capacity_bytes <= fs.capacity_bytes:
            return fs
        grown = replace(fs, capacity_bytes=capacity_bytes)
        try:
            await asyncio.to_thread(self._write_meta, grown)
        except OSError as exc:
            raise CloudError(ErrorKind.INTERNAL, f"cannot record the new capacity: {exc.strerror}") from exc
        self._by_name[fs.name] = self._by_id[fs.id] = grown
        return grown

    async def ensure_snapshot(self, name: str, fs_id: str) -> Snapshot:
        existing = self._snapshots.by_name(name)
        if existing is not None and existing.source_fs_id != fs_id:
            raise CloudError(
                ErrorKind.CONFLICT,
                f"snapshot {cut(name)!r} exists already, of file system {existing.source_fs_id}, not {cut(fs_id)}",
            )
        if existing is not None and (existing.ready or self._snapshots.busy(existing.id)):
            return existing
        fs = self._owned_volume(fs_id, "snapshotted")
        directory = self.exports.file_system_dir(fs.host, fs.export_fsid)
        # ``existing`` here was left creating by a crash: it is taken again under the same id.
        return await self._snapshots.take(name, fs.id, fs.capacity_bytes, directory, existing)

    async def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        return self._snapshots.get(snapshot_id)

    async def list_snapshots(self, source_fs_id: str = "") -> list[Snapshot]:
        return [s for s in self._snapshots.all() if not source_fs_id or s.source_fs_id == source_fs_id]

    async def delete_snapshot(self, snapshot_id: str) -> None:
        await self._snapshots.delete(snapshot_id)

    async def set_directory_quota(self, fs_id: str, path: str, capacity_gib: int) -> DirectoryQuota:
        fs = self._quota_target(fs_id)
        await asyncio.to_thread(self._snapshots.record_quota, fs.id, path, capacity_gib)
        quota = await self.get_directory_quota(fs_id, path)
        assert quota is not None  # recorded just above
        return quota

    async def get_directory_quota(self, fs_id: str, path: str) -> DirectoryQuota | None:
        fs = self._by_id.get(fs_id)
        if fs is None:
            return None
        directory = self.exports.file_system_dir(fs.host, fs.export_fsid)
        return await asyncio.to_thread(self._snapshots.quota, fs.id, path, directory)

    async def delete_directory_quota(self, fs_id: str, path: str) -> None:
        if fs_id not in self._by_id:
            return
        fs = self._quota_target(fs_id)
        await asyncio.to_thread(self._snapshots.record_quota, fs.id, path, 0)

    def _owned_volume(self, fs_id: str, action: str) -> FileSystem:
        fs = self._by_id.get(fs_id)
        if fs is None:
            raise CloudError(ErrorKind.NOT_FOUND, f"file system {cut(fs_id)} does not exist")
        refusal = deletion_refusal(fs_id, judge_named(fs.name))
        if refusal is not None:
            raise CloudError(ErrorKind.REFUSED, refusal.replace("is not deleted", f"is not {action}", 1))
        if fs.state is not FileSystemState.AVAILABLE:
            raise CloudError(ErrorKind.PENDING, f"file system {fs_id} is {fs.state.value}")
        return fs

    def _quota_target(self, fs_id: str) -> FileSystem:
        fs = self._by_id.get(fs_id)
        if fs is None:
            raise CloudError(ErrorKind.NOT_FOUND, f"file system {cut(fs_id)} does not exist")
        refusal = quota_refusal(fs_id, judge_named(fs.name))
        if refusal is not None:
            raise CloudError(ErrorKind.REFUSED, refusal)
        return fs

    def _write_meta(self, fs: FileSystem) -> None:
        path = self._meta_dir / f"{fs.id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({key: value for key, value in asdict(fs).items() if key != "owner"}))
        os.replace(tmp, path)


def _decode(data: dict[str, Any]) -> FileSystem:
    params = data["params"]
    name = str(data["name"])
    return FileSystem(
        id=str(data["id"]),
        name=name,
        state=FileSystemState(data["state"]),
        capacity_bytes=stored_capacity(data.get("capacity_bytes")),
        params=VolumeParameters(
            vpc_id=params["vpc_id"],
            subnet_id=params["subnet_id"],
            zone=params["zone"],
            storage_type=StorageType(params["storage_type"]),
            pgroup_id=params["pgroup_id"],
            vers=NfsVersion(params["vers"]),
            resource_tags=tuple((k, v) for k, v in params["resource_tags"]),
        ),
        host=data["host"],
        export_fsid=data["export_fsid"],
        owner=judge_named(name),
        source_snapshot=str(data.get("source_snapshot") or ""),
        source_volume=str(data.get("source_volume") or ""),
    )
