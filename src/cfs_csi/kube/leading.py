"""Run a component's work only while it holds its Lease, and stop it cleanly on SIGTERM or when the Lease is lost."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
from collections.abc import Awaitable, Callable

from cfs_csi.kube.lease import LeaderElector
from cfs_csi.kube.liveness import Liveness
from cfs_csi.kube.rest import Client

log = logging.getLogger(__name__)


async def lead_and_run(client: Client, lease: str, namespace: str, work: Callable[[], Awaitable[None]],
                       leader_elect: bool = True, liveness: Liveness | None = None) -> None:  # fmt: skip
    """Wait for the Lease (if asked), run ``work()`` until SIGTERM/SIGINT or the Lease is lost, release the Lease.

    Raises RuntimeError when the Lease was lost, so that the process exits non-zero and its restart waits for
    the Lease again (the work may have overlapped with the new leader's for an instant: never resume it).
    """
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    elector = None
    try:
        if leader_elect:
            elector = LeaderElector(client, lease, namespace, on_lost=stopping.set)
            if liveness is not None:
                # A round every retry (waiting) or renew period (leading), each bounded by the client's timeout.
                allowed = max(elector.retry_period, elector.renew_period) + 60.0
                elector.on_round = lambda: liveness.beat("lease", allowed)
                elector.on_round()
            log.info("waiting to lead (Lease %s/%s)", namespace, lease)
            acquiring = asyncio.ensure_future(elector.acquire())
            stopped = asyncio.ensure_future(stopping.wait())
            await asyncio.wait([acquiring, stopped], return_when=asyncio.FIRST_COMPLETED)
            if not acquiring.done():
                acquiring.cancel()
                return
            stopped.cancel()
            log.debug("leading as %s", elector.identity)  # the elector logged "<identity> leads lease ..."
            elector.start_renewing()
        running = asyncio.ensure_future(work())
        stopped = asyncio.ensure_future(stopping.wait())
        await asyncio.wait([running, stopped], return_when=asyncio.FIRST_COMPLETED)
        for task in (running, stopped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if elector is not None:
            await elector.release()
    if elector is not None and elector.lost:
        raise RuntimeError(f"lost the Lease {namespace}/{lease}; exiting so that a restart waits for it again")


def few_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before any worker thread starts (no-op elsewhere).

    Each thread that allocates gets an arena of its own, and keeps it: the API calls' worker threads and the
    watch threads of :mod:`.rest` read whole responses (the sub-directory provisioner held 4 MB more after 200
    claims with the default). Two arenas are plenty for a process that mostly waits.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl has no mallopt of this kind)
        ctypes.CDLL(None).mallopt(-8, arenas)  # M_ARENA_MAX
