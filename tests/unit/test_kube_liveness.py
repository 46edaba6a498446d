"""Liveness of the operator's and the provisioner's loops (issue 17 item 4): decisions and the beats' sources."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cfs_csi.kube.informer import LIVENESS_MARGIN, Informer
from cfs_csi.kube.liveness import Beat, Liveness, stale


@pytest.mark.parametrize(
    ("beats", "now", "expected"),
    [
        ({}, 100.0, []),
        ({"lease": Beat(90.0, 70.0)}, 100.0, []),
        ({"lease": Beat(90.0, 10.0)}, 100.0, []),  # exactly at the limit: still fine
        ({"lease": Beat(10.0, 70.0)}, 100.0, ["lease: no progress for 90s (allowed 70s)"]),
        (
            {"watch /b": Beat(0.0, 50.0), "watch /a": Beat(0.0, 50.0), "lease": Beat(99.0, 1.0)},
            100.0,
            ["watch /a: no progress for 100s (allowed 50s)", "watch /b: no progress for 100s (allowed 50s)"],
        ),
    ],
)
def test_stale(beats: dict[str, Beat], now: float, expected: list[str]) -> None:
    assert stale(beats, now) == expected


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_beat_renews_and_a_forgotten_loop_stops_counting() -> None:
    clock = Clock()
    live = Liveness(clock)
    live.beat("lease", 60)
    clock.now += 61
    assert await live.check() == "lease: no progress for 61s (allowed 60s)"
    live.beat("lease", 60)
    assert await live.check() is None
    live.beat("watch /x", 1)
    clock.now += 5
    live.forget("watch /x")
    assert live.problems() == []


class HangingWatchClient:
    """Lists once, then a watch that never delivers: a half-open connection as the informer sees it."""

    async def list(self, path: str) -> dict[str, Any]:
        return {"items": [{"metadata": {"name": "a"}}], "metadata": {"resourceVersion": "7"}}

    async def watch(self, path: str, version: str, timeout: int) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()
        yield {}


async def test_an_informer_stuck_in_its_watch_turns_stale_after_two_resyncs_and_the_margin() -> None:
    clock = Clock()
    live = Liveness(clock)
    seen: list[str] = []
    informer = Informer(HangingWatchClient(), "/api/v1/things", lambda kind, item: seen.append(kind), 10, live)  # type: ignore[arg-type]
    task = asyncio.create_task(informer.run())
    await informer.synced.wait()
    await asyncio.sleep(0)
    assert seen == ["ADDED"] and await live.check() is None
    clock.now += 2 * 10 + LIVENESS_MARGIN
    assert await live.check() is None
    clock.now += 1
    assert (await live.check() or "").startswith("watch /api/v1/things: no progress for")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
