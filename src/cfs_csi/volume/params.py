"""StorageClass parameters of dedicated mode, parsed into a typed, comparable object.

Keys are matched case-insensitively because the vendor's driver did so and existing StorageClasses rely on
it (``VpcId`` and ``vpcid`` mean the same). An unknown key is refused rather than ignored: a typo such as
``subnetId2`` would otherwise silently create a file system in the wrong network.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.names import cut

#: Keys the external-provisioner adds or consumes itself (secrets, fs type); never ours to judge.
RESERVED_PREFIX = "csi.storage.k8s.io/"

#: Tag keys this driver writes itself: they prove which file systems it may delete, so no class may set them.
RESERVED_TAG_PREFIX = "cfs-csi/"

DEFAULT_PGROUP = "pgroupbasic"

_VPC = re.compile(r"^vpc-[0-9a-z]{1,32}$")
_SUBNET = re.compile(r"^subnet-[0-9a-z]{1,32}$")
_PGROUP = re.compile(r"^(pgroup-[0-9a-z]{1,32}|pgroupbasic)$")
_ZONE = re.compile(r"^[a-z]{2}-[a-z]+(-[a-z]+)*-[0-9]{1,2}$")
_TAG_KEY = re.compile(r"^[^\s,:][^,:]{0,126}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_TAGS = 50

_Parser = Callable[[str, str], tuple[str, object]]


class StorageType(enum.StrEnum):
    """CFS storage classes: standard (SD) or performance (HP)."""

    SD = "SD"
    HP = "HP"


class NfsVersion(enum.StrEnum):
    """NFS protocol version used by the node to mount the file system."""

    V3 = "3"
    V4 = "4"


@dataclass(frozen=True)
class VolumeParameters:
    """What a StorageClass asks of a dedicated file system.

    Frozen and made of plain values, so two requests can be compared for idempotency with ``==``.
    """

    vpc_id: str = ""
    subnet_id: str = ""
    zone: str = ""
    storage_type: StorageType = StorageType.SD
    pgroup_id: str = DEFAULT_PGROUP
    vers: NfsVersion = NfsVersion.V3
    resource_tags: tuple[tuple[str, str], ...] = ()

    def to_context(self) -> dict[str, str]:
        """The parameters as they go into ``volume_context`` (names as in the seed's log; empties left out)."""
        context = {
            "vpcid": self.vpc_id,
            "subnetid": self.subnet_id,
            "zone": self.zone,
            "storagetype": self.storage_type.value,
            "pgroupid": self.pgroup_id,
            "vers": self.vers.value,
        }
        if self.resource_tags:
            context["resourcetags"] = format_tags(self.resource_tags)
        return {key: value for key, value in context.items() if value}


def parse_parameters(raw: Mapping[str, str]) -> VolumeParameters:
    """Parse CreateVolume ``parameters`` or raise :class:`InvalidArgument` naming the offending key."""
    values: dict[str, str] = {}
    seen: dict[str, str] = {}
    for key, value in raw.items():
        if key.lower().startswith(RESERVED_PREFIX):
            continue
        folded = key.strip().lower()
        if folded in seen:
            raise InvalidArgument(f"parameter {cut(key)!r} is given twice (also as {cut(seen[folded])!r})")
        seen[folded] = key
        values[folded] = value.strip()

    unknown = sorted(seen[k] for k in values if k not in _PARSERS)
    if unknown:
        raise InvalidArgument(
            f"unknown StorageClass parameter {cut(unknown[0])!r}; known parameters: {', '.join(sorted(_PARSERS))}"
        )
    fields: dict[str, object] = {}
    for folded, value in values.items():
        name, parsed = _PARSERS[folded](seen[folded], value)
        if name:
            fields[name] = parsed
    return VolumeParameters(**fields)  # type: ignore[arg-type]


def parse_tags(key: str, text: str) -> tuple[tuple[str, str], ...]:
    """Parse ``k:v,k2:v2``. A malformed entry is an error, never dropped: a missing tag can break billing."""
    tags: list[tuple[str, str]] = []
    if not text:
        return ()
    for entry in text.split(","):
        tag_key, sep, tag_value = entry.strip().partition(":")
        tag_key, tag_value = tag_key.strip(), tag_value.strip()
        if not sep or not _TAG_KEY.match(tag_key) or len(tag_value) > 255 or _CONTROL.search(tag_key + tag_value):
            raise InvalidArgument(f"parameter {cut(key)!r}: malformed tag {cut(entry.strip())!r}, expected key:value")
        if tag_key.lower().startswith(RESERVED_TAG_PREFIX):
            raise InvalidArgument(
                f"parameter {cut(key)!r}: tag key {cut(tag_key)!r} uses the prefix {RESERVED_TAG_PREFIX!r}, which "
                "this driver reserves for the tags that prove which file systems it created"
            )
        if any(existing == tag_key for existing, _ in tags):
            raise InvalidArgument(f"parameter {cut(key)!r}: tag {cut(tag_key)!r} is given twice")
        tags.append((tag_key, tag_value))
    if len(tags) > _MAX_TAGS:
        raise InvalidArgument(f"parameter {cut(key)!r}: at most {_MAX_TAGS} tags are allowed")
    # Sorted: tags are a set, and the cloud need not return them in the order they were given.
    return tuple(sorted(tags))


def format_tags(tags: tuple[tuple[str, str], ...]) -> str:
    """The inverse of :func:`parse_tags`."""
    return ",".join(f"{k}:{v}" for k, v in tags)


def _pattern(field: str, pattern: re.Pattern[str], example: str) -> _Parser:
    def parse(key: str, value: str) -> tuple[str, object]:
        if value and not pattern.match(value):
            raise InvalidArgument(
                f"parameter {cut(key)!r}: {cut(value)!r} is not a valid value (for example {example})"
            )
        return field, value

    return parse


def _enum(field: str, kind: type[StorageType] | type[NfsVersion]) -> _Parser:
    def parse(key: str, value: str) -> tuple[str, object]:
        choices = [member.value for member in kind]
        normalized = value.upper()
        if normalized not in choices:
            raise InvalidArgument(f"parameter {cut(key)!r}: {cut(value)!r} is not one of {', '.join(choices)}")
        return field, kind(normalized)

    return parse


def _pgroup(key: str, value: str) -> tuple[str, object]:
    value = value or DEFAULT_PGROUP
    if not _PGROUP.match(value):
        raise InvalidArgument(f"parameter {cut(key)!r}: {cut(value)!r} is not a permission group id (pgroup-xxxxxxxx)")
    return "pgroup_id", value


def _tags(key: str, value: str) -> tuple[str, object]:
    return "resource_tags", parse_tags(key, value)


def _subdir_share(key: str, value: str) -> tuple[str, object]:
    if value.lower() == "true":
        raise InvalidArgument(
            f"parameter {cut(key)!r}: shared mode is served by the provisioner com.tencent.cloud.csi.tcfs.<class>, "
            "not by com.tencent.cloud.csi.cfs; change the StorageClass provisioner"
        )
    if value.lower() not in ("", "false"):
        raise InvalidArgument(f"parameter {cut(key)!r}: {cut(value)!r} is not true or false")
    return "", None


_PARSERS: dict[str, _Parser] = {
    "vpcid": _pattern("vpc_id", _VPC, "vpc-oilua6pt"),
    "subnetid": _pattern("subnet_id", _SUBNET, "subnet-rtwb42lu"),
    "zone": _pattern("zone", _ZONE, "ap-guangzhou-3"),
    "storagetype": _enum("storage_type", StorageType),
    "pgroupid": _pgroup,
    "vers": _enum("vers", NfsVersion),
    "resourcetags": _tags,
    "subdir-share": _subdir_share,
}
