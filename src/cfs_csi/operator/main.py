"""``cfs-csi operator``: the shared-mode operator, run next to the CSI controller in the controller pod.

Only one instance acts at a time (the Lease ``cfs-csi-operator``); the CRD can be installed at start-up. The
process loads neither kopf nor the official Kubernetes client: informers, events, the Lease and every write go
through :mod:`cfs_csi.kube` (kopf and ``kubernetes.client`` made it 67 MB idle before it did any work).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from cfs_csi.kube.rest import ApiError, Client
from cfs_csi.operator.shared import TCFS_GROUP, TCFS_PLURAL, TCFS_VERSION

if TYPE_CHECKING:
    from cfs_csi.driver.health import HttpServer
    from cfs_csi.operator.context import OperatorContext

log = logging.getLogger(__name__)

CRD_NAME = "tcfs.tcfsoperator.k8s.io"
LEASE = "cfs-csi-operator"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crd_manifest() -> dict[str, Any]:
    """The Tcfs CRD shipped with the package (the Helm chart's files/tcfs-crd.yaml is a copy; a test checks)."""
    text = resources.files("cfs_csi.operator").joinpath("tcfs-crd.yaml").read_text()
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def run(args: argparse.Namespace) -> int:
    from cfs_csi.kube.leading import few_malloc_arenas

    few_malloc_arenas()
    asyncio.run(_operate(args))
    return 0


async def _operate(args: argparse.Namespace) -> None:
    from cfs_csi.cloud.factory import backend_from_arguments
    from cfs_csi.driver.health import start_health
    from cfs_csi.kube.leading import lead_and_run
    from cfs_csi.operator.context import OperatorContext
    from cfs_csi.operator.desired import ProvisionerTemplate, provisioner_cloud_args
    from cfs_csi.operator.handlers import Operator

    client = Client.from_kubeconfig(args.kubeconfig, user_agent=LEASE)
    context = exposition = health = None
    try:
        if args.install_crd:
            await install_crd(client)
        await wait_for_tcfs_api(client)
        context = OperatorContext(
            namespace=args.namespace,
            storage=backend_from_arguments(args),
            template=ProvisionerTemplate(image=args.provisioner_image,
                                         service_account=args.provisioner_service_account,
                                         replicas=args.provisioner_replicas,
                                         image_pull_policy=args.provisioner_image_pull_policy,
                                         host_network=args.provisioner_host_network,
                                         api_server=args.provisioner_api_server,
                                         cloud_args=provisioner_cloud_args(vars(args),
                                                                           args.provisioner_credentials_secret),
                                         credentials_secret=args.provisioner_credentials_secret,
                                         log_format=getattr(args, "log_format", "text"),
                                         health_port=args.provisioner_health_port,
                                         metrics_port=args.provisioner_metrics_port),
            client=client,
        )  # fmt: skip
        exposition = await serve_metrics(args.metrics_port, context)
        health = await start_health(getattr(args, "health_port", 0), context.liveness.check)
        await lead_and_run(client, LEASE, args.namespace, Operator(context).run, args.leader_elect,
                           liveness=context.liveness)  # fmt: skip
    finally:
        for server in (exposition, health):
            if server is not None:
                await server.stop()
        if context is not None and context.events is not None:
            await context.events.drain()
        await client.aclose()


async def serve_metrics(port: int, context: OperatorContext) -> HttpServer | None:
    """With ``port``: count the operator's events from now on and serve ``GET /metrics`` there (the Tcfs
    gauge reads ``context.tcfs``, the informer's cache, at each scrape); the server, to stop. None without."""
    if not port:
        return None
    from cfs_csi.driver.health import metrics_server
    from cfs_csi.metrics import record
    from cfs_csi.metrics.shared import OperatorMetrics

    metrics = OperatorMetrics(lambda: list(context.tcfs.values()))
    record.install(metrics)
    server = metrics_server(port, metrics.exposition)
    await server.start()
    return server


async def install_crd(client: Client) -> None:
    """Create the Tcfs CRD unless it exists; :func:`wait_for_tcfs_api` then waits until it is served."""
    try:
        await client.create(CRDS, crd_manifest())
        log.info("installed CRD %s", CRD_NAME)
    except ApiError as exc:
        if exc.status != 409:
            raise


async def wait_for_tcfs_api(client: Client, timeout: float = 60) -> None:
    """Wait until the API server serves Tcfs objects, so that the informer's first list finds them.

    Discovery is open to every authenticated account, so this needs no read access to CRDs.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            served = await client.get(f"/apis/{TCFS_GROUP}/{TCFS_VERSION}")
            if any(r.get("name") == TCFS_PLURAL for r in (served or {}).get("resources") or []):
                return
        except ApiError as exc:
            if exc.status != 404:
                raise
        if time.monotonic() > deadline:
            raise RuntimeError(f"{TCFS_GROUP}/{TCFS_VERSION} Tcfs is not served: apply the CRD (the Helm chart has "
                               "it) or run the operator with --install-crd")  # fmt: skip
        await asyncio.sleep(0.2)
