"""Running kopf the way both shared-mode components need it: behind a Lease, logged in with the official
client's configuration, and keeping handler progress out of the objects' status."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


def configure_kopf(server_timeout: int = 60) -> None:
    """Register kopf's start-up settings and login (once per process, before :func:`run_as_leader`).

    A short watch timeout makes kopf re-list regularly, which re-delivers every object to event handlers:
    that is the resync that retries work whose first attempt failed.

    Scanning is off: every resource served is known at start (built-in ones, and the Tcfs CRD the operator
    waits for), so kopf need not watch CRDs and namespaces, which would take cluster-wide read access to them.
    """
    import kopf

    from cfs_csi import logsetup

    # Importing kopf added its handler that posts log lines as Kubernetes Events: redact those too.
    logsetup.protect_handlers()

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="cfs-csi.tencent.com")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="cfs-csi.tencent.com")
        settings.posting.level = logging.INFO
        settings.scanning.disabled = True
        settings.watching.server_timeout = int(server_timeout)  # the API wants whole seconds
        settings.watching.client_timeout = server_timeout + 30

    @kopf.on.login()
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)


async def run_as_leader(
    kubeconfig: str | None, lease: str, namespace: str, memo: dict[str, Any], leader_elect: bool
) -> None:
    """Wait for the Lease (if asked), run kopf until stopped, release the Lease; exit non-zero if it was lost.

    The Lease goes through the lean client of :mod:`.rest` (found from ``kubeconfig`` as the official one is).
    """
    import kopf

    from cfs_csi.kube.lease import LeaderElector
    from cfs_csi.kube.rest import Client

    stop = asyncio.Event()
    elector = None
    client = Client.from_kubeconfig(kubeconfig, user_agent=f"cfs-csi/{lease}")
    try:
        if leader_elect:
            elector = LeaderElector(client, lease, namespace, on_lost=stop.set)
            log.info("waiting to lead (Lease %s/%s)", namespace, lease)
            await elector.acquire()
            log.info("leading as %s", elector.identity)
            elector.start_renewing()
        try:
            await kopf.operator(clusterwide=True, standalone=True, memo=kopf.Memo(**memo), stop_flag=stop)
        finally:
            if elector is not None:
                await elector.release()
    finally:
        await client.aclose()
    if elector is not None and elector.lost:
        raise RuntimeError(f"lost the Lease {namespace}/{lease}; exiting so that a restart waits for it again")
