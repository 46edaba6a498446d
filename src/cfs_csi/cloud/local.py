"""The embedded ``local`` backend: file systems are directories on this machine.

It lets the whole driver run (and be tested) without a cloud account. Metadata is one JSON file per file
system, written atomically, so a restarted controller finds what it created before, just as the Tencent
backend finds it again by name in the cloud.

The metadata holds only what this driver created, so there are no tags: a name says whether a file system is
a shared class's, which DeleteVolume refuses (:mod:`cfs_csi.cloud.ownership`). A metadata file that cannot be
read is skipped with a warning (its directory is left alone), so one bad file never stops the controller or
breaks ListVolumes.
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

from cfs_csi.cloud.base import FileSystem, FileSystemSpec, FileSystemState
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.ownership import deletion_refusal, judge_named
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
        )
        # Registered before the first await, so a concurrent call for the same name sees it. A file system
        # left in CREATING by a crash is resumed here: its metadata was written before its directory.
        self._by_name[fs.name] = self._by_id[fs.id] = fs
        self._creating.add(fs.id)
        try:
            await asyncio.to_thread(self._create_on_disk, fs)
            ready = replace(fs, state=FileSystemState.AVAILABLE)
            await asyncio.to_thread(self._write_meta, ready)
        except OSError as exc:
            # INTERNAL is final: no retry may come to resume it, so what this call made is removed again.
            await asyncio.to_thread(self._delete_on_disk, fs)
            self._forget(fs)
            raise CloudError(ErrorKind.INTERNAL, f"cannot create local file system: {exc.strerror}") from exc
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

    def _create_on_disk(self, fs: FileSystem) -> None:
        self._write_meta(fs)
        self.exports.file_system_dir(fs.host, fs.export_fsid).mkdir(parents=True, exist_ok=True)

    def _delete_on_disk(self, fs: FileSystem) -> None:
        # Metadata goes last: if we crash half-way, a retry still knows which directory to remove.
        shutil.rmtree(self.exports.file_system_dir(fs.host, fs.export_fsid), ignore_errors=True)
        (self._meta_dir / f"{fs.id}.json").unlink(missing_ok=True)
        self._meta_dir.joinpath(f"{fs.id}.tmp").unlink(missing_ok=True)

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
    )
