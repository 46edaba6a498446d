"""Run an external command as an argument list, never through a shell, and never without a deadline.

A ``mount`` or ``umount`` that is left running after its caller gave up is how stacked mounts happen: the retry
starts a second one on the same target. So every child belongs to the call that started it (:class:`Children`,
set for the call with :func:`owned_by`): on a timeout, a cancelled call (the client's deadline, a cancel) or a
stop (:func:`kill_all` on SIGTERM) its whole process group is killed. A child stuck in the kernel may not die at
once (a request to a dead NFS or FUSE server that was already sent cannot be interrupted), nor a helper it forked
(``mount.nfs``). Every one of them inherits the call's lock file (:attr:`Children.inherit`), so the file stays
locked until the last has exited: :mod:`cfs_csi.driver.locks` holds the call's keys until then, and a restarted
plugin sees the target as busy too.

How (issue 15): a child is started by :class:`subprocess.Popen` (``vfork``, and every descriptor but
``pass_fds`` closed in the child), its stdout and stderr go into one pipe that the event loop reads, and its exit
is seen through a pidfd (Linux 5.3) on the event loop; without pidfds, a daemon thread per child waits for it. No
asyncio subprocess transport, no child-watcher thread per command. (``os.posix_spawn`` was tried: it closes
nothing it is not told to, and under concurrent calls a ``mount`` was seen holding another call's lock file.)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from cfs_csi.metrics import record as metrics
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.umount2 import UNMOUNTS

log = logging.getLogger(__name__)

#: How long a timed-out call waits for its killed command to be reaped before answering anyway (the command's
#: locks stay held until it exits).
_REAP_SECONDS = 0.2
#: Output kept from one command (the rest is read and dropped): enough for any error message of mount.
_OUTPUT_LIMIT = 64 * 1024


@dataclass
class Children:
    """What the commands of one call inherit: the call's lock file."""

    inherit: tuple[int, ...] = ()


@dataclass(eq=False)
class _Command:
    """A running child: its pid (also its process group's id), its output so far, and its exit."""

    argv0: str
    process: subprocess.Popen[bytes]
    exited: asyncio.Future[int]
    output_done: asyncio.Future[None]
    output: bytearray = field(default_factory=bytearray)
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.exited.result() if self.exited.done() else None


_OWNER: ContextVar[Children | None] = ContextVar("cfs_csi_children", default=None)
#: Every child running now, for :func:`kill_all`.
_RUNNING: set[_Command] = set()
_stopping = False


@contextlib.contextmanager
def owned_by(children: Children) -> Iterator[Children]:
    """Within this block, commands run on behalf of ``children``'s call."""
    token = _OWNER.set(children)
    try:
        yield children
    finally:
        _OWNER.reset(token)


def inherited() -> tuple[int, ...]:
    """The descriptors that whatever runs for the current call must keep open while it runs (its lock file)."""
    owner = _OWNER.get()
    return owner.inherit if owner is not None else ()


def stopping() -> bool:
    """Whether the plugin is stopping (:func:`kill_all` was called): nothing new is started."""
    return _stopping


def census() -> tuple[int, int]:
    """How many commands (and ``umount2`` calls) are running now, and how many of them were killed and have not
    exited (or are past their deadline): stuck in the kernel on a dead server; read by the metrics at each scrape."""
    running = list(_RUNNING)
    calls, blocked = UNMOUNTS.census()
    return len(running) + calls, sum(command.killed for command in running) + blocked


metrics.watch_commands(census)


def kill_all() -> int:
    """Kill every running command's process group (the plugin is stopping); how many there were."""
    global _stopping
    _stopping = True
    for command in list(_RUNNING):
        _kill(command)
    return len(_RUNNING)


def _kill(command: _Command) -> None:
    # The group outlives its leader while a member (a mount.nfs helper) runs, and the kernel does not reuse a pid
    # that is still a group's id, so this never reaches another process.
    command.killed = True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(command.pid, signal.SIGKILL)


def _spawn(argv: Sequence[str], keep_fds: Sequence[int], output: int) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own: stdin /dev/null, stdout and stderr ``output``, ``keep_fds`` open under
    their numbers and nothing else of ours."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        pass_fds=tuple(keep_fds),
        close_fds=True,
        start_new_session=True,
    )


def _start(argv: Sequence[str], keep_fds: Sequence[int]) -> _Command:
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        os.set_blocking(write_end, True)
        process = _spawn(argv, keep_fds, write_end)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    command = _Command(argv[0], process, loop.create_future(), loop.create_future())
    _read_output(loop, read_end, command)
    _watch_exit(loop, command)
    _RUNNING.add(command)
    return command


