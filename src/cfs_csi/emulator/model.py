"""The emulated file system, its life cycle and its API views, all pure.

A file system is ``creating`` until ``ready_at``, then becomes what was decided at creation (``available`` or
``create_failed``; a ``stuck`` one never leaves ``creating``). Deleting one makes it ``deleting`` until
``delete_at`` and then ``deleted``: the row is kept (the admin API counts it) but the API no longer shows it.
Transitions are evaluated lazily from the clock, so the rules live here and the store only records them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from cfs_csi.emulator.faults import Outcome

CREATING = "creating"
AVAILABLE = "available"
CREATE_FAILED = "create_failed"
DELETING = "deleting"
DELETED = "deleted"

APP_ID = 1250000000
"""The account id shown in ``AppId``; any fixed number does."""

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_HOSTS_PER_BLOCK = 250
MOUNT_IP_CAPACITY = _HOSTS_PER_BLOCK * 256
"""Mount targets are ``127.16.<n // 250>.<n % 250 + 2>``: loopback, so no private-range address ever appears."""

# Placeholder capacity (GiB) per storage type for ``Capacity``; the driver must not rely on these numbers.
_CAPACITY_GIB = {"SD": 163840, "HP": 32768, "TB": 40960, "TP": 20480, "THP": 163840}
_BEIJING = timezone(timedelta(hours=8))
# Numeric zone ids are <region number> * 100000 + <zone number> in the real API.
_REGION_NUMBERS = {
    "ap-guangzhou": 1,
    "ap-shanghai": 2,
    "ap-hongkong": 3,
    "ap-beijing": 8,
    "ap-singapore": 9,
    "ap-chengdu": 16,
    "ap-chongqing": 19,
}


@dataclass(frozen=True)
class Tag:
    key: str
    value: str


@dataclass(frozen=True)
class FileSystem:
    """One row of the store. Times are Unix seconds (wall clock, so they survive a restart)."""

    id: str
    seq: int
    name: str
    zone: str
    net_interface: str
    vpc_id: str
    subnet_id: str
    pgroup_id: str
    storage_type: str
    protocol: str
    tags: tuple[Tag, ...]
    encrypted: bool
    capacity_gib: int
    created_at: float
    ready_at: float
    outcome: Outcome
    state: str = CREATING
    ip: str | None = None
    fsid: str | None = None
    delete_at: float | None = None
    deleted_at: float | None = None
    size_limit_gib: int = 0
    """``UpdateCfsFileSystemSizeLimit``'s limit in GiB; 0 is none."""
    snapshot_id: str | None = None
    """The snapshot this file system was restored from, if any."""

    @property
    def visible(self) -> bool:
        return self.state != DELETED

    @property
    def has_mount_target(self) -> bool:
        return self.ip is not None and self.fsid is not None and self.state in (AVAILABLE, DELETING)


def random_name(rng: random.Random, length: int = 8) -> str:
    """Eight lowercase letters and digits: the shape of both ``cfs-xxxxxxxx`` ids and FSIDs."""
    return "".join(rng.choice(_ALNUM) for _ in range(length))


def mount_ip(index: int) -> str:
    if not 0 <= index < MOUNT_IP_CAPACITY:
        raise ValueError(f"mount target index {index} is out of range")
    return f"127.16.{index // _HOSTS_PER_BLOCK}.{index % _HOSTS_PER_BLOCK + 2}"


def default_capacity_gib(storage_type: str) -> int:
    return _CAPACITY_GIB.get(storage_type, _CAPACITY_GIB["SD"])


def due_transition(fs: FileSystem, now: float) -> str | None:
    """The state ``fs`` must move to at ``now``, or None if it stays as it is."""
    if fs.state == CREATING and fs.outcome is not Outcome.STUCK and now >= fs.ready_at:
        return AVAILABLE if fs.outcome is Outcome.AVAILABLE else CREATE_FAILED
    if fs.state == DELETING and fs.delete_at is not None and now >= fs.delete_at:
        return DELETED
    return None


class TokenVerdict(StrEnum):
    """What a ``CreateCfsFileSystem`` with an already seen ``ClientToken`` does."""

    NEW = "new"
    """unknown, expired, or its file system is gone: create a new file system"""
    IN_USE = "in_use"
    """its file system is still creating: ``FailedOperation.ClientTokenInUse``"""
    REUSE = "reuse"
    """its file system has left ``creating``: answer with that file system again"""


def token_verdict(issued_at: float | None, fs_state: str | None, now: float, ttl: float) -> TokenVerdict:
    if issued_at is None or now - issued_at >= ttl or fs_state is None or fs_state == DELETED:
        return TokenVerdict.NEW
    if fs_state == CREATING:
        return TokenVerdict.IN_USE
    return TokenVerdict.REUSE


