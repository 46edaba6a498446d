"""Liveness of the operator and the sub-directory provisioner: their loops beat, a stale beat fails ``/healthz``.

A controller process can look alive (its port answers) while the loops that do its work are stuck: a watch that
hangs on a half-open connection and delivers nothing, or a Lease loop blocked on an API call. The kubelet can only
fix that by restarting the container, so ``/healthz`` must fail exactly then, and never merely because the API
server said no (a refused call is retried by the loop, which still beats). Each loop says when it last made
progress (:meth:`Liveness.beat`) and how long a silence is still normal for it; :func:`stale` decides.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Beat:
    """When a loop last made progress, and how long it may be silent before that means it is stuck."""

    at: float
    allowed: float


def stale(beats: Mapping[str, Beat], now: float) -> list[str]:
    """The problems of the loops silent for longer than they may be, in name order (pure)."""
    return [f"{name}: no progress for {now - beat.at:.0f}s (allowed {beat.allowed:.0f}s)"
            for name, beat in sorted(beats.items()) if now - beat.at > beat.allowed]  # fmt: skip


class Liveness:
    """The beats of one process's loops; :meth:`check` is a health check (``None`` while all are fresh)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._beats: dict[str, Beat] = {}

    def beat(self, name: str, allowed: float) -> None:
        self._beats[name] = Beat(self._clock(), allowed)

    def forget(self, name: str) -> None:
        """A loop that ended on purpose (a watch no longer wanted) stops counting."""
        self._beats.pop(name, None)

    def problems(self) -> list[str]:
        return stale(self._beats, self._clock())

    async def check(self) -> str | None:
        found = self.problems()
        return "; ".join(found) if found else None


def add_health_argument(parser: argparse.ArgumentParser) -> None:
    """``--health-port`` of the components whose loops beat here (the operator, the sub-directory provisioner)."""
    parser.add_argument(
        "--health-port",
        type=int,
        default=0,
        help="serve GET /healthz on this port: 503 when the Lease loop or a watch made no progress for longer than "
        "it may (a stuck loop only a restart fixes); 0: off",
    )
