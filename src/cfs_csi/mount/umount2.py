"""Unmount with the ``umount2(2)`` system call instead of starting ``umount(8)`` (issue 15).

A ``umount`` command costs a process (spawn, exec, its own read of ``/proc/self/mountinfo``, the reap): about
4 ms of CPU a call. The system call costs microseconds, but it gives up what a child process gave for free:

- It may block in the kernel (a file server that does not answer) and a thread cannot be killed. So each call runs
  in a daemon thread of its own (no shared pool a hung server can fill; the process can still exit), at most one
  per target and flags (:class:`Unmounts`, single-flight like the ``statvfs`` probes of :mod:`.stats`): a call
  that finds the same step of the same target still blocked past its deadline answers TIMEOUT at once instead of
  piling up another thread; the ladder's next step (``MNT_FORCE``, then ``MNT_DETACH``) runs beside it and is what
  unblocks it (a forced unmount aborts the server's pending requests).
- The call's lock file (:class:`cfs_csi.mount.runner.Children`) must stay locked while the unmount runs, as it
  does while a command inherits it: the thread holds its own duplicate of the lock file's descriptor (``flock``
  belongs to the open file, so a duplicate keeps it) and closes it only when the system call returns. A call
  that gives up therefore leaves the target locked (ABORTED to later calls) until the kernel lets go; a plugin
  killed meanwhile cannot finish exiting while one of its threads is inside the system call, so its descriptors
  and the lock stay too, and a restarted plugin sees the target busy, as with a command stuck in the kernel.
- The thread reaches the target through its own duplicate of the parent's handle, so the caller may close its
  handle at any time (a number reused meanwhile is never acted through).

The target is ``/proc/self/fd/<parent>/<name>`` with ``UMOUNT_NOFOLLOW``: only the last component is looked up,
and a symbolic link swapped in at that name is not followed (it is no mount point: EINVAL). ``umount(8)`` as root
would have followed it. The kernel unmounts the mount whose root is exactly what that name leads to: the topmost
of stacked mounts, never another mount of the same file system elsewhere.

What the error numbers mean (:func:`outcome_of`, pure) is what ``umount(8)``'s words meant to the ladder: EINVAL
(not a mount point) and ENOENT (no such name) are "not mounted": done, as the mount table read after a failed
command showed; EBUSY is busy (not forced); ESTALE, EIO, ENOTCONN, EHOSTDOWN are a dead server (the next step);
anything else (EPERM: no CAP_SYS_ADMIN) fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import errno
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cfs_csi.metrics import record as metrics
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.stats import join_or_refuse
from cfs_csi.mount.targets import TargetRef

#: ``umount2`` flags (``<sys/mount.h>``).
MNT_FORCE = 1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8


class Outcome(enum.Enum):
    DONE = "done"  # unmounted, or nothing is mounted there
    BUSY = "busy"  # in use: a plain unmount is not forced
    SERVER_GONE = "server_gone"  # the server is dead or gone: the ladder's next step
    FAILED = "failed"  # anything else (no permission, ...)


_OUTCOMES = {
    0: Outcome.DONE,
    errno.EINVAL: Outcome.DONE,  # not a mount point (any more), or a symlink at the name
    errno.ENOENT: Outcome.DONE,  # no such name
    errno.EBUSY: Outcome.BUSY,
    errno.ESTALE: Outcome.SERVER_GONE,
    errno.EIO: Outcome.SERVER_GONE,
    errno.ENOTCONN: Outcome.SERVER_GONE,
    errno.EHOSTDOWN: Outcome.SERVER_GONE,
    errno.ECONNABORTED: Outcome.SERVER_GONE,
}


def outcome_of(error: int) -> Outcome:
    """What ``umount2`` returning ``error`` (0: success) means for the unmount ladder (pure)."""
    return _OUTCOMES.get(error, Outcome.FAILED)


def flag_words(flags: int) -> str:
    """``umount``'s option for ``flags``, for messages (pure): ``-f``, ``-l`` or nothing."""
    return "-l" if flags & MNT_DETACH else "-f" if flags & MNT_FORCE else ""


def _load_umount2() -> Callable[[str, int], int]:
    libc = ctypes.CDLL(None, use_errno=True)
    function = libc.umount2
    function.argtypes = (ctypes.c_char_p, ctypes.c_int)
    function.restype = ctypes.c_int

    def umount2(path: str, flags: int) -> int:
        """The errno of ``umount2(path, flags)``, 0 on success (ctypes releases the GIL meanwhile)."""
        return 0 if function(os.fsencode(path), flags) == 0 else ctypes.get_errno()

    return umount2


