"""Single-flight statvfs: the decision table, and a stuck path that never costs a second thread."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.stats import StatsProbes, join_or_refuse


@pytest.mark.parametrize(
    ("probe_deadline", "now", "decision"),
    [(None, 5.0, "start"), (10.0, 5.0, "join"), (10.0, 10.0, "refuse"), (10.0, 11.0, "refuse")],
)
def test_join_or_refuse(probe_deadline: float | None, now: float, decision: str) -> None:
    assert join_or_refuse(probe_deadline, now) == decision


async def test_a_stuck_path_is_probed_once_and_answered_at_once_afterwards() -> None:
    release = threading.Event()
    calls: list[str] = []
    real = os.statvfs("/")

    def statvfs(path: str) -> os.statvfs_result:
        calls.append(path)
        if path.startswith("/hung"):
            release.wait(30)
        if path == "/stale":
            raise OSError(errno.ESTALE, "Stale file handle")
        return real

    probes = StatsProbes(statvfs)
    try:
        for _ in range(3):
            for path in ("/hung/a", "/hung/b"):
                with pytest.raises(MountError) as error:
                    await probes.stats(path, 0.05)
                assert error.value.kind is MountErrorKind.TIMEOUT
        assert sorted(probes.stuck()) == ["/hung/a", "/hung/b"]
        assert calls.count("/hung/a") == 1 and calls.count("/hung/b") == 1
        assert (await probes.stats("/healthy", 30)).total_bytes == real.f_blocks * real.f_frsize
        with pytest.raises(MountError) as error:
            await probes.stats("/stale", 30)
        assert error.value.kind is MountErrorKind.STALE
    finally:
        release.set()
