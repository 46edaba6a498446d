"""``cfs-csi operator``: the shared-mode operator, run next to the CSI controller in the controller pod.

Only one instance acts at a time (a Lease); the CRD can be installed at start-up; the handlers are kopf's,
all writes go through the official Kubernetes client.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from importlib import resources
from typing import Any

import yaml

from cfs_csi.cloud.factory import backend_from_arguments
from cfs_csi.kube.kopfrun import configure_kopf
from cfs_csi.operator.context import OperatorContext
from cfs_csi.operator.desired import ProvisionerTemplate
from cfs_csi.operator.shared import TCFS_GROUP, TCFS_PLURAL, TCFS_VERSION

log = logging.getLogger(__name__)

CRD_NAME = "tcfs.tcfsoperator.k8s.io"


def crd_manifest() -> dict[str, Any]:
    """The Tcfs CRD shipped with the package (the Helm chart's files/tcfs-crd.yaml is a copy; a test checks)."""
    text = resources.files("cfs_csi.operator").joinpath("tcfs-crd.yaml").read_text()
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        # Before the client is imported: it reads $KUBECONFIG once, and kopf's login goes through it.
        os.environ["KUBECONFIG"] = args.kubeconfig
    from cfs_csi.kube.client import api_client

    api = api_client(args.kubeconfig)
    if args.install_crd:
        install_crd(api)
    wait_for_tcfs_api(api)
    context = OperatorContext(
        namespace=args.namespace,
        storage=backend_from_arguments(args),
        template=ProvisionerTemplate(image=args.provisioner_image, service_account=args.provisioner_service_account,
                                     replicas=args.provisioner_replicas,
                                     image_pull_policy=args.provisioner_image_pull_policy,
                                     host_network=args.provisioner_host_network,
                                     api_server=args.provisioner_api_server),
        api=api,
    )  # fmt: skip
    configure_kopf(server_timeout=300)
    asyncio.run(_operate(context, args.kubeconfig, args.leader_elect))
    return 0


def install_crd(api: Any) -> None:
    """Create the Tcfs CRD unless it exists; :func:`wait_for_tcfs_api` then waits until it is served."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    try:
        k8s.ApiextensionsV1Api(api).create_custom_resource_definition(crd_manifest())  # type: ignore[arg-type]
        log.info("installed CRD %s", CRD_NAME)
    except ApiException as exc:
        if exc.status != 409:
            raise


def wait_for_tcfs_api(api: Any, timeout: float = 60) -> None:
    """Wait until the API server serves Tcfs objects: kopf only watches what is served when it starts.

    Discovery is open to every authenticated account, so this needs no read access to CRDs.
    """
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while True:
        try:
            served = k8s.CustomObjectsApi(api).get_api_resources(TCFS_GROUP, TCFS_VERSION)
            if any(r.name == TCFS_PLURAL for r in served.resources):
                return
        except ApiException as exc:
            if exc.status != 404:
                raise
        if time.monotonic() > deadline:
            raise RuntimeError(f"{TCFS_GROUP}/{TCFS_VERSION} Tcfs is not served: apply the CRD (the Helm chart has "
                               "it) or run the operator with --install-crd")  # fmt: skip
        time.sleep(0.5)


async def _operate(context: OperatorContext, kubeconfig: str | None, leader_elect: bool) -> None:
    from cfs_csi.kube.kopfrun import run_as_leader
    from cfs_csi.operator import storageclass, tcfs  # noqa: F401 - registers the handlers

    await run_as_leader(kubeconfig, "cfs-csi-operator", context.namespace, {"context": context}, leader_elect)
