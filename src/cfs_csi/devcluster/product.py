"""The whole product on the dev cluster, wired exactly as the chart wires it (``dev-cluster up --product``).

Nothing is started by hand: our image and those of csi-provisioner and csi-snapshotter are built (cached) and
imported into the real node's containerd, the VolumeSnapshot CRDs and the snapshot controller are added to the
control plane (:mod:`cfs_csi.devcluster.snapshots`), and the chart is installed with helm in its "try it without
a Tencent Cloud account" mode. So the controller pod (csi-provisioner, csi-snapshotter, our controller, the
operator and the CFS emulator), the node DaemonSet and the service accounts of the operator's Deployments are
what a cluster would run, restarted by the kubelet as a cluster would restart them. The dev node has no pod
network for the API server's Service and no kube-proxy, so the chart's pods use the host network and reach the
API server on its loopback address (values below). csi-resizer is left out: its module is not served here.

The values and the usage text are pure; :func:`install` and :func:`uninstall` do the I/O. The e2e tests install
the product through the same functions.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from cfs_csi.devcluster import helm as chart
from cfs_csi.devcluster import images, snapshots, tools
from cfs_csi.devcluster.cluster import ControlPlane, free_port
from cfs_csi.devcluster.node import Node

EMULATOR_HOST_DIR = "/var/lib/cfs-csi-emulator"  # the chart's default emulator.hostDir, as the node sees it
CONTROLLER_SELECTOR = "app=csi-provisioner-cfsplugin"
EXAMPLES = chart.REPO / "deploy" / "examples"


class ProductUnavailable(RuntimeError):
    """This machine cannot build the images (podman, mmdebstrap...): callers skip or report, with why."""


def chart_values(image: str, server: str, emulator_port: int, health_port: int) -> dict[str, str]:
    """``--set`` values of the chart on the dev node: our image as built (never pulled), the emulator on,
    host network and the API server's loopback address for the controller pod, a free health port for the
    node plugin (the node shares the host's ports)."""
    repository, tag = image.rsplit(":", 1)
    api = urllib.parse.urlsplit(server)
    if not api.hostname or not api.port:
        raise ValueError(f"not a URL with a host and a port: {server!r}")
    return {
        "image.repository": repository, "image.tag": tag, "image.pullPolicy": "Never",
        "emulator.enabled": "true", "emulator.port": str(emulator_port),
        "controller.hostNetwork": "true", "controller.livenessProbe": "false",
        "apiServer.host": api.hostname, "apiServer.port": str(api.port),
        "node.healthPort": str(health_port),
        # csi-resizer is not served by the Go module proxy here, so no image of it exists on the node;
        # csi-snapshotter is built from its module like csi-provisioner.
        "controller.resizer": "false", "controller.snapshotter": "true",
    }  # fmt: skip


@dataclass(frozen=True)
class Product:
    node: Node
    emulator_url: str
    exports: Path  # the emulator's export root, as the host sees it
    image: str  # ours, as installed
    install_to_ready: float  # seconds from helm install to the controller pod Ready and the emulator answering


def usage(plane: ControlPlane, kubectl: Path, product: Product) -> str:
    """What a user types next, with the kubectl that matches the server."""
    k = f"{kubectl} --kubeconfig={plane.kubeconfig}"
    return "\n".join([
        f"cfs-csi is installed: helm release {chart.RELEASE} in {chart.NAMESPACE}, image {product.image}, "
        f"the CFS emulator in the controller pod at {product.emulator_url}",
        f"  export KUBECONFIG={plane.kubeconfig}",
        f"  alias kubectl={kubectl}   # built at the server's version",
        "Dedicated mode (a file system per claim):",
        f"  {k} apply -f {EXAMPLES / 'storageclass-cfs-normal.yaml'} -f {EXAMPLES / 'pvc-cfs-normal.yaml'}",
        "Shared mode (sub-directories of one file system per class):",
        f"  {k} apply -f {EXAMPLES / 'storageclass-cfs-share.yaml'} -f {EXAMPLES / 'pvc-cfs-share-1.yaml'}",
        f"  {k} get pvc,pv -A; {k} get tcfs -n {chart.NAMESPACE}",
        "Snapshots of a dedicated claim (the snapshot controller and its CRDs run here): the class, then a"
        " VolumeSnapshot of cfs-normal and a claim whose dataSource names it:",
        f"  {k} apply -f {EXAMPLES / 'volumesnapshotclass-cfs.yaml'}",
        f"The file systems' data is under {product.exports} (the emulator's exports).",
    ])  # fmt: skip


# --- I/O -----------------------------------------------------------------------------------------------------


def _api(plane: ControlPlane) -> httpx.Client:
    tls = ssl.create_default_context(cafile=str(plane.pki.ca_cert))
    tls.load_cert_chain(str(plane.pki.admin_cert), str(plane.pki.admin_key))
    return httpx.Client(base_url=plane.server, verify=tls, timeout=10)


def _controller_ready(api: httpx.Client) -> bool:
    pods = api.get(f"/api/v1/namespaces/{chart.NAMESPACE}/pods", params={"labelSelector": CONTROLLER_SELECTOR})
    items = pods.raise_for_status().json().get("items") or []
    return bool(items) and all(
        any(c.get("type") == "Ready" and c.get("status") == "True" for c in (p.get("status") or {}).get("conditions")
            or []) for p in items
    )  # fmt: skip


def _emulator_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/admin/filesystems", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(what: str, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s")