def _read_output(loop: asyncio.AbstractEventLoop, fd: int, command: _Command) -> None:
    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            command.output += chunk[: max(0, _OUTPUT_LIMIT - len(command.output))]
            return
        loop.remove_reader(fd)
        os.close(fd)
        command.output_done.set_result(None)

    loop.add_reader(fd, readable)


def _watch_exit(loop: asyncio.AbstractEventLoop, command: _Command) -> None:
    def settle(status: int) -> None:
        _RUNNING.discard(command)
        command.process.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        command.exited.set_result(code)
        if command.killed:
            log.info("killed command %s (pid %d) has exited", command.argv0, command.pid)

    try:
        pidfd = os.pidfd_open(command.pid)
    except OSError as exc:  # no pidfds (Linux < 5.3): a thread of its own waits for this child
        if exc.errno not in (errno.ENOSYS, errno.EPERM):
            raise

        def wait() -> None:
            _, status = os.waitpid(command.pid, 0)
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
                loop.call_soon_threadsafe(settle, status)

        threading.Thread(target=wait, name=f"wait {command.pid}", daemon=True).start()
        return

    def exited() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(command.pid, 0)  # it has exited: this does not block
        settle(status)

    loop.add_reader(pidfd, exited)


async def run(
    argv: Sequence[str], timeout: float, pass_fds: Sequence[int] = (), shown: tuple[str, str] | None = None
) -> str:
    """Run ``argv`` and return its output (stdout and stderr); raise :class:`MountError` on failure or timeout.

    The command runs in its own session so that the whole group (``mount`` and the ``mount.nfs`` helper it
    forks) can be killed, not just the parent. ``pass_fds`` are inherited under the same numbers (for
    ``/proc/self/fd/N`` arguments); ``shown`` = (argument, what to call it) names such an argument by the
    target's path in messages.
    """
    if timeout <= 0:
        raise MountError(MountErrorKind.TIMEOUT, f"no time left to run {argv[0]}")
    if _stopping:
        raise MountError(MountErrorKind.FAILED, f"{argv[0]} not started: the plugin is stopping")
    owner = _OWNER.get()
    inherit = owner.inherit if owner is not None else ()
    log.debug("running %s (timeout %.1fs)", list(argv), timeout)
    try:
        command = _start(argv, (*pass_fds, *inherit))
    except OSError as exc:
        metrics.mount_command(argv[0], "not_started", 0.0)
        raise MountError(MountErrorKind.FAILED, f"{argv[0]} could not be started: {exc.strerror}") from None
    started, outcome = time.monotonic(), "cancelled"
    try:
        output = await _finish(command, argv, timeout, shown)
        outcome = "ok"
        return output
    except MountError as exc:
        outcome = exc.kind.value
        raise
    finally:
        metrics.mount_command(argv[0], outcome, time.monotonic() - started)


async def _finish(command: _Command, argv: Sequence[str], timeout: float, shown: tuple[str, str] | None) -> str:
    """:func:`run`'s wait for ``command``: its output, or :class:`MountError`."""
    finished = asyncio.gather(command.exited, command.output_done)
    try:
        # Shielded: a timeout or a cancelled call must not cancel the futures the loop settles when the child ends.
        await asyncio.wait_for(asyncio.shield(finished), timeout)
    except TimeoutError:
        _kill(command)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(command.exited), _REAP_SECONDS)
        still = "" if command.returncode is not None else f" (pid {command.pid} has not exited yet)"
        raise MountError(
            MountErrorKind.TIMEOUT, f"{argv[0]} did not finish within {timeout:.0f}s and was killed{still}"
        ) from None
    except asyncio.CancelledError:
        if command.returncode is None:
            log.warning("%s: the call was cancelled; killing it (pid %d)", argv[0], command.pid)
            _kill(command)
        raise
    output = command.output.decode(errors="replace")
    if command.returncode != 0:
        if _stopping:
            raise MountError(MountErrorKind.FAILED, f"{argv[0]} was killed: the plugin is stopping")
        detail = output.strip() or f"exit code {command.returncode}"
        kind = failure_kind(detail)
        words = [arg for arg in argv if arg != "--no-canonicalize"][:2]
        message = f"{' '.join(words)} failed: {detail}"
        raise MountError(kind, message.replace(*shown) if shown else message)
    return output


#: What ``mount.nfs`` says when the server itself reports that the export path does not exist.
_EXPORT_MISSING = "reason given by server: No such file or directory"


def failure_kind(detail: str) -> MountErrorKind:
    """NOT_FOUND only where the server says the export path does not exist; everything else is FAILED.

    A bare "No such file or directory" may be about the mount point or a helper program (our side, not the
    volume), and "access denied by server" is also what a server answers a client its permission group does not
    admit: neither proves the export is missing, so both stay FAILED (INTERNAL), with the server's words.
    """
    return MountErrorKind.NOT_FOUND if _EXPORT_MISSING in detail else MountErrorKind.FAILED
