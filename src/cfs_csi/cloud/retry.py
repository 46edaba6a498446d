"""Capped exponential backoff with full jitter, bounded by a time budget."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from cfs_csi.metrics import record as metrics

T = TypeVar("T")

#: One generator for every call's jitter: seeding a new one from the OS cost 25 µs per API call.
_JITTER = random.Random()  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True)
class Backoff:
    base: float = 0.2
    cap: float = 5.0
    factor: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniformly in [0, min(cap, base * factor**attempt)] (spreads retries of many callers)."""
        return rng.uniform(0, min(self.cap, self.base * self.factor**attempt))


async def retry(
    call: Callable[[], Awaitable[T]],
    retryable: Callable[[BaseException], bool],
    budget: float,
    backoff: Backoff = Backoff(),
    rng: random.Random | None = None,
) -> T:
    """Await ``call()`` until it succeeds, fails for good, or the next wait would pass ``budget`` seconds.

    The last retryable error is re-raised when the budget runs out; the caller classifies it. Each retry, and
    each retryable error given up on, is counted (:func:`cfs_csi.metrics.record.cloud_retry`).
    """
    rng = rng or _JITTER
    give_up_at = time.monotonic() + budget
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            if not retryable(exc):
                raise
            wait = backoff.delay(attempt, rng)
            if time.monotonic() + wait >= give_up_at:
                metrics.cloud_retry(exc, gave_up=True)
                raise
            metrics.cloud_retry(exc, gave_up=False)
            attempt += 1
            await asyncio.sleep(wait)