def api_time(ts: float) -> str:
    """``2024-05-01 12:00:00`` in Beijing time, the format and zone of the real ``CreationTime``."""
    return datetime.fromtimestamp(ts, _BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def zone_id(zone: str) -> int:
    region, _, number = zone.rpartition("-")
    return _REGION_NUMBERS.get(region, 0) * 100000 + int(number) if number.isdigit() else 0


def _tags(fs: FileSystem) -> list[dict[str, object]]:
    return [{"TagKey": t.key, "TagValue": t.value} for t in fs.tags]


#: The fields of ``FileSystemInfo`` that ``CreateCfsFileSystemResponse`` repeats.
_CREATE_FIELDS = ("CreationTime", "CreationToken", "FileSystemId", "LifeCycleState", "SizeByte", "ZoneId", "FsName",
                  "Encrypted")  # fmt: skip


def create_response(fs: FileSystem) -> dict[str, object]:
    """``CreateCfsFileSystemResponse`` without ``RequestId``."""
    info = file_system_info(fs)
    return {key: info[key] for key in _CREATE_FIELDS}


def file_system_info(fs: FileSystem, pgroup_name: str | None = None, snapping: bool = False) -> dict[str, object]:
    """``FileSystemInfo`` as ``DescribeCfsFileSystems`` lists it; ``snapping`` while a snapshot is being taken.
    ``Version`` follows ``CfsVersion``'s documentation: v1.5 for general types, v4.0 for Turbo and throughput."""
    turbo_like = fs.storage_type in ("TB", "TP", "THP")
    return {
        "CreationTime": api_time(fs.created_at),
        "CreationToken": fs.name,
        "FileSystemId": fs.id,
        "LifeCycleState": fs.state,
        "SizeByte": 0,
        "SizeLimit": fs.size_limit_gib,
        "ZoneId": zone_id(fs.zone),
        "Zone": fs.zone,
        "Protocol": fs.protocol,
        "StorageType": fs.storage_type,
        "StorageResourcePkg": "",
        "BandwidthResourcePkg": "",
        "PGroup": {"PGroupId": fs.pgroup_id, "Name": pgroup_name if pgroup_name is not None else fs.pgroup_id},
        "FsName": fs.name,
        "Encrypted": fs.encrypted,
        "KmsKeyId": "",
        "AppId": APP_ID,
        "BandwidthLimit": 100.0,
        "AutoSnapshotPolicyId": "",
        "SnapStatus": "snapping" if snapping else "normal",
        "Capacity": fs.size_limit_gib or fs.capacity_gib,
        "Tags": _tags(fs),
        "TieringState": "NotAvailable",
        "TieringDetail": {"TieringSizeInBytes": 0, "SecondaryTieringSizeInBytes": 0},
        "AutoScaleUpRule": {"Status": "close", "ScaleThreshold": 0, "TargetThreshold": 0},
        "Version": "v4.0" if turbo_like else "v1.5",
        "ExstraPerformanceInfo": [],
        "MetaType": "basic" if fs.storage_type in ("TB", "TP") else "",
        "Scenario": "",
        "FullDeleteCapacityUsage": 0.0,
        "FullDeleteMinTtl": 0,
        "ExpireDeleteTtl": 0,
    }


def mount_targets(fs: FileSystem) -> list[dict[str, object]]:
    """``MountInfo`` entries: none until the file system is available (and none if it failed)."""
    if not fs.has_mount_target:
        return []
    return [
        {
            "FileSystemId": fs.id,
            "MountTargetId": fs.id,
            "IpAddress": fs.ip,
            "FSID": fs.fsid,
            "LifeCycleState": AVAILABLE if fs.state == AVAILABLE else DELETING,
            "NetworkInterface": fs.net_interface,
            "VpcId": fs.vpc_id,
            "VpcName": "",
            "SubnetId": fs.subnet_id,
            "SubnetName": "",
            "CcnID": "",
            "CidrBlock": "",
            "ServerList": [],
            "ServerListTruncated": False,
        }
    ]


def admin_view(fs: FileSystem) -> dict[str, object]:
    """``GET /admin/filesystems``: the API's ``FileSystemInfo`` names plus the emulator's own columns, for
    every row including deleted ones (``LifeCycleState`` ``deleted``, a state the API never shows)."""
    return {
        **file_system_info(fs),
        "VpcId": fs.vpc_id,
        "SubnetId": fs.subnet_id,
        "IpAddress": fs.ip,
        "FSID": fs.fsid,
        "Outcome": fs.outcome.value,
        "CreatedAt": fs.created_at,
        "ReadyAt": fs.ready_at,
        "DeleteAt": fs.delete_at,
        "DeletedAt": fs.deleted_at,
    }
