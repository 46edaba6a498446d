"""Typed reads of request parameters, shared by every action's validation (pure).

A value of the wrong JSON type is ``InvalidParameter``; a name the SDK cannot send is ``UnknownParameter``;
a name the SDK can send but the emulator does not model is ``UnsupportedOperation`` (refused, never silently
ignored), as the gateway of the real API distinguishes them.
"""

from __future__ import annotations

from collections.abc import Mapping

from cfs_csi.emulator import errors
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.model import Tag

MAX_TAG_KEY_BYTES = 127
MAX_TAG_VALUE_BYTES = 255


def check_names(params: Mapping[str, object], allowed: frozenset[str], refused: frozenset[str] = frozenset()) -> None:
    for name in sorted(params):
        if name in refused:
            raise ApiError(errors.UNSUPPORTED_OPERATION, f"the emulator does not model the parameter `{name}`")
        if name not in allowed:
            raise ApiError(errors.UNKNOWN_PARAMETER, f"the parameter `{name}` is not recognized")


def string(params: Mapping[str, object], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(errors.INVALID_PARAMETER, f"`{name}` must be a string")
    return value


def required(params: Mapping[str, object], name: str) -> str:
    value = string(params, name)
    if value is None:
        raise ApiError(errors.MISSING_PARAMETER, f"the request is missing the required parameter `{name}`")
    return value


def integer(params: Mapping[str, object], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(errors.INVALID_PARAMETER, f"`{name}` must be an integer")
    return value


def string_list(params: Mapping[str, object], name: str) -> list[str] | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(errors.INVALID_PARAMETER, f"`{name}` must be a list of strings")
    return list(value)


def paging(params: Mapping[str, object], default_limit: int, max_limit: int | None) -> tuple[int, int]:
    """``Offset`` (default 0, not negative) and ``Limit`` (default ``default_limit``, 1 to ``max_limit``)."""
    offset = integer(params, "Offset")
    limit = integer(params, "Limit")
    if offset is not None and offset < 0:
        raise ApiError(errors.INVALID_PARAMETER_VALUE, "Offset must not be negative")
    if limit is not None and (limit < 1 or (max_limit is not None and limit > max_limit)):
        bound = f"between 1 and {max_limit}" if max_limit is not None else "positive"
        raise ApiError(errors.INVALID_PARAMETER_VALUE, f"Limit must be {bound}")
    return (offset if offset is not None else 0), (limit if limit is not None else default_limit)


Filters = tuple[tuple[str, frozenset[str]], ...]


def filters(params: Mapping[str, object], known: frozenset[str], prefix: str = "") -> Filters:
    """``Filters: [{Name, Values}]``; a name not in ``known`` (and not starting with ``prefix``, if given) is
    ``InvalidParameterValue``."""
    raw = params.get("Filters")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ApiError(errors.INVALID_PARAMETER, "`Filters` must be a list of {Name, Values}")
    found: list[tuple[str, frozenset[str]]] = []
    for item in raw:
        if not isinstance(item, dict) or set(item) - {"Name", "Values"}:
            raise ApiError(errors.INVALID_PARAMETER, "each filter must be {Name, Values}")
        name, values = item.get("Name"), item.get("Values")
        if not isinstance(name, str) or not (name in known or (prefix and name.startswith(prefix))):
            raise ApiError(errors.INVALID_PARAMETER_VALUE, f"unknown filter {name!r}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ApiError(errors.INVALID_PARAMETER, f"the Values of filter {name!r} must be strings")
        found.append((name, frozenset(values)))
    return tuple(found)


def tag_list(value: object, name: str) -> tuple[Tag, ...]:
    if not isinstance(value, list):
        raise ApiError(errors.INVALID_PARAMETER, f"`{name}` must be a list of {{TagKey, TagValue}}")
    tags: list[Tag] = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"TagKey", "TagValue"}:
            raise ApiError(errors.INVALID_PARAMETER, f"each entry of `{name}` must be {{TagKey, TagValue}}")
        key, val = item.get("TagKey"), item.get("TagValue")
        if not isinstance(key, str) or not key.strip():
            raise ApiError(errors.INVALID_TAG_KEY, "a tag key must be a non-empty string")
        if not isinstance(val, str) or not val.strip():
            raise ApiError(errors.INVALID_TAG_VALUE, f"the value of tag {key!r} must be a non-empty string")
        if len(key.encode()) > MAX_TAG_KEY_BYTES:
            raise ApiError(errors.TAG_KEY_LIMIT_EXCEEDED, f"tag key {key[:32]!r}... is too long")
        if len(val.encode()) > MAX_TAG_VALUE_BYTES:
            raise ApiError(errors.TAG_VALUE_LIMIT_EXCEEDED, f"the value of tag {key!r} is too long")
        if any(t.key == key for t in tags):
            raise ApiError(errors.DUPLICATED_TAG_KEY, f"tag key {key!r} is given twice")
        tags.append(Tag(key, val))
    return tuple(tags)


def file_system_id(params: Mapping[str, object], name: str = "FileSystemId") -> str:
    """A required, non-empty file system id."""
    fs_id = required(params, name)
    if not fs_id:
        raise ApiError(errors.MISSING_FILE_SYSTEM_ID, f"{name} must not be empty")
    return fs_id
