"""Parameter validation for each action, pure: a JSON object in, a typed request or an ``ApiError`` out.

The checks and their codes follow the CFS API; where the real service is stricter or looser in ways we cannot
observe, we choose the stricter reading and say so in ``docs/emulator.md``. Parameters the SDK can send but the
emulator does not model (``MountIP``, ``SnapshotId``, ...) are refused with ``UnsupportedOperation`` rather than
silently ignored; names the SDK cannot send are ``UnknownParameter``, as at the real gateway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cfs_csi.emulator import errors
from cfs_csi.emulator import params as params_mod
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.model import FileSystem, Tag

MAX_NAME_BYTES = 64
MAX_CLIENT_TOKEN_CHARS = 64
MAX_TAGS = 50
DEFAULT_LIMIT = 10
"""The SDK's model documents ``Limit`` as "default 10"."""
MAX_LIMIT = 100
STORAGE_TYPES = ("SD", "HP", "TB", "TP", "THP")
BASIC_PGROUP = "pgroupbasic"

_ZONE = re.compile(r"^([a-z]+(?:-[a-z]+)+)-([1-9][0-9]*)$")
_VPC = re.compile(r"^vpc-[a-z0-9]{8}$")
_SUBNET = re.compile(r"^subnet-[a-z0-9]{8}$")
_PGROUP = re.compile(r"^pgroup-[a-z0-9]{8}$")

_CREATE_EMULATED = frozenset(
    {
        "Zone", "NetInterface", "PGroupId", "Protocol", "StorageType", "VpcId", "SubnetId", "FsName",
        "ResourceTags", "ClientToken", "Encrypted", "Capacity", "SnapshotId",
    }
)  # fmt: skip
_CREATE_NOT_EMULATED = frozenset(
    {
        "MountIP", "CcnId", "CidrBlock", "AutoSnapshotPolicyId", "EnableAutoScaleUp", "CfsVersion",
        "MetaType", "Scenario",
    }
)  # fmt: skip
_DESCRIBE_PARAMS = frozenset(
    {"FileSystemId", "VpcId", "SubnetId", "Offset", "Limit", "CreationToken", "Filters", "Tags"}
)
_FILTER_NAMES = frozenset(
    {"Protocol", "StorageType", "LifeCycleState", "Zone", "IpAddress", "PGroupId", "PGroupName", "Scenario"}
)
_ID_PARAMS = frozenset({"FileSystemId"})


@dataclass(frozen=True)
class CreateRequest:
    zone: str
    net_interface: str
    pgroup_id: str
    protocol: str
    storage_type: str
    vpc_id: str
    subnet_id: str
    name: str
    tags: tuple[Tag, ...]
    client_token: str | None
    encrypted: bool
    capacity_gib: int | None
    snapshot_id: str | None = None


@dataclass(frozen=True)
class DescribeRequest:
    file_system_id: str | None = None
    vpc_id: str | None = None
    subnet_id: str | None = None
    creation_token: str | None = None
    filters: tuple[tuple[str, frozenset[str]], ...] = ()
    tags: tuple[Tag, ...] = ()
    offset: int = 0
    limit: int = DEFAULT_LIMIT

    def matches(self, fs: FileSystem, pgroup_names: Mapping[str, str] | None = None) -> bool:
        """Whether ``fs`` passes every filter given (deleted ones never do); ``pgroup_names``: id -> name."""
        if not fs.visible:
            return False
        exact = (
            (self.file_system_id, fs.id),
            (self.vpc_id, fs.vpc_id),
            (self.subnet_id, fs.subnet_id),
            (self.creation_token, fs.name),
        )
        if any(wanted is not None and wanted != actual for wanted, actual in exact):
            return False
        fields = {
            "Protocol": fs.protocol,
            "StorageType": fs.storage_type,
            "LifeCycleState": fs.state,
            "Zone": fs.zone,
            "IpAddress": fs.ip or "",
            "PGroupId": fs.pgroup_id,
            "PGroupName": (pgroup_names or {}).get(fs.pgroup_id, ""),
            "Scenario": "",
        }
        if any(fields[name] not in values for name, values in self.filters):
            return False
        return set(self.tags) <= set(fs.tags)


