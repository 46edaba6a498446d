"""Directory quotas (``SetUserQuota`` / ``DeleteUserQuota`` / ``DescribeUserQuota``): the rules, pure.

A quota names a directory of the file system as ``/cfs/<path>`` (the file system's root is ``/cfs``), limits its
capacity in GiB (10 to 10,000,000, the documented range) and/or its number of files (the SDK model's
1,000 to 1,000,000,000). Quota directories may not nest. Only ``UserType`` ``Dir`` is modelled; per-user and
per-group quotas (``Uid``/``Gid``) are refused with ``UnsupportedOperation``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cfs_csi.emulator import errors, params
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.fstree import Usage

PREFIX = "/cfs/"
USER_TYPES = ("Uid", "Gid", "Dir")
MIN_CAPACITY_GIB = 10
MAX_CAPACITY_GIB = 10_000_000
MIN_FILES = 1_000
MAX_FILES = 1_000_000_000
MAX_QUOTAS = 10_000
"""Quotas per file system (our choice: the limit behind ``ProjectQuotasExceeded`` is not documented)."""
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
DEFAULT_LIMIT = 10
GIB = 1024**3

# Status values of the SDK's UserQuota model ("inavailable" is the API's own spelling of "being configured").
CONFIGURING = "inavailable"
AVAILABLE = "available"

_SET = frozenset({"FileSystemId", "UserType", "UserId", "CapacityHardLimit", "FileHardLimit", "DirectoryPath"})
_DELETE = frozenset({"FileSystemId", "UserType", "UserId", "DirectoryPath"})
_DESCRIBE = frozenset({"FileSystemId", "Filters", "Offset", "Limit"})
_FILTERS = frozenset({"UserType", "UserId"})


@dataclass(frozen=True)
class Quota:
    """One directory quota. ``capacity_gib`` / ``file_limit`` are 0 when not set. Times are Unix seconds; the
    quota is being configured (``inavailable``) until ``ready_at``."""

    fs_id: str
    path: str
    capacity_gib: int
    file_limit: int
    created_at: float
    ready_at: float

    @property
    def parts(self) -> tuple[str, ...]:
        return split_path(self.path)

    def status(self, now: float) -> str:
        return AVAILABLE if now >= self.ready_at else CONFIGURING


@dataclass(frozen=True)
class SetQuota:
    fs_id: str
    path: str
    user_id: str
    capacity_gib: int
    file_limit: int


@dataclass(frozen=True)
class QuotaQuery:
    fs_id: str
    filters: tuple[tuple[str, frozenset[str]], ...]
    offset: int
    limit: int

    def matches(self, quota: Quota) -> bool:
        fields = {"UserType": "Dir", "UserId": ""}
        return all(fields[name] in values for name, values in self.filters)


def split_path(path: str) -> tuple[str, ...]:
    """The components of ``/cfs/a/b`` below the file system's root: ``("a", "b")``."""
    return tuple(part for part in path.removeprefix(PREFIX).split("/") if part)


def canonical_path(value: str) -> str:
    """``/cfs/<a>/<b>`` with no trailing slash, or ``InvalidParameterValue.CfsPath``: the root itself, empty or
    dot components, NUL, over-long names and paths are refused."""
    if not value.startswith(PREFIX):
        raise ApiError(errors.CFS_PATH, f"DirectoryPath {value[:64]!r} must start with {PREFIX}")
    if len(value.encode()) > MAX_PATH_BYTES or "\x00" in value:
        raise ApiError(errors.CFS_PATH, "DirectoryPath is too long or holds a NUL")
    parts = value.removeprefix(PREFIX).rstrip("/").split("/")
    if parts == [""]:
        raise ApiError(errors.CFS_PATH, "a directory quota needs a directory below /cfs/, not the root")
    for part in parts:
        if part in ("", ".", "..") or len(part.encode()) > MAX_NAME_BYTES:
            raise ApiError(errors.CFS_PATH, f"DirectoryPath {value[:64]!r} has an invalid component")
    return PREFIX + "/".join(parts)