def run_helm(helm: Path, plane: ControlPlane, *args: str, timeout: float = 180) -> str:
    argv = [str(helm), *args, "--kubeconfig", str(plane.kubeconfig), "--namespace", chart.NAMESPACE]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def install(plane: ControlPlane, node: Node, helm: Path, extra: Mapping[str, str] | None = None,
            timeout: float = 240) -> Product:  # fmt: skip
    """Build and import the images, ``helm install`` the chart, wait until the controller pod is Ready and the
    emulator answers; on failure the release is uninstalled again."""
    reasons = images.check_prerequisites()
    if reasons:
        raise ProductUnavailable("images cannot be built on this machine: " + "; ".join(reasons))
    try:
        built = [images.ensure_image(), *(images.ensure_sidecar_image(name) for name in images.SIDECAR_TOOLS)]
    except images.ImageError as exc:
        raise ProductUnavailable(f"the images could not be built: {exc}") from None
    for image in built:
        node.import_image(image.archive)
    ours = built[0]
    ensure_snapshots(plane)
    port = free_port()
    values = {**chart_values(ours.name, plane.server, port, free_port()), **(extra or {})}
    started = time.monotonic()
    run_helm(helm, plane, "install", chart.RELEASE, str(chart.CHART), "--wait=false",
             *[f"--set={key}={value}" for key, value in values.items()])  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        with _api(plane) as api:
            _wait("the controller pod", lambda: _controller_ready(api), timeout)
        _wait("the CFS emulator", lambda: _emulator_answers(url), 60)
    except BaseException:
        uninstall(plane, node, helm)
        raise
    exports = node.layout.var_lib / EMULATOR_HOST_DIR.removeprefix("/var/lib/") / "exports"
    return Product(node, url, exports, ours.name, time.monotonic() - started)


def ensure_snapshots(plane: ControlPlane) -> None:
    """The VolumeSnapshot CRDs and the snapshot controller, as a cluster that offers snapshots has them."""
    found = tools.ensure(["kubectl", "snapshot-controller"])
    snapshots.install_crds(plane, found["kubectl"])
    if not any(process.name == "snapshot-controller" for process in plane.processes):
        snapshots.start_controller(plane, found["snapshot-controller"])


def uninstall(plane: ControlPlane, node: Node, helm: Path, timeout: float = 120) -> None:
    """``helm uninstall`` (waiting for the pods to go), then remove the emulator's data on the node."""
    run_helm(helm, plane, "uninstall", chart.RELEASE, "--wait", f"--timeout={int(timeout)}s", timeout=timeout + 30)

    def pods_gone() -> bool:
        with _api(plane) as api:
            listed = api.get(f"/api/v1/namespaces/{chart.NAMESPACE}/pods",
                             params={"labelSelector": "app.kubernetes.io/name=cfs-csi"})  # fmt: skip
            return not json.loads(listed.raise_for_status().text).get("items")

    _wait("the chart's pods gone", pods_gone, timeout)
    shutil.rmtree(node.layout.var_lib / EMULATOR_HOST_DIR.removeprefix("/var/lib/"), ignore_errors=True)