def parse_create(params: Mapping[str, object], region: str, zones: tuple[str, ...] | None = None) -> CreateRequest:
    """``zones``: the region's zones (None: any ``<region>-<n>``). The permission group's existence is checked
    by the action (it needs the store); here only its shape."""
    params_mod.check_names(params, _CREATE_EMULATED, _CREATE_NOT_EMULATED)
    zone = params_mod.required(params, "Zone")
    net_interface = params_mod.required(params, "NetInterface")
    pgroup_id = params_mod.required(params, "PGroupId")

    if not zone:
        raise ApiError(errors.MISSING_ZONE, "`Zone` must name an availability zone, e.g. ap-guangzhou-3")
    match = _ZONE.match(zone)
    if match is None:
        raise ApiError(errors.INVALID_ZONE, f"{zone!r} is not an availability zone name")
    if match.group(1) != region:
        raise ApiError(errors.ZONE_REGION_MISMATCH, f"zone {zone!r} is not in region {region!r}")
    if zones is not None and zone not in zones:
        raise ApiError(errors.INVALID_ZONE, f"region {region} has no zone {zone!r}; it has {', '.join(zones)}")

    # The real service takes the network type in any case ("vpc" is what the vendor's Go driver sends).
    net_interface = net_interface.upper()
    if net_interface == "BASIC":
        raise ApiError(errors.BASIC_NETWORK_NOT_SUPPORTED, "the basic network is not supported; use VPC")
    if net_interface != "VPC":
        raise ApiError(errors.INVALID_NET_INTERFACE, f"NetInterface {net_interface!r}: the emulator models VPC only")

    if pgroup_id != BASIC_PGROUP and not _PGROUP.match(pgroup_id):
        raise ApiError(errors.INVALID_PGROUP_ID, f"{pgroup_id!r} is not a permission group id (pgroup-xxxxxxxx)")

    protocol = params_mod.string(params, "Protocol") or "NFS"
    if protocol != "NFS":
        raise ApiError(errors.INVALID_PROTOCOL, f"Protocol {protocol!r}: the emulator models NFS only")
    storage_type = params_mod.string(params, "StorageType") or "SD"
    if storage_type not in STORAGE_TYPES:
        raise ApiError(errors.INVALID_STORAGE_TYPE, f"StorageType {storage_type!r} is not one of {STORAGE_TYPES}")

    vpc_id = params_mod.string(params, "VpcId") or ""
    subnet_id = params_mod.string(params, "SubnetId") or ""
    if not vpc_id or not subnet_id:
        raise ApiError(errors.MISSING_VPC_PARAMETER, "VpcId and SubnetId are required for a VPC file system")
    if not _VPC.match(vpc_id):
        raise ApiError(errors.INVALID_VPC_ID, f"{vpc_id!r} is not a VPC id (vpc-xxxxxxxx)")
    if not _SUBNET.match(subnet_id):
        raise ApiError(errors.INVALID_SUBNET_ID, f"{subnet_id!r} is not a subnet id (subnet-xxxxxxxx)")

    name = params_mod.string(params, "FsName") or ""
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ApiError(errors.FS_NAME_LIMIT_EXCEEDED, f"FsName is {len(name.encode())} bytes; at most 64 are allowed")

    token = params_mod.string(params, "ClientToken") or None
    if token is not None:
        if len(token) > MAX_CLIENT_TOKEN_CHARS:
            raise ApiError(errors.CLIENT_TOKEN_LIMIT_EXCEEDED, "ClientToken is longer than 64 characters")
        if not all(" " < c < "\x7f" for c in token):
            raise ApiError(errors.INVALID_CLIENT_TOKEN, "ClientToken must be printable ASCII without spaces")

    raw_tags = params.get("ResourceTags")
    tags = params_mod.tag_list(raw_tags, "ResourceTags") if raw_tags is not None else ()
    if len(tags) > MAX_TAGS:
        raise ApiError(errors.TAG_LIMIT_EXCEEDED, f"at most {MAX_TAGS} tags per file system")

    encrypted = params.get("Encrypted", False)
    if not isinstance(encrypted, bool):
        raise ApiError(errors.INVALID_ENCRYPTED, "Encrypted must be true or false")
    capacity = params_mod.integer(params, "Capacity")
    if capacity is not None and capacity <= 0:
        raise ApiError(errors.INVALID_TURBO_CAPACITY, "Capacity must be a positive number of GiB")

    return CreateRequest(
        zone=zone,
        net_interface=net_interface,
        pgroup_id=pgroup_id,
        protocol=protocol,
        storage_type=storage_type,
        vpc_id=vpc_id,
        subnet_id=subnet_id,
        name=name,
        tags=tags,
        client_token=token,
        encrypted=encrypted,
        capacity_gib=capacity,
        snapshot_id=params_mod.string(params, "SnapshotId") or None,
    )