@dataclass(frozen=True)
class _Call:
    future: asyncio.Future[int]
    started: float
    deadline: float


class Unmounts:
    """Single-flight ``umount2`` per target and flags, each in a daemon thread (used from one event loop)."""

    def __init__(self, umount2: Callable[[str, int], int] | None = None) -> None:
        self._umount2 = umount2
        self._running: dict[tuple[str, int], _Call] = {}

    def census(self) -> tuple[int, int]:
        """How many unmounts are running, and how many of them are past their deadline (blocked in the kernel)."""
        now = time.monotonic()
        calls = list(self._running.values())
        return len(calls), sum(call.deadline <= now for call in calls)

    async def unmount(self, target: TargetRef, flags: int, timeout: float, keep_locked: Sequence[int] = ()) -> None:
        """Unmount ``target`` (``flags``: 0, MNT_FORCE or MNT_DETACH) within ``timeout`` seconds; nothing mounted
        there is success. :class:`MountError`: TIMEOUT when the kernel has not answered in time (the thread and
        the duplicates of ``keep_locked`` it holds stay until it does), STALE for a dead server (the ladder's next
        step), FAILED otherwise; the message reads like ``umount``'s."""
        shown = " ".join(["umount", *filter(None, [flag_words(flags)]), target.path])
        if timeout <= 0:
            raise MountError(MountErrorKind.TIMEOUT, f"no time left to run {shown}")
        now, key = time.monotonic(), (target.path, flags)
        call = self._running.get(key)
        decision = join_or_refuse(None if call is None else call.deadline, now)
        if decision == "refuse":
            assert call is not None
            metrics.mount_command("umount", "timeout", 0.0)
            raise MountError(
                MountErrorKind.TIMEOUT, f"{shown} has not returned for {now - call.started:.0f}s (still blocked)"
            )
        if call is None:
            call = self._start(key, target, flags | UMOUNT_NOFOLLOW, now, timeout, keep_locked)
        outcome = "cancelled"
        try:
            error = await asyncio.wait_for(asyncio.shield(call.future), max(call.deadline - now, 0.0))
        except TimeoutError:
            outcome = "timeout"
            raise MountError(
                MountErrorKind.TIMEOUT, f"{shown} did not return within {call.deadline - call.started:.0f}s"
            ) from None
        finally:
            if outcome != "timeout" and call.future.done() and call.future.exception() is None:
                outcome = "ok" if outcome_of(call.future.result()) is Outcome.DONE else "failed"
            metrics.mount_command("umount", outcome, time.monotonic() - now)
        result = outcome_of(error)
        if result is not Outcome.DONE:
            kind = MountErrorKind.STALE if result is Outcome.SERVER_GONE else MountErrorKind.FAILED
            raise MountError(kind, f"{shown} failed: {os.strerror(error)}")

    def _start(
        self, key: tuple[str, int], target: TargetRef, flags: int, now: float, timeout: float, keep: Sequence[int]
    ) -> _Call:
        if self._umount2 is None:
            self._umount2 = _load_umount2()
        umount2 = self._umount2
        loop = asyncio.get_running_loop()
        held: list[int] = []
        try:
            held.append(os.dup(target.parent_fd))  # the thread's own handle: the caller may close its one
            held.extend(os.dup(fd) for fd in keep)
        except BaseException:
            for fd in held:
                os.close(fd)
            raise
        via = f"/proc/self/fd/{held[0]}/{target.name}"
        call = _Call(loop.create_future(), now, now + timeout)
        self._running[key] = call

        def settle(error: int | Exception) -> None:
            if self._running.get(key) is call:
                del self._running[key]
            if isinstance(error, Exception):
                call.future.set_exception(error)
                call.future.exception()  # retrieved: nobody may be waiting any more
            else:
                call.future.set_result(error)

        def run() -> None:
            error: int | Exception
            try:
                error = umount2(via, flags)
            except Exception as exc:  # a bug, not an answer of the kernel: settled all the same
                error = exc
            finally:
                for fd in held:  # only now may the lock file be unlocked
                    os.close(fd)
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
                loop.call_soon_threadsafe(settle, error)

        try:
            threading.Thread(target=run, name=f"umount2 {target.path}", daemon=True).start()
        except BaseException:
            del self._running[key]
            for fd in held:
                os.close(fd)
            raise
        return call


#: The node's unmounts (one event loop per process).
UNMOUNTS = Unmounts()
