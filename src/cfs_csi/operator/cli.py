"""The ``cfs-csi operator`` command line (kept free of kopf and the Kubernetes client until it runs)."""

from __future__ import annotations

import argparse
import os

from cfs_csi.cloud.factory import add_backend_arguments


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
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="act only while holding the Lease cfs-csi-operator (default: on)",
    )
    add_backend_arguments(p)
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from cfs_csi.operator.main import run

    return run(args)
