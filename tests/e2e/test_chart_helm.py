"""``helm install``, ``upgrade`` and ``uninstall`` of the chart against the real API server.

No kubelet runs here, so no pod starts; what is checked is what helm and the API server do with the objects: the
version the chart reads from the server, the image an upgrade rolls out, and what an uninstall leaves behind.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from cfs_csi.devcluster import helm as chart
from cfs_csi.devcluster.cluster import ControlPlane
from tests.e2e.conftest import Kube

NAMESPACE = chart.NAMESPACE

HELM_OWNED = {
    "annotations": {"meta.helm.sh/release-name": chart.RELEASE, "meta.helm.sh/release-namespace": NAMESPACE},
    "labels": {"app.kubernetes.io/managed-by": "Helm"},
}


def run_helm(helm: Path, plane: ControlPlane, *args: str) -> str:
    argv = [str(helm), *args, "--kubeconfig", str(plane.kubeconfig), "--namespace", NAMESPACE]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"helm {' '.join(args[:2])}: {result.stderr}"
    return result.stdout


def adopt(dynamic: DynamicClient, api_version: str, kind: str, name: str) -> None:
    """Mark a cluster-wide object other tests made as the release's, as an admin adopting an install would."""
    resource = dynamic.resources.get(api_version=api_version, kind=kind)
    with contextlib.suppress(NotFoundError):
        dynamic.patch(resource, name=name, body={"metadata": HELM_OWNED}, content_type="application/merge-patch+json")


def test_helm_installs_upgrades_and_uninstalls_against_the_api_server(
    crd: None, kube: Kube, dynamic: DynamicClient, control_plane: ControlPlane, helm: Path
) -> None:
    adopt(dynamic, "apiextensions.k8s.io/v1", "CustomResourceDefinition", "tcfs.tcfsoperator.k8s.io")
    adopt(dynamic, "storage.k8s.io/v1", "CSIDriver", "com.tencent.cloud.csi.cfs")
    image = "--set=image.repository=registry.example.com/cfs-csi"
    run_helm(helm, control_plane, "install", chart.RELEASE, str(chart.CHART), image, "--set=image.tag=0.1.0")
    try:
        # The chart read the server's version: a v1 CSIDriver, no attacher.
        driver = kube.storage.read_csi_driver("com.tencent.cloud.csi.cfs")
        assert (driver.spec.attach_required, driver.spec.fs_group_policy) == (False, "File")
        names = [d.metadata.name for d in kube.apps.list_namespaced_deployment(NAMESPACE).items]
        assert "csi-provisioner-cfsplugin" in names and "csi-attacher-cfsplugin" not in names
        assert images(kube) == {"registry.example.com/cfs-csi:0.1.0"}

        run_helm(helm, control_plane, "upgrade", chart.RELEASE, str(chart.CHART), "--reuse-values",
                 "--set", "image.tag=0.2.0")  # fmt: skip
        assert images(kube) == {"registry.example.com/cfs-csi:0.2.0"}
        operator = container_args(kube, "tcfs-operator")
        assert "--provisioner-image=registry.example.com/cfs-csi:0.2.0" in operator
    finally:
        run_helm(helm, control_plane, "uninstall", chart.RELEASE)
    assert "csi-provisioner-cfsplugin" not in [
        d.metadata.name for d in kube.apps.list_namespaced_deployment(NAMESPACE).items
    ]
    assert not kube.apps.list_namespaced_daemon_set(NAMESPACE).items
    assert "com.tencent.cloud.csi.cfs" not in [d.metadata.name for d in kube.storage.list_csi_driver().items]
    # The CRD stays (helm.sh/resource-policy: keep): removing it would delete every Tcfs.
    k8s.ApiextensionsV1Api(kube.api).read_custom_resource_definition("tcfs.tcfsoperator.k8s.io")


def images(kube: Kube) -> set[str]:
    """Our image, wherever the controller Deployment and node DaemonSet run it."""
    controller = kube.apps.read_namespaced_deployment("csi-provisioner-cfsplugin", NAMESPACE).spec.template.spec
    node = kube.apps.read_namespaced_daemon_set("csi-nodeplugin-cfsplugin", NAMESPACE).spec.template.spec
    return {c.image for c in [*controller.containers, *node.containers] if c.name in ("csi-cfs", "tcfs-operator")}


def container_args(kube: Kube, name: str) -> list[str]:
    pod = kube.apps.read_namespaced_deployment("csi-provisioner-cfsplugin", NAMESPACE).spec.template.spec
    [found] = [c for c in pod.containers if c.name == name]
    args: list[str] = found.args
    return args
