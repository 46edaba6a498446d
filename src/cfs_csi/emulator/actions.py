"""The emulated CFS actions over the store: one method per action, each one transaction.

Every call first applies the life-cycle transitions that are due (see ``model.due_transition``), so what a
client reads is always consistent with the clock; a background ticker in the server calls ``advance`` too, so
data directories appear and disappear on their own. Data directories follow ``ExportRoot``, the one mapping
the bind mounter also uses: ``<export-root>/<mount ip>/<fsid>/``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from cfs_csi.emulator import errors, model
from cfs_csi.emulator.capacity_actions import CapacityActions
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.faults import Faults
from cfs_csi.emulator.fstree import remove_tree
from cfs_csi.emulator.model import FileSystem, TokenVerdict
from cfs_csi.emulator.snapshot_actions import SnapshotActions
from cfs_csi.emulator.store import Store, TokenRecord
from cfs_csi.emulator.tables import PGroup
from cfs_csi.emulator.validate import CreateRequest, parse_create, parse_describe, parse_file_system_id
from cfs_csi.emulator.zones import zones_of
from cfs_csi.volume.exports import ExportRoot

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Response = dict[str, object]
Action = Callable[[Mapping[str, object]], Response]

_SEQ = "seq"
_MOUNT_IP = "mount_ip"


@dataclass(frozen=True)
class CloudSettings:
    region: str = "ap-guangzhou"
    client_token_ttl: float = 7200.0
    export_root: ExportRoot | None = None
    snapshot_max_bytes: int = 1024**3
    """The most a snapshot copies; a file system holding more answers SnapshotSizeLimitExceeded."""
    zones: tuple[str, ...] | None = None
    """The served region's zones; None: the table in ``zones.py`` (or any ``<region>-<n>`` if not there)."""
    pgroups: tuple[tuple[str, str], ...] = ()
    """Permission groups (id, name) that exist besides the built-in ones (``PGROUPS``)."""


PGROUPS = (
    ("pgroupbasic", "默认权限组"),
    ("pgroup-lrquouvl", "cfs-csi-example"),
)
"""Permission groups every emulated account has: the default group, and the one the repository's examples
(``deploy/examples``, the chart's values, ``scripts/run-local.sh``) name, so that they work as written."""
_PGROUP_ID = re.compile(r"^pgroup-[a-z0-9]{8}$")
MAX_PGROUP_NAME_BYTES = 64


