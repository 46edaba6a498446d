"""A CVM role's key renewal never stalls the event loop: the controller keeps serving while the metadata service
(part of the Tencent cloud, so stood in for here) takes its time."""

from __future__ import annotations

import asyncio
import json
import time

from cfs_csi.cloud.tencent.api import current_keys
from cfs_csi.cloud.tencent.credentials import ROLE_REFRESH_MARGIN, InstanceRoleCredential, StaticCredential

SID, KEY, TOKEN = "AKIDrefreshtest00000000000000000000", "refresh-test-key-000000000", "refresh-token-0000000000"


class SlowMetadata:
    """Answers the role's keys after ``delay`` seconds (a blocking call, as the real client's urllib is)."""

    def __init__(self, delay: float, expires: float) -> None:
        self.delay, self.expires, self.asked = delay, expires, 0

    def get(self, path: str) -> str:
        self.asked += 1
        time.sleep(self.delay)
        key = f"{KEY}-{self.asked}"
        return json.dumps({"TmpSecretId": SID, "TmpSecretKey": key, "Token": TOKEN, "ExpiredTime": self.expires})


async def test_a_due_renewal_runs_off_the_event_loop() -> None:
    now = [1_000.0]
    metadata = SlowMetadata(0.3, expires=5_000)
    credential = InstanceRoleCredential(metadata, "cfs-role", lambda: now[0])  # type: ignore[arg-type]
    assert credential.get_credential_info() == (SID, f"{KEY}-1", TOKEN)  # fetched at start, as resolve() does
    assert await current_keys(credential) == (SID, f"{KEY}-1", TOKEN)  # valid: read in place
    assert metadata.asked == 1

    now[0] = 5_000 - ROLE_REFRESH_MARGIN  # due for renewal
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    running = asyncio.ensure_future(ticker())
    try:
        keys = await current_keys(credential)
    finally:
        running.cancel()
    assert keys == (SID, f"{KEY}-2", TOKEN) and metadata.asked == 2
    assert ticks >= 10  # the loop went on serving during the 0.3 s renewal (none if it had blocked)


async def test_static_keys_are_read_in_place() -> None:
    assert await current_keys(StaticCredential(SID, KEY, TOKEN)) == (SID, KEY, TOKEN)
