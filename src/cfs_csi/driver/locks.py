"""One operation at a time per key (a volume name, id or target path).

CSI asks a plugin to answer ABORTED, not to queue, when an operation is already running for the same
volume: the caller retries with backoff, and a queue of stuck mounts cannot pile up behind a dead server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from cfs_csi.driver.errors import CsiError


class InFlight:
    def __init__(self) -> None:
        self._keys: set[str] = set()

    @contextmanager
    def hold(self, *keys: str) -> Iterator[None]:
        busy = [key for key in keys if key in self._keys]
        if busy:
            raise CsiError(grpc.StatusCode.ABORTED, f"an operation on {busy[0]!r} is already in progress")
        self._keys.update(keys)
        try:
            yield
        finally:
            self._keys.difference_update(keys)