def nested(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether one of two different directories contains the other."""
    shorter, longer = sorted((a, b), key=len)
    return shorter != longer and longer[: len(shorter)] == shorter


def check_nesting(path: str, existing: Iterable[Quota]) -> None:
    parts = split_path(path)
    for quota in existing:
        if nested(parts, quota.parts):
            raise ApiError(errors.QUOTA_DIR_NESTED, f"{path} and the quota directory {quota.path} contain one another")


def _user_type(request: Mapping[str, object]) -> str:
    user_type = params.required(request, "UserType")
    if user_type not in USER_TYPES:
        raise ApiError(errors.QUOTA_USER_TYPE, f"UserType {user_type[:16]!r} is not one of {USER_TYPES}")
    if user_type != "Dir":
        raise ApiError(errors.UNSUPPORTED_OPERATION, "the emulator models directory quotas (UserType Dir) only")
    return user_type


def _user_id(request: Mapping[str, object]) -> str:
    user_id = params.string(request, "UserId") or ""
    if user_id and not user_id.isdigit():
        raise ApiError(errors.QUOTA_USER_ID, "UserId must be a numeric UID or GID")
    return user_id


def parse_set(request: Mapping[str, object]) -> SetQuota:
    params.check_names(request, _SET)
    fs_id = params.file_system_id(request)
    _user_type(request)
    user_id = _user_id(request)
    path = canonical_path(params.required(request, "DirectoryPath"))
    capacity = params.integer(request, "CapacityHardLimit")
    files = params.integer(request, "FileHardLimit")
    if capacity is None and files is None:
        raise ApiError(errors.QUOTA_CAP_LIMIT, "give CapacityHardLimit, FileHardLimit or both")
    if capacity is not None and not MIN_CAPACITY_GIB <= capacity <= MAX_CAPACITY_GIB:
        message = f"CapacityHardLimit must be {MIN_CAPACITY_GIB} to {MAX_CAPACITY_GIB} GiB, not {capacity}"
        raise ApiError(errors.QUOTA_CAP_LIMIT, message)
    if files is not None and not MIN_FILES <= files <= MAX_FILES:
        raise ApiError(errors.QUOTA_FILE_LIMIT, f"FileHardLimit must be {MIN_FILES} to {MAX_FILES}, not {files}")
    return SetQuota(fs_id, path, user_id, capacity or 0, files or 0)


def parse_delete(request: Mapping[str, object]) -> tuple[str, str]:
    """``(file system id, canonical path)``. ``UserId`` alone (a Uid/Gid quota) never reaches here."""
    params.check_names(request, _DELETE)
    fs_id = params.file_system_id(request)
    _user_type(request)
    _user_id(request)
    raw = params.string(request, "DirectoryPath")
    if not raw:
        raise ApiError(errors.MISSING_PARAMETER, "a directory quota is deleted by its DirectoryPath")
    return fs_id, canonical_path(raw)


def parse_describe(request: Mapping[str, object]) -> QuotaQuery:
    params.check_names(request, _DESCRIBE)
    fs_id = params.file_system_id(request)
    offset, limit = params.paging(request, DEFAULT_LIMIT, None)
    return QuotaQuery(fs_id, params.filters(request, _FILTERS), offset, limit)


def capacity_used_gib(used: Usage) -> int:
    """Whole GiB, rounded up, so that any content shows as at least 1 GiB (the API answers integers)."""
    return math.ceil(used.bytes / GIB)


def user_quota(quota: Quota, used: Usage, now: float) -> dict[str, object]:
    """The SDK's ``UserQuota``."""
    return {
        "UserType": "Dir",
        "UserId": "",
        "CapacityHardLimit": quota.capacity_gib,
        "FileHardLimit": quota.file_limit,
        "FileSystemId": quota.fs_id,
        "CapacityUsed": capacity_used_gib(used),
        "FileUsed": used.entries,
        "DirectoryPath": quota.path,
        "Status": quota.status(now),
    }
