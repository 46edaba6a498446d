"""Per-call facts visible to backends without threading them through every signature: the caller's deadline, and
how long the call waited for the cloud.

The gRPC interceptor opens a :class:`Call` for each request (:func:`deadline_in`); a backend that waits (for a file
system to become available, or between retries) asks :func:`remaining` so that it answers before the caller gives
up, instead of doing work nobody will receive. The cloud client reports each API exchange with
:func:`count_cloud`, so the interceptor's log line can split a call's time into the cloud's and the driver's own
(issue 15: "overhead beyond the cloud's time"), for an operator reading the log as for the benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Call:
    """One gRPC call: its deadline (monotonic clock; ``None``: none set) and the cloud exchanges it made.

    Mutable and shared by reference: tasks a call starts (``asyncio.gather``) copy the context, not this object,
    so their exchanges count toward the call too (then ``cloud_seconds`` sums overlapping waits).
    """

    deadline: float | None = None
    cloud_seconds: float = 0.0
    cloud_calls: int = 0


_CALL: ContextVar[Call | None] = ContextVar("cfs_csi_call", default=None)


@contextmanager
def deadline_in(seconds: float | None) -> Iterator[Call]:
    """Within this block, the deadline is ``seconds`` from now (``None``: no deadline); yields the call's record."""
    call = Call(None if seconds is None else time.monotonic() + seconds)
    token = _CALL.set(call)
    try:
        yield call
    finally:
        _CALL.reset(token)


def remaining(default: float) -> float:
    """Seconds left before the deadline, or ``default`` when the caller set none."""
    call = _CALL.get()
    if call is None or call.deadline is None:
        return default
    return call.deadline - time.monotonic()


def count_cloud(seconds: float) -> None:
    """Record one exchange with the cloud that took ``seconds`` (answered or not); nothing outside a call."""
    call = _CALL.get()
    if call is not None:
        call.cloud_seconds += seconds
        call.cloud_calls += 1
