"""Run an external command as an argument list, never through a shell, and never without a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence

from cfs_csi.mount.errors import MountError, MountErrorKind

log = logging.getLogger(__name__)

#: How long we wait for a killed command to be reaped; a process stuck in the kernel may never exit.
_REAP_SECONDS = 5.0


async def run(
    argv: Sequence[str], timeout: float, pass_fds: Sequence[int] = (), shown: tuple[str, str] | None = None
) -> str:
    """Run ``argv`` and return its stdout; raise :class:`MountError` on failure or timeout.

    The command runs in its own session so that on timeout the whole group (``mount`` and the
    ``mount.nfs`` helper it forks) is killed, not just the parent. ``pass_fds`` are inherited under the same
    numbers (for ``/proc/self/fd/N`` arguments); ``shown`` = (argument, what to call it) names such an argument
    by the target's path in messages.
    """
    log.debug("running %s (timeout %.0fs)", list(argv), timeout)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), _REAP_SECONDS)
        raise MountError(
            MountErrorKind.TIMEOUT, f"{argv[0]} did not finish within {timeout:.0f}s and was killed"
        ) from None
    if proc.returncode != 0:
        detail = (stderr or stdout).decode(errors="replace").strip() or f"exit code {proc.returncode}"
        kind = MountErrorKind.NOT_FOUND if "No such file or directory" in detail else MountErrorKind.FAILED
        words = [arg for arg in argv if arg != "--no-canonicalize"][:2]
        message = f"{' '.join(words)} failed: {detail}"
        raise MountError(kind, message.replace(*shown) if shown else message)
    return stdout.decode(errors="replace")
