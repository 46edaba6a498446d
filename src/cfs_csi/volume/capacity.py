"""Capacity decisions for CreateVolume.

CFS bills what is used and does not cap a dedicated file system, so the capacity we report is nominal: the
request rounded up to whole GiB, which is what Kubernetes shows on the PV. The rounding must never exceed the
caller's limit, or the PV would claim more than the claim allows.
"""

from __future__ import annotations

GIB = 1024**3

#: Capacity reported when the request names neither a minimum nor a limit (the seed's PVC asks 10Gi).
DEFAULT_CAPACITY = 10 * GIB


class CapacityError(ValueError):
    """The capacity range cannot be satisfied (gRPC OUT_OF_RANGE)."""


def required_capacity(required_bytes: int, limit_bytes: int) -> int:
    """Return the capacity to provision, in bytes, for a CSI ``CapacityRange``.

    Raises :class:`CapacityError` for negative values, a limit below the minimum, or a limit too small
    for one whole GiB.
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
    if limit_bytes and rounded > limit_bytes:
        raise CapacityError(
            f"capacity is allocated in whole GiB: {rounded} bytes would exceed limit_bytes {limit_bytes}"
        )
    return rounded
