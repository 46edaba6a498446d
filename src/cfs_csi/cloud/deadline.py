"""The caller's deadline, visible to backends without threading it through every signature.

The gRPC interceptor records each call's deadline here; a backend that waits (for a file system to become
available, or between retries) asks :func:`remaining` so that it answers before the caller gives up,
instead of doing work nobody will receive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("cfs_csi_deadline", default=None)


@contextmanager
def deadline_in(seconds: float | None) -> Iterator[None]:
    """Within this block, the deadline is ``seconds`` from now (``None``: no deadline)."""
    token = _DEADLINE.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining(default: float) -> float:
    """Seconds left before the deadline, or ``default`` when the caller set none."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return default
    return deadline - time.monotonic()
