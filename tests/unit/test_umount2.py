"""umount2 (issue 15): what each error number means to the unmount ladder, and the daemon-thread machinery: one
call per target and flags, an answer within the deadline while the kernel has not returned, the call's lock file
kept locked by the thread until it does. The blocking system call is stood in for by one that waits on an event
(tests/integration/test_node_umount2.py hangs the real one on a FUSE server)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cfs_csi.mount import mounter
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.targets import TargetRef
from cfs_csi.mount.umount2 import MNT_DETACH, MNT_FORCE, UMOUNT_NOFOLLOW, Outcome, Unmounts, flag_words, outcome_of


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (0, Outcome.DONE),
        (errno.EINVAL, Outcome.DONE),  # not a mount point: "not mounted"
        (errno.ENOENT, Outcome.DONE),  # no such name
        (errno.EBUSY, Outcome.BUSY),
        (errno.ESTALE, Outcome.SERVER_GONE),
        (errno.EIO, Outcome.SERVER_GONE),
        (errno.ENOTCONN, Outcome.SERVER_GONE),
        (errno.EHOSTDOWN, Outcome.SERVER_GONE),
        (errno.ECONNABORTED, Outcome.SERVER_GONE),
        (errno.EPERM, Outcome.FAILED),
        (errno.EACCES, Outcome.FAILED),
        (errno.ENOMEM, Outcome.FAILED),
    ],
)
def test_outcome_of_each_error(error: int, outcome: Outcome) -> None:
    assert outcome_of(error) is outcome


@pytest.mark.parametrize(("flags", "words"), [(0, ""), (MNT_FORCE, "-f"), (MNT_DETACH, "-l")])
def test_flag_words(flags: int, words: str) -> None:
    assert flag_words(flags) == words


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[TargetRef]:
    ref = TargetRef(os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY), "t", str(tmp_path / "t"))
    yield ref
    ref.close()


@pytest.mark.parametrize(
    ("error", "kind", "next_step"),
    [
        (errno.EBUSY, MountErrorKind.FAILED, False),
        (errno.EPERM, MountErrorKind.FAILED, False),
        (errno.ESTALE, MountErrorKind.STALE, True),
        (errno.EIO, MountErrorKind.STALE, True),
        (errno.ENOTCONN, MountErrorKind.STALE, True),
        (errno.EHOSTDOWN, MountErrorKind.STALE, True),
    ],
)
async def test_a_failure_reads_like_umounts_and_tells_the_ladder_what_next(
    parent: TargetRef, error: int, kind: MountErrorKind, next_step: bool
) -> None:
    with pytest.raises(MountError) as raised:
        await Unmounts(lambda path, flags: error).unmount(parent, 0, 5)
    assert raised.value.kind is kind
    assert raised.value.message == f"umount {parent.path} failed: {os.strerror(error)}"
    assert mounter._server_gone(raised.value) is next_step


async def test_the_path_and_flags_given_to_the_kernel(parent: TargetRef) -> None:
    seen: list[tuple[str, int, int]] = []

    def umount2(path: str, flags: int) -> int:
        fd = int(path.split("/")[4])
        seen.append((path, flags, os.fstat(fd).st_ino))
        return 0

    await Unmounts(umount2).unmount(parent, MNT_FORCE, 5)
    ((path, flags, inode),) = seen
    assert path.startswith("/proc/self/fd/") and path.endswith("/t")
    assert path != f"/proc/self/fd/{parent.parent_fd}/t"  # the thread's own duplicate of the handle
    assert inode == os.fstat(parent.parent_fd).st_ino
    assert flags == MNT_FORCE | UMOUNT_NOFOLLOW


def locked(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


async def test_a_blocked_call_answers_in_time_is_not_started_twice_and_keeps_the_lock(
    parent: TargetRef, tmp_path: Path
) -> None:
    release, calls = threading.Event(), []

    def umount2(path: str, flags: int) -> int:
        calls.append(flags)
        if flags & MNT_FORCE:
            return errno.EINVAL
        release.wait(30)
        return 0

    lock_path = tmp_path / "lock"
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    unmounts = Unmounts(umount2)
    with pytest.raises(MountError) as first:
        await unmounts.unmount(parent, 0, 0.3, keep_locked=(lock_fd,))
    assert first.value.kind is MountErrorKind.TIMEOUT
    os.close(lock_fd)  # the call is over; its thread's duplicate holds the lock
    assert locked(lock_path)
    assert unmounts.census() == (1, 1)
    # The same step again: refused at once, no second thread.
    with pytest.raises(MountError) as again:
        await unmounts.unmount(parent, 0, 5)
    assert again.value.kind is MountErrorKind.TIMEOUT and "still blocked" in again.value.message
    # Another step of the same target, and another target, run beside it.
    await unmounts.unmount(parent, MNT_FORCE, 5)
    other = TargetRef(parent.parent_fd, "other", parent.path + "-other")
    await unmounts.unmount(other, MNT_FORCE, 5)
    assert calls == [UMOUNT_NOFOLLOW, MNT_FORCE | UMOUNT_NOFOLLOW, MNT_FORCE | UMOUNT_NOFOLLOW]
    release.set()
    for _ in range(200):
        if unmounts.census() == (0, 0):
            break
        await asyncio.sleep(0.01)
    assert unmounts.census() == (0, 0) and not locked(lock_path)
    await unmounts.unmount(parent, 0, 5)  # the next call starts a new one
    assert calls[-1] == UMOUNT_NOFOLLOW


async def test_a_cancelled_call_leaves_its_thread_and_lock(parent: TargetRef, tmp_path: Path) -> None:
    release = threading.Event()
    lock_path = tmp_path / "lock"
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    unmounts = Unmounts(lambda path, flags: 0 if release.wait(30) else errno.EIO)
    task = asyncio.create_task(unmounts.unmount(parent, 0, 30, keep_locked=(lock_fd,)))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    os.close(lock_fd)
    assert locked(lock_path) and unmounts.census() == (1, 0)
    release.set()
    for _ in range(200):
        if not locked(lock_path):
            break
        await asyncio.sleep(0.01)
    assert not locked(lock_path)