def parse_describe(params: Mapping[str, object]) -> DescribeRequest:
    params_mod.check_names(params, _DESCRIBE_PARAMS)
    offset = params_mod.integer(params, "Offset")
    limit = params_mod.integer(params, "Limit")
    if offset is not None and offset < 0:
        raise ApiError(errors.INVALID_PARAMETER_VALUE, "Offset must not be negative")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise ApiError(errors.INVALID_PARAMETER_VALUE, f"Limit must be between 1 and {MAX_LIMIT}")
    raw_filters = params.get("Filters")
    filters: list[tuple[str, frozenset[str]]] = []
    if raw_filters is not None:
        if not isinstance(raw_filters, list):
            raise ApiError(errors.INVALID_PARAMETER, "`Filters` must be a list of {Name, Values}")
        for item in raw_filters:
            if not isinstance(item, dict) or set(item) - {"Name", "Values"}:
                raise ApiError(errors.INVALID_PARAMETER, "each filter must be {Name, Values}")
            name, values = item.get("Name"), item.get("Values")
            if name not in _FILTER_NAMES:
                raise ApiError(errors.INVALID_PARAMETER_VALUE, f"unknown filter {name!r}")
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ApiError(errors.INVALID_PARAMETER, f"the Values of filter {name!r} must be strings")
            filters.append((str(name), frozenset(values)))
    raw_tags = params.get("Tags")
    return DescribeRequest(
        file_system_id=params_mod.string(params, "FileSystemId") or None,
        vpc_id=params_mod.string(params, "VpcId") or None,
        subnet_id=params_mod.string(params, "SubnetId") or None,
        creation_token=params_mod.string(params, "CreationToken") or None,
        filters=tuple(filters),
        tags=params_mod.tag_list(raw_tags, "Tags") if raw_tags is not None else (),
        offset=offset if offset is not None else 0,
        limit=limit if limit is not None else DEFAULT_LIMIT,
    )


def parse_file_system_id(params: Mapping[str, object]) -> str:
    """The one parameter of ``DescribeMountTargets`` and ``DeleteCfsFileSystem``."""
    params_mod.check_names(params, _ID_PARAMS)
    fs_id = params_mod.required(params, "FileSystemId")
    if not fs_id:
        raise ApiError(errors.MISSING_FILE_SYSTEM_ID, "FileSystemId must not be empty")
    return fs_id


MAX_FS_LIMIT_GIB = 1_073_741_824
"""``UpdateCfsFileSystemSizeLimit``'s documented range is 0 (no limit) to this many GiB."""
SIZE_LIMIT_TYPES = ("SD",)
"""Storage types that take a size limit: the documentation says general standard (SD) only."""
_SIZE_LIMIT_PARAMS = frozenset({"FsLimit", "FileSystemId"})


def parse_size_limit(params: Mapping[str, object]) -> tuple[str, int]:
    """``(file system id, limit in GiB)`` of ``UpdateCfsFileSystemSizeLimit``; 0 removes the limit."""
    params_mod.check_names(params, _SIZE_LIMIT_PARAMS)
    fs_id = params_mod.file_system_id(params)
    limit = params_mod.integer(params, "FsLimit")
    if limit is None:
        raise ApiError(errors.MISSING_PARAMETER, "the request is missing the required parameter `FsLimit`")
    if limit < 0:
        raise ApiError(errors.INVALID_FS_SIZE_LIMIT, "FsLimit must not be negative (0 means no limit)")
    if limit > MAX_FS_LIMIT_GIB:
        raise ApiError(errors.FS_SIZE_LIMIT_EXCEEDED, f"FsLimit is at most {MAX_FS_LIMIT_GIB} GiB")
    return fs_id, limit
