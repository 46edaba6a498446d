"""Capacity decisions for CreateVolume.

CFS bills what is used and does not cap a dedicated file system, so the capacity we report is nominal: the
request rounded up to whole GiB, which is what Kubernetes shows on the PV. The rounding must never exceed the
caller's limit, or the PV would claim more than the claim allows.

It must never pass what CFS allows for one file system either (Tencent's "Use Limits": 160 TiB for Standard,
32 TiB for High-Performance), nor what a CSI response can carry (int64): a request past that is refused with
OUT_OF_RANGE before any cloud call. A capacity read back from storage (a tag, a metadata file) is checked
again when it is read, so one bad record can never break ListVolumes.
"""

from __future__ import annotations

import re

from cfs_csi.volume.params import StorageType

GIB = 1024**3
TIB = 1024 * GIB

#: The largest capacity of one CFS file system, per storage type.
MAX_CAPACITY = {StorageType.SD: 160 * TIB, StorageType.HP: 32 * TIB}

#: The largest value a CSI ``capacity_bytes`` (int64) can carry.
INT64_MAX = 2**63 - 1

_DECIMAL = re.compile(r"[0-9]{1,19}")

#: Capacity reported when the request names neither a minimum nor a limit (the seed's PVC asks 10Gi).
DEFAULT_CAPACITY = 10 * GIB


class CapacityError(ValueError):
    """The capacity range cannot be satisfied (gRPC OUT_OF_RANGE)."""


def required_capacity(required_bytes: int, limit_bytes: int, maximum: int = MAX_CAPACITY[StorageType.SD]) -> int:
    """Return the capacity to provision, in bytes, for a CSI ``CapacityRange``.

    Raises :class:`CapacityError` for negative values, a limit below the minimum, a limit too small for one
    whole GiB, or a capacity past ``maximum`` (what one file system of the storage type may hold).
    """
    if required_bytes < 0 or limit_bytes < 0:
        raise CapacityError("capacity range values must not be negative")
    if limit_bytes and required_bytes > limit_bytes:
        raise CapacityError(f"required_bytes {required_bytes} exceeds limit_bytes {limit_bytes}")
    if required_bytes:
        wanted = required_bytes
    elif limit_bytes:
        wanted = max(GIB, min(DEFAULT_CAPACITY, limit_bytes // GIB * GIB))
    else:
        wanted = DEFAULT_CAPACITY
    rounded = -(-wanted // GIB) * GIB
    if rounded > maximum:
        raise CapacityError(
            f"required_bytes {required_bytes} is more than one CFS file system of this storage type can hold "
            f"({maximum} bytes, {maximum // TIB} TiB)"
        )
    if limit_bytes and rounded > limit_bytes:
        raise CapacityError(
            f"capacity is allocated in whole GiB: {rounded} bytes would exceed limit_bytes {limit_bytes}"
        )
    return rounded


def stored_capacity(value: object) -> int:
    """A capacity read back from storage, or 0 ("unknown" in CSI) if it is not a decimal that fits int64."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value if 0 <= value <= INT64_MAX else 0
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
        return number if number <= INT64_MAX else 0
    return 0
