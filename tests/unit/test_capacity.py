from __future__ import annotations

import pytest

from cfs_csi.volume.capacity import (
    DEFAULT_CAPACITY,
    GIB,
    INT64_MAX,
    MAX_CAPACITY,
    TIB,
    CapacityError,
    required_capacity,
    stored_capacity,
)
from cfs_csi.volume.params import StorageType

CASES = [
    ("nothing asked: default", 0, 0, DEFAULT_CAPACITY),
    ("exact GiB", 10 * GIB, 0, 10 * GIB),
    ("one byte rounds up", 1, 0, GIB),
    ("just over rounds up", 10 * GIB + 1, 0, 11 * GIB),
    ("limit equal to rounded request", 10 * GIB, 10 * GIB, 10 * GIB),
    ("only a limit, small", 0, 3 * GIB + 5, 3 * GIB),
    ("only a limit, large", 0, 500 * GIB, DEFAULT_CAPACITY),
]


@pytest.mark.parametrize(("case", "required", "limit", "expected"), CASES, ids=[c[0] for c in CASES])
def test_capacity(case: str, required: int, limit: int, expected: int) -> None:
    assert required_capacity(required, limit) == expected


ERRORS = [
    ("negative", -1, 0, "negative"),
    ("limit below required", 2 * GIB, GIB, "exceeds limit_bytes"),
    ("rounding would pass the limit", 1, 1024, "whole GiB"),
    ("limit below one GiB", 0, 1024, "whole GiB"),
    ("int64 max: rounding up would not fit the response", INT64_MAX, 0, "more than one CFS file system"),
    ("7Ei", 7 * 1024**6, 0, "more than one CFS file system"),
    ("one byte past 160 TiB (Standard)", 160 * TIB + 1, 0, "160 TiB"),
]


@pytest.mark.parametrize(("case", "required", "limit", "message"), ERRORS, ids=[c[0] for c in ERRORS])
def test_capacity_errors(case: str, required: int, limit: int, message: str) -> None:
    with pytest.raises(CapacityError, match=message):
        required_capacity(required, limit)


@pytest.mark.parametrize(
    ("kind", "largest"), [(StorageType.SD, 160 * TIB), (StorageType.HP, 32 * TIB)]
)  # fmt: skip
def test_the_largest_file_system_of_each_storage_type(kind: StorageType, largest: int) -> None:
    assert required_capacity(largest, 0, MAX_CAPACITY[kind]) == largest
    with pytest.raises(CapacityError, match=f"{largest // TIB} TiB"):
        required_capacity(largest + 1, 0, MAX_CAPACITY[kind])
    assert required_capacity(0, INT64_MAX, MAX_CAPACITY[kind]) == DEFAULT_CAPACITY  # a huge limit alone is fine


STORED = [
    (10 * GIB, 10 * GIB),
    ("10737418240", 10 * GIB),
    (str(INT64_MAX), INT64_MAX),
    (str(INT64_MAX + 1), 0),
    ("99999999999999999999", 0),
    (INT64_MAX + 1, 0),
    (-1, 0),
    ("-1", 0),
    ("\u00b3", 0),  # superscript three: str.isdigit() says yes, and int() raises
    ("\u0663", 0),  # an Arabic-Indic three: not what this driver writes
    ("1e3", 0),
    (True, 0),
    (None, 0),
    (1.5, 0),
]


@pytest.mark.parametrize(("value", "expected"), STORED)
def test_stored_capacity_never_breaks_a_response(value: object, expected: int) -> None:
    assert stored_capacity(value) == expected
