"""File-system snapshots (``CreateCfsSnapshot`` / ``DeleteCfsSnapshot`` / ``DescribeCfsSnapshots``): the rules and
the ``SnapshotInfo`` view, pure.

A snapshot is ``creating`` until ``ready_at`` and then ``available``; deleting one makes it ``deleting`` until
``delete_at``, then it is gone. Its content is copied when it is taken (see ``snapshot_actions``), so later
writes to the file system never change it. General (SD, HP) and Turbo (TB, TP) file systems have snapshots;
the throughput type THP has none in the emulator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cfs_csi.emulator import errors, params
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.model import APP_ID, Tag, api_time

CREATING = "creating"
AVAILABLE = "available"
DELETING = "deleting"

SNAPSHOT_TYPES = {"SD": "general", "HP": "general", "TB": "turbo", "TP": "turbo"}
"""Storage types that have snapshots, and the ``SnapshotType`` of theirs."""
MAX_PER_FILE_SYSTEM = 100
"""The documented limit of snapshots per file system."""
MAX_NAME_CHARS = 64
MAX_TAGS = 50
DEFAULT_LIMIT = 20
"""The SDK's model documents ``Limit`` as "default 20"."""
MAX_LIMIT = 100
MAX_DELETE_IDS = 100
MAX_TAG_KEY_FILTERS = 6
MAX_TAG_VALUE_FILTERS = 10
MIB = 1024 * 1024

_NAME = re.compile(r"^[A-Za-z0-9_\-\u4e00-\u9fff]*$")
_CREATE = frozenset({"FileSystemId", "SnapshotName", "ResourceTags"})
_DELETE = frozenset({"SnapshotId", "SnapshotIds"})
_DESCRIBE = frozenset({"FileSystemId", "SnapshotId", "Offset", "Limit", "Filters", "OrderField", "Order"})
_FILTERS = frozenset({"SnapshotId", "SnapshotName", "FileSystemId", "FsName", "Status", "tag-key"})
_TAG_PREFIX = "tag:"


@dataclass(frozen=True)
class Snapshot:
    """One row of the ``snapshots`` table; ``size_bytes`` is what was copied. Times are Unix seconds."""

    id: str
    seq: int
    name: str
    fs_id: str
    fs_name: str
    storage_type: str
    tags: tuple[Tag, ...]
    size_bytes: int
    created_at: float
    ready_at: float
    state: str = CREATING
    delete_at: float | None = None


def due_state(snap: Snapshot, now: float) -> str | None:
    """The state ``snap`` moves to at ``now`` (``""`` meaning gone), or None if it stays."""
    if snap.state == CREATING and now >= snap.ready_at:
        return AVAILABLE
    if snap.state == DELETING and snap.delete_at is not None and now >= snap.delete_at:
        return ""
    return None


@dataclass(frozen=True)
class CreateSnapshot:
    fs_id: str
    name: str
    tags: tuple[Tag, ...]


def parse_create(request: Mapping[str, object]) -> CreateSnapshot:
    params.check_names(request, _CREATE)
    fs_id = params.file_system_id(request)
    name = params.string(request, "SnapshotName") or ""
    if len(name) > MAX_NAME_CHARS:
        raise ApiError(errors.SNAPSHOT_NAME_LIMIT_EXCEEDED, f"SnapshotName has {len(name)} characters; at most 64")
    if not _NAME.match(name):
        raise ApiError(errors.INVALID_SNAPSHOT_NAME, "SnapshotName may hold letters, digits, Chinese, _ and - only")
    raw_tags = request.get("ResourceTags")
    tags = params.tag_list(raw_tags, "ResourceTags") if raw_tags is not None else ()
    if len(tags) > MAX_TAGS:
        raise ApiError(errors.TAG_LIMIT_EXCEEDED, f"at most {MAX_TAGS} tags per snapshot")
    return CreateSnapshot(fs_id, name, tags)


def parse_delete(request: Mapping[str, object]) -> tuple[str, ...]:
    """The ids to delete, in order and without repeats: ``SnapshotId`` and/or ``SnapshotIds``."""
    params.check_names(request, _DELETE)
    ids = [params.string(request, "SnapshotId") or "", *(params.string_list(request, "SnapshotIds") or [])]
    wanted = tuple(dict.fromkeys(i for i in ids if i))
    if not wanted:
        raise ApiError(errors.MISSING_PARAMETER, "give SnapshotId or SnapshotIds")
    if len(wanted) > MAX_DELETE_IDS:
        raise ApiError(errors.INVALID_PARAMETER_VALUE, f"at most {MAX_DELETE_IDS} snapshots per call")
    return wanted


