from __future__ import annotations

import random

import pytest

from cfs_csi.cloud.retry import Backoff, retry


class Flaky(Exception):
    pass


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(base=0.2, cap=5.0)
    rng = random.Random(1)
    delays = [backoff.delay(attempt, rng) for attempt in range(20)]
    assert all(0 <= d <= 5.0 for d in delays)
    assert max(delays[:3]) <= 0.8
    assert len(set(delays)) == len(delays)  # jittered, not lock-step


async def test_retry_until_success() -> None:
    calls = []

    async def call() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Flaky
        return "ok"

    assert await retry(call, lambda e: isinstance(e, Flaky), budget=5, backoff=Backoff(base=0.001)) == "ok"
    assert len(calls) == 3


async def test_non_retryable_errors_pass_at_once() -> None:
    calls = []

    async def call() -> None:
        calls.append(1)
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await retry(call, lambda e: isinstance(e, Flaky), budget=5)
    assert len(calls) == 1


async def test_budget_ends_the_retries_with_the_last_error() -> None:
    calls = []

    async def call() -> None:
        calls.append(1)
        raise Flaky

    with pytest.raises(Flaky):
        await retry(call, lambda e: isinstance(e, Flaky), budget=0.05, backoff=Backoff(base=0.01, cap=0.02))
    assert 1 <= len(calls) < 50
