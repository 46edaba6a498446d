"""The ``cfs-csi operator`` command line (cheap to import: the operator's modules load only when it runs)."""

from __future__ import annotations

import argparse
import os

from cfs_csi.cloud.factory import add_backend_arguments
from cfs_csi.kube.liveness import add_health_argument


def add_operator_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("operator", help="the shared-mode operator (storageclass and tcfs controllers)")
    p.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE", "kube-system"),
        help="where Tcfs objects and provisioner Deployments live (default: kube-system)",
    )
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, then in-cluster")
    p.add_argument("--install-crd", action="store_true", help="create the Tcfs CRD if it is missing")
    p.add_argument(
        "--provisioner-image",
        default=os.environ.get("CFS_CSI_IMAGE", "cfs-csi:latest"),
        help="image of the sub-directory provisioner Deployments (env CFS_CSI_IMAGE)",
    )
    p.add_argument("--provisioner-service-account", default="cfs-csi-subdir-provisioner")
    p.add_argument("--provisioner-replicas", type=int, default=1)
    p.add_argument(
        "--provisioner-image-pull-policy",
        choices=("Always", "IfNotPresent", "Never"),
        default="IfNotPresent",
        help="imagePullPolicy of the provisioner pods (the chart passes image.pullPolicy)",
    )
    p.add_argument(
        "--provisioner-host-network",
        action="store_true",
        help="run the provisioner pods in the node's network (where pods have no network of their own)",
    )
    p.add_argument(
        "--provisioner-metrics-port",
        type=int,
        default=0,
        help="the provisioner pods serve Prometheus metrics on this port, named 'metrics' (default 0: none)",
    )
    p.add_argument(
        "--provisioner-health-port",
        type=int,
        default=0,
        help="the provisioner pods serve /healthz on this port, their liveness probe (default 0: none)",
    )
    p.add_argument(
        "--provisioner-credentials-secret",
        default="",
        metavar="SECRET",
        help="the Secret with the cloud keys, mounted in the provisioner pods, which set directory quotas with "
        "them (default: none: the pods use their environment or the CVM role)",
    )
    p.add_argument(
        "--provisioner-api-server",
        type=_api_server,
        default=None,
        metavar="HOST:PORT",
        help="the API server the provisioner pods call, instead of the kubernetes Service (no kube-proxy)",
    )
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="act only while holding the Lease cfs-csi-operator (default: on)",
    )
    add_health_argument(p)
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics (GET /metrics) on this port: reconciles by outcome, Tcfs by condition, "
        "CFS API calls; 0: off",
    )
    add_backend_arguments(p)
    p.set_defaults(run=_run)


def _api_server(text: str) -> tuple[str, str]:
    from cfs_csi.operator.desired import parse_api_server

    try:
        return parse_api_server(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from cfs_csi.operator.main import run

    return run(args)