@dataclass(frozen=True)
class SnapshotQuery:
    fs_id: str | None
    snapshot_id: str | None
    filters: tuple[tuple[str, frozenset[str]], ...]
    offset: int
    limit: int
    descending: bool

    def matches(self, snap: Snapshot) -> bool:
        if self.fs_id is not None and snap.fs_id != self.fs_id:
            return False
        if self.snapshot_id is not None and snap.id != self.snapshot_id:
            return False
        fields = {
            "SnapshotId": snap.id,
            "SnapshotName": snap.name,
            "FileSystemId": snap.fs_id,
            "FsName": snap.fs_name,
            "Status": snap.state,
        }
        tags = {t.key: t.value for t in snap.tags}
        for name, values in self.filters:
            if name == "tag-key":
                if not values & tags.keys():
                    return False
            elif name.startswith(_TAG_PREFIX):
                if tags.get(name.removeprefix(_TAG_PREFIX)) not in values:
                    return False
            elif fields[name] not in values:
                return False
        return True


def parse_describe(request: Mapping[str, object]) -> SnapshotQuery:
    params.check_names(request, _DESCRIBE)
    offset, limit = params.paging(request, DEFAULT_LIMIT, MAX_LIMIT)
    filters = params.filters(request, _FILTERS, prefix=_TAG_PREFIX)
    tag_filters = [values for name, values in filters if name.startswith(_TAG_PREFIX)]
    keys = [values for name, values in filters if name == "tag-key"]
    if len(tag_filters) > MAX_TAG_KEY_FILTERS or any(len(v) > MAX_TAG_KEY_FILTERS for v in keys):
        raise ApiError(errors.TAG_KEY_FILTER_LIMIT_EXCEEDED, f"at most {MAX_TAG_KEY_FILTERS} tag keys per query")
    if any(len(v) > MAX_TAG_VALUE_FILTERS for v in tag_filters):
        raise ApiError(errors.TAG_VALUE_FILTER_LIMIT_EXCEEDED, f"at most {MAX_TAG_VALUE_FILTERS} values per tag")
    order_field = params.string(request, "OrderField") or "CreationTime"
    if order_field != "CreationTime":
        raise ApiError(errors.INVALID_PARAMETER_VALUE, "OrderField can only be CreationTime")
    order = (params.string(request, "Order") or "ASC").upper()
    if order not in ("ASC", "DESC"):
        raise ApiError(errors.INVALID_PARAMETER_VALUE, "Order is ASC or DESC")
    return SnapshotQuery(
        fs_id=params.string(request, "FileSystemId") or None,
        snapshot_id=params.string(request, "SnapshotId") or None,
        filters=filters,
        offset=offset,
        limit=limit,
        descending=order == "DESC",
    )


def size_mib(snap: Snapshot) -> int:
    return math.ceil(snap.size_bytes / MIB)


def percent(snap: Snapshot, now: float) -> int:
    """Progress 1 to 100: 100 once available, otherwise the share of the creation delay that has passed."""
    if snap.state != CREATING:
        return 100
    span = snap.ready_at - snap.created_at
    done = (now - snap.created_at) / span if span > 0 else 1.0
    return max(1, min(99, int(done * 100)))


def snapshot_info(snap: Snapshot, region: str, now: float) -> dict[str, object]:
    """The SDK's ``SnapshotInfo``."""
    return {
        "CreationTime": api_time(snap.created_at),
        "SnapshotName": snap.name,
        "SnapshotId": snap.id,
        "Status": snap.state,
        "RegionName": region,
        "FileSystemId": snap.fs_id,
        "Size": size_mib(snap),
        "AliveDay": 0,
        "Percent": percent(snap, now),
        "AppId": APP_ID,
        "DeleteTime": "",
        "FsName": snap.fs_name,
        "Tags": [{"TagKey": t.key, "TagValue": t.value} for t in snap.tags],
        "SnapshotType": SNAPSHOT_TYPES.get(snap.storage_type, "general"),
        "SnapshotTime": api_time(snap.created_at),
    }
