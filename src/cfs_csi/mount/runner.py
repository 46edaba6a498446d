"""Run an external command as an argument list, never through a shell, and never without a deadline.

A ``mount`` or ``umount`` that is left running after its caller gave up is how stacked mounts happen: the retry
starts a second one on the same target. So every child belongs to the call that started it (:class:`Children`,
set for the call with :func:`owned_by`): on a timeout, a cancelled call (the client's deadline, a cancel) or a
stop (:func:`kill_all` on SIGTERM) its whole process group is killed. A child stuck in the kernel may not die at
once (a request to a dead NFS or FUSE server that was already sent cannot be interrupted), nor a helper it forked
(``mount.nfs``). Every one of them inherits the call's lock file (:attr:`Children.inherit`), so the file stays
locked until the last has exited: :mod:`cfs_csi.driver.locks` holds the call's keys until then, and a restarted
plugin sees the target as busy too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from cfs_csi.mount.errors import MountError, MountErrorKind

log = logging.getLogger(__name__)

#: How long a timed-out call waits for its killed command to be reaped before answering anyway (the command's
#: locks stay held until it exits).
_REAP_SECONDS = 0.2


@dataclass
class Children:
    """What the commands of one call inherit: the call's lock file."""

    inherit: tuple[int, ...] = ()


_OWNER: ContextVar[Children | None] = ContextVar("cfs_csi_children", default=None)
#: Every child running now, for :func:`kill_all`.
_RUNNING: set[asyncio.subprocess.Process] = set()
_REAPERS: set[asyncio.Future[None]] = set()
_stopping = False


@contextlib.contextmanager
def owned_by(children: Children) -> Iterator[Children]:
    """Within this block, commands run on behalf of ``children``'s call."""
    token = _OWNER.set(children)
    try:
        yield children
    finally:
        _OWNER.reset(token)


def kill_all() -> int:
    """Kill every running command's process group (the plugin is stopping); how many there were."""
    global _stopping
    _stopping = True
    for proc in list(_RUNNING):
        _kill(proc)
    return len(_RUNNING)


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run(
    argv: Sequence[str], timeout: float, pass_fds: Sequence[int] = (), shown: tuple[str, str] | None = None
) -> str:
    """Run ``argv`` and return its stdout; raise :class:`MountError` on failure or timeout.

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
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        pass_fds=(*pass_fds, *inherit),
    )
    _RUNNING.add(proc)
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        _kill(proc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), _REAP_SECONDS)
        still = "" if proc.returncode is not None else f" (pid {proc.pid} has not exited yet)"
        raise MountError(
            MountErrorKind.TIMEOUT, f"{argv[0]} did not finish within {timeout:.0f}s and was killed{still}"
        ) from None
    except asyncio.CancelledError:
        log.warning("%s: the call was cancelled; killing it (pid %d)", argv[0], proc.pid)
        _kill(proc)
        raise
    finally:
        if proc.returncode is None:
            _REAPERS.add(reaper := asyncio.ensure_future(_forget_when_done(proc)))
            reaper.add_done_callback(_REAPERS.discard)
        else:
            _RUNNING.discard(proc)
    if proc.returncode != 0:
        if _stopping:
            raise MountError(MountErrorKind.FAILED, f"{argv[0]} was killed: the plugin is stopping")
        detail = (stderr or stdout).decode(errors="replace").strip() or f"exit code {proc.returncode}"
        kind = failure_kind(detail)
        words = [arg for arg in argv if arg != "--no-canonicalize"][:2]
        message = f"{' '.join(words)} failed: {detail}"
        raise MountError(kind, message.replace(*shown) if shown else message)
    return stdout.decode(errors="replace")


#: What ``mount.nfs`` says when the server itself reports that the export path does not exist.
_EXPORT_MISSING = "reason given by server: No such file or directory"


def failure_kind(detail: str) -> MountErrorKind:
    """NOT_FOUND only where the server says the export path does not exist; everything else is FAILED.

    A bare "No such file or directory" may be about the mount point or a helper program (our side, not the
    volume), and "access denied by server" is also what a server answers a client its permission group does not
    admit: neither proves the export is missing, so both stay FAILED (INTERNAL), with the server's words.
    """
    return MountErrorKind.NOT_FOUND if _EXPORT_MISSING in detail else MountErrorKind.FAILED


async def _forget_when_done(proc: asyncio.subprocess.Process) -> None:
    await proc.wait()
    _RUNNING.discard(proc)
    log.info("killed command (pid %d) has exited", proc.pid)
