"""Volume statistics with a deadline: ``statvfs`` on a dead NFS mount blocks in the kernel until the server answers.

A blocked ``statvfs`` cannot be cancelled: the thread running it stays blocked. So a hung volume must cost the
others nothing. :class:`StatsProbes` runs at most one ``statvfs`` per path at a time, each in a daemon thread of
its own (no shared pool that hung calls could fill, and no thread that keeps the process from exiting). A call
for a path whose probe is past its deadline answers TIMEOUT at once, without starting another; a call that finds
a probe still within its deadline waits for that probe's answer (at most until its deadline). When a hung probe
finally returns, its thread ends and the next call probes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cfs_csi.metrics import record as metrics
from cfs_csi.mount.errors import MountError, MountErrorKind

_STALE = {errno.ESTALE, errno.EIO, errno.ENOTCONN, errno.EHOSTDOWN, errno.ECONNABORTED}


@dataclass(frozen=True)
class VolumeStats:
    total_bytes: int
    available_bytes: int
    used_bytes: int
    total_inodes: int
    free_inodes: int
    used_inodes: int


@dataclass(frozen=True)
class _Probe:
    future: asyncio.Future[os.statvfs_result]
    started: float
    deadline: float


def join_or_refuse(probe_deadline: float | None, now: float) -> str:
    """What a call does about the probe already running for its path: ``start`` one (none runs), ``join`` it
    (within its deadline), or ``refuse`` (past its deadline: the path is stuck, answer at once)."""
    if probe_deadline is None:
        return "start"
    return "join" if now < probe_deadline else "refuse"


class StatsProbes:
    """Single-flight ``statvfs`` per path (one instance per node servicer, used from one event loop)."""

    def __init__(self, statvfs: Callable[[str], os.statvfs_result] = os.statvfs) -> None:
        self._statvfs = statvfs
        self._running: dict[str, _Probe] = {}
        metrics.watch_stats(self)  # hung probes are a gauge of the node's metrics

    def stuck(self) -> list[str]:
        """Paths whose probe is past its deadline and still blocked."""
        now = time.monotonic()
        return [path for path, probe in self._running.items() if probe.deadline <= now]

    async def stats(self, path: str, timeout: float) -> VolumeStats:
        """``statvfs`` of ``path``; :class:`MountError` STALE for a broken mount, TIMEOUT for a hung one."""
        now = time.monotonic()
        probe = self._running.get(path)
        decision = join_or_refuse(None if probe is None else probe.deadline, now)
        if decision == "refuse":
            assert probe is not None
            metrics.volume_stats("refused", 0.0)
            raise MountError(
                MountErrorKind.TIMEOUT,
                f"statvfs of {path} has not answered for {now - probe.started:.0f}s (an earlier probe still waits)",
            )
        if probe is None:
            probe = self._start(path, now, timeout)
        outcome = "cancelled"
        try:
            st = await asyncio.wait_for(asyncio.shield(probe.future), max(probe.deadline - now, 0.0))
            outcome = "ok"
        except TimeoutError:
            outcome = "timeout"
            raise MountError(
                MountErrorKind.TIMEOUT, f"statvfs of {path} did not answer within {probe.deadline - probe.started:.0f}s"
            ) from None
        except OSError as exc:
            kind = MountErrorKind.STALE if exc.errno in _STALE else MountErrorKind.FAILED
            outcome = kind.value
            raise MountError(kind, f"statvfs of {path} failed: {exc.strerror}") from exc
        finally:
            metrics.volume_stats(outcome, time.monotonic() - now)
        return _stats_of(st)

    def _start(self, path: str, now: float, timeout: float) -> _Probe:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[os.statvfs_result] = loop.create_future()
        probe = _Probe(future, now, now + timeout)
        self._running[path] = probe

        def settle(result: os.statvfs_result | None, error: OSError | None) -> None:
            if self._running.get(path) is probe:
                del self._running[path]
            if error is not None:
                future.set_exception(error)
            else:
                assert result is not None
                future.set_result(result)
            future.exception()  # retrieved: nobody may be waiting any more

        def run() -> None:
            try:
                result, error = self._statvfs(path), None
            except OSError as exc:
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
                loop.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=run, name=f"statvfs {path}", daemon=True).start()
        return probe


def _stats_of(st: os.statvfs_result) -> VolumeStats:
    return VolumeStats(
        total_bytes=st.f_blocks * st.f_frsize,
        available_bytes=st.f_bavail * st.f_frsize,
        used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize,
        total_inodes=st.f_files,
        free_inodes=st.f_ffree,
        used_inodes=st.f_files - st.f_ffree,
    )
