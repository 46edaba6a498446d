from __future__ import annotations

import pytest

from cfs_csi.volume.capacity import DEFAULT_CAPACITY, GIB, CapacityError, required_capacity

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
]


@pytest.mark.parametrize(("case", "required", "limit", "message"), ERRORS, ids=[c[0] for c in ERRORS])
def test_capacity_errors(case: str, required: int, limit: int, message: str) -> None:
    with pytest.raises(CapacityError, match=message):
        required_capacity(required, limit)