class Cloud:
    """The emulated service. ``clock`` is wall-clock seconds; tests pass a fake one."""

    def __init__(self, store: Store, settings: CloudSettings, faults: Faults, clock: Clock, rng: random.Random):
        self.store = store
        self.settings = settings
        self._faults = faults
        self._clock = clock
        self._rng = rng
        self._actions: dict[str, Action] = {
            "CreateCfsFileSystem": self.create_file_system,
            "DescribeCfsFileSystems": self.describe_file_systems,
            "DescribeMountTargets": self.describe_mount_targets,
            "DeleteCfsFileSystem": self.delete_file_system,
        }
        self._actions.update(CapacityActions(self).actions())
        self.snapshots = SnapshotActions(self)
        self._actions.update(self.snapshots.actions())
        self._zones = settings.zones if settings.zones is not None else zones_of(settings.region)
        with store.transaction():
            for group_id, name in (*PGROUPS, *settings.pgroups):
                store.pgroups.ensure(PGroup(group_id, name, "", clock()))

    @property
    def actions(self) -> frozenset[str]:
        return frozenset(self._actions)

    def call(self, action: str, params: Mapping[str, object]) -> Response:
        """Run ``action``, unless a scripted fault says it fails; the caller has already checked that it exists."""
        code = self._faults.scripted_error(action)
        if code is not None:
            raise ApiError(code, f"{action} failed with {code} (injected fault)")
        return self._actions[action](params)

    @property
    def faults(self) -> Faults:
        return self._faults

    @property
    def rng(self) -> random.Random:
        return self._rng

    @contextlib.contextmanager
    def session(self) -> Iterator[float]:
        """One transaction with the due transitions applied first; yields the clock's time."""
        with self.store.transaction():
            now = self._clock()
            self._advance(now)
            yield now

    # life cycle

    def advance(self) -> None:
        with self.store.transaction():
            self._advance(self._clock())

    def _advance(self, now: float) -> None:
        for fs in self.store.pending():
            target = model.due_transition(fs, now)
            if target == model.AVAILABLE:
                self.store.update(self._make_available(fs))
            elif target == model.CREATE_FAILED:
                self.snapshots.drop_staged(fs.id)
                self.store.update(replace(fs, state=model.CREATE_FAILED))
            elif target == model.DELETED:
                self._remove_data(fs)
                self.store.update(replace(fs, state=model.DELETED, deleted_at=now))
        self.snapshots.advance(now)

    def _make_available(self, fs: FileSystem) -> FileSystem:
        index = self.store.next_value(_MOUNT_IP)
        if index >= model.MOUNT_IP_CAPACITY:
            # Out of loopback addresses (64000 file systems): the real cloud's "subnet is full".
            log.error("no mount target address left for %s", fs.id)
            return replace(fs, state=model.CREATE_FAILED)
        fsid = model.random_name(self._rng)
        while self.store.fsid_taken(fsid):
            fsid = model.random_name(self._rng)
        ready = replace(fs, state=model.AVAILABLE, ip=model.mount_ip(index), fsid=fsid)
        self._ensure_data(ready)
        return ready

    def ensure_data_directories(self) -> None:
        """At start-up: every available file system has its directory (the export root may be new)."""
        with self.store.transaction():
            self._advance(self._clock())
            for fs in self.store.in_states(model.AVAILABLE):
                self._ensure_data(fs)

    def data_dir(self, fs: FileSystem) -> Path | None:
        """The file system's data directory, or None without an export root or before it is available."""
        root = self.settings.export_root
        if root is None or fs.ip is None or fs.fsid is None:
            return None
        return root.file_system_dir(fs.ip, fs.fsid)

    def _ensure_data(self, fs: FileSystem) -> None:
        """The data directory exists: a restored file system's is the snapshot's staged copy, else empty."""
        path = self.data_dir(fs)
        if path is None or path.is_dir():
            return
        if fs.snapshot_id is None or not self.snapshots.take_staged(fs.id, path):
            path.mkdir(parents=True, exist_ok=True)

    def _remove_data(self, fs: FileSystem) -> None:
        path = self.data_dir(fs)
        if path is None or not path.exists():
            return
        if not remove_tree(path, path.lstat().st_dev):
            log.warning("left parts of %s that are on another file system (mounted?)", path)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # <root>/<ip>/ holds only this file system's directory

    # actions

    def create_file_system(self, params: Mapping[str, object]) -> Response:
        request = parse_create(params, self.settings.region, self._zones)
        with self.store.transaction():
            now = self._clock()
            self._advance(now)
            if self.store.pgroups.get(request.pgroup_id) is None:
                raise ApiError(errors.PGROUP_NOT_FOUND, f"permission group {request.pgroup_id} does not exist")
            if request.client_token is not None:
                self.store.forget_tokens(issued_before=now - self.settings.client_token_ttl)
                record = self.store.get_token(request.client_token)
                earlier = self.store.get(record.fs_id) if record else None
                verdict = model.token_verdict(
                    record.issued_at if record else None,
                    earlier.state if earlier else None,
                    now,
                    self.settings.client_token_ttl,
                )
                if verdict is TokenVerdict.IN_USE:
                    raise ApiError(errors.CLIENT_TOKEN_IN_USE, "a file system with this ClientToken is creating")
                if verdict is TokenVerdict.REUSE and earlier is not None:
                    return model.create_response(earlier)
            fs = self._new_file_system(request, now)
            if request.snapshot_id is not None:
                self.snapshots.stage_restore(request.snapshot_id, request.storage_type, fs.id)
            self.store.insert(fs)
            if request.client_token is not None:
                self.store.put_token(TokenRecord(request.client_token, fs.id, now))
            self._advance(now)  # a zero create delay makes it available at once
            current = self.store.get(fs.id)
            return model.create_response(current or fs)

    def _new_file_system(self, request: CreateRequest, now: float) -> FileSystem:
        fs_id = f"cfs-{model.random_name(self._rng)}"
        while self.store.id_taken(fs_id):
            fs_id = f"cfs-{model.random_name(self._rng)}"
        return FileSystem(
            id=fs_id,
            seq=self.store.next_value(_SEQ),
            name=request.name,
            zone=request.zone,
            net_interface=request.net_interface,
            vpc_id=request.vpc_id,
            subnet_id=request.subnet_id,
            pgroup_id=request.pgroup_id,
            storage_type=request.storage_type,
            protocol=request.protocol,
            tags=request.tags,
            encrypted=request.encrypted,
            capacity_gib=request.capacity_gib or model.default_capacity_gib(request.storage_type),
            created_at=now,
            ready_at=now + self._faults.config.create_delay,
            outcome=self._faults.for_new_file_system(),
            snapshot_id=request.snapshot_id,
        )

    def describe_file_systems(self, params: Mapping[str, object]) -> Response:
        request = parse_describe(params)
        with self.store.transaction():
            self._advance(self._clock())
            candidates = self.store.visible(fs_id=request.file_system_id, name=request.creation_token)
            names = self.store.pgroups.names()
            found = [fs for fs in candidates if request.matches(fs, names)]
            snapping = self.snapshots.snapping()
        page = found[request.offset : request.offset + request.limit]
        infos = [model.file_system_info(fs, names.get(fs.pgroup_id), fs.id in snapping) for fs in page]
        return {"FileSystems": infos, "TotalCount": len(found)}

    def describe_mount_targets(self, params: Mapping[str, object]) -> Response:
        fs_id = parse_file_system_id(params)
        with self.store.transaction():
            self._advance(self._clock())
            fs = self.existing(fs_id)
        targets = model.mount_targets(fs)
        return {"MountTargets": targets, "NumberOfMountTargets": len(targets)}

    def delete_file_system(self, params: Mapping[str, object]) -> Response:
        fs_id = parse_file_system_id(params)
        with self.store.transaction():
            now = self._clock()
            self._advance(now)
            fs = self.existing(fs_id)
            if fs.state == model.CREATING:
                raise ApiError(errors.INVALID_FS_STATUS, f"{fs_id} is still creating and cannot be deleted yet")
            if fs.state != model.DELETING:
                self.store.update(replace(fs, state=model.DELETING, delete_at=now + self._faults.config.delete_delay))
                # The file system is going away: a retried create with its token makes a new one.
                self.store.forget_tokens(fs_id=fs_id)
                self.store.quotas.delete(fs_id)
                self._advance(now)
        return {}

    def existing(self, fs_id: str) -> FileSystem:
        fs = self.store.get(fs_id)
        if fs is None or not fs.visible:
            raise ApiError(errors.FILE_SYSTEM_NOT_FOUND, f"file system {fs_id} does not exist")
        return fs

    # admin

    def add_pgroup(self, group_id: str, name: str) -> dict[str, object]:
        """Create a permission group (``POST /admin/pgroups``); ValueError for a bad id or name."""
        if not _PGROUP_ID.match(group_id):
            raise ValueError("PGroupId must be pgroup- and 8 lowercase letters or digits")
        if not name or len(name.encode()) > MAX_PGROUP_NAME_BYTES:
            raise ValueError(f"Name must be 1 to {MAX_PGROUP_NAME_BYTES} bytes")
        with self.store.transaction():
            created = self.store.pgroups.ensure(PGroup(group_id, name, "", self._clock()))
            group = self.store.pgroups.get(group_id)
        assert group is not None
        return {"PGroupId": group.id, "Name": group.name, "Created": created}

    def admin_pgroups(self) -> dict[str, object]:
        with self.store.transaction():
            groups = self.store.pgroups.all()
        return {"PGroups": [{"PGroupId": g.id, "Name": g.name} for g in groups]}

    def admin_snapshot(self) -> dict[str, object]:
        with self.store.transaction():
            self._advance(self._clock())
            rows = self.store.all()
            deleted = self.store.count_deleted()
        return {"FileSystems": [model.admin_view(fs) for fs in rows], "TotalCount": len(rows), "DeletedCount": deleted}
