"""An informer's retry after the API server asked for patience is not a warning (issue 17 item 2: log noise)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cfs_csi.kube.informer import Informer
from cfs_csi.kube.rest import ApiError


class FailsOnceClient:
    def __init__(self, status: int) -> None:
        self.status, self.calls = status, 0

    async def list(self, path: str) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            raise ApiError(self.status, "TooManyRequests", "storage is (re)initializing")
        return {"items": [], "metadata": {"resourceVersion": "1"}}

    async def watch(self, path: str, version: str, timeout: int) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()
        yield {}


@pytest.mark.parametrize(("status", "level"), [(429, logging.DEBUG), (500, logging.WARNING), (403, logging.WARNING)])
async def test_retry_log_level(status: int, level: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cfs_csi.kube.informer")
    informer = Informer(FailsOnceClient(status), "/apis/x/v1/things", lambda kind, item: None)  # type: ignore[arg-type]
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.synced.wait(), 5)  # listed again after the pause, and synced
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    retries = [r for r in caplog.records if "listing again" in r.getMessage()]
    assert [r.levelno for r in retries] == [level]
