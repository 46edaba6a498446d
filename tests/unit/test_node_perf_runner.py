"""runner (issue 15): commands started without asyncio's subprocess machinery still give their output, fail with
their words, are killed on time, keep the descriptors passed to them and get no other descriptor of ours."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from cfs_csi.mount import runner
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.runner import Children, owned_by


async def test_output_of_both_streams_is_returned() -> None:
    assert await runner.run(["sh", "-c", "echo out; echo err >&2"], 10) == "out\nerr\n"


async def test_a_failure_carries_the_commands_words() -> None:
    with pytest.raises(MountError) as error:
        await runner.run(["sh", "-c", "echo 'mount.nfs: access denied by server' >&2; exit 32"], 10)
    assert error.value.kind is MountErrorKind.FAILED
    assert error.value.message == "sh -c failed: mount.nfs: access denied by server"


async def test_a_missing_program_is_a_failure_not_a_crash() -> None:
    with pytest.raises(MountError) as error:
        await runner.run(["cfs-csi-no-such-program"], 10)
    assert error.value.kind is MountErrorKind.FAILED and "could not be started" in error.value.message


async def test_a_command_past_its_time_is_killed_with_its_group(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {child_pid}; wait"
    started = time.monotonic()
    with pytest.raises(MountError) as error:
        await runner.run(["sh", "-c", script], 0.5)
    assert error.value.kind is MountErrorKind.TIMEOUT
    assert time.monotonic() - started < 10
    pid = int(child_pid.read_text())
    for _ in range(100):  # the grandchild (a mount.nfs helper, say) dies with the group
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"pid {pid} survived its group's kill")
    assert not runner._RUNNING


async def test_a_cancelled_call_kills_its_command() -> None:
    task = asyncio.create_task(runner.run(["sleep", "60"], 30))
    await asyncio.sleep(0.3)
    (command,) = runner._RUNNING
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(asyncio.shield(command.exited), 10)
    assert command.returncode == -9 and not runner._RUNNING


async def test_each_command_gets_its_own_descriptors_and_no_others(tmp_path: Path) -> None:
    """Concurrent calls: each command sees the lock file of its own call, under the same number, and not the
    lock files of the others (a command holding another call's lock would keep that call's target busy)."""

    async def call(index: int) -> tuple[int, str]:
        fd = os.open(tmp_path / f"lock{index}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            with owned_by(Children(inherit=(fd,))):
                listing = await runner.run(["sh", "-c", "sleep 0.2; ls -l /proc/$$/fd"], 30)
        finally:
            os.close(fd)
        return fd, listing

    results = await asyncio.gather(*(call(index) for index in range(8)))
    for index, (fd, listing) in enumerate(results):
        locks = sorted(line.split()[-1] for line in listing.splitlines() if "/lock" in line)
        assert locks == [str(tmp_path / f"lock{index}")]
        assert f" {fd} -> {tmp_path / f'lock{index}'}" in listing
