"""The real kubelet registers our node plugin: no node-driver-registrar, the plugin serves registration itself.

The plugin runs on the host (not in a pod), next to the harness's kubelet, whose root the host sees under the
node's directory; the kubelet (in the node's mount namespace) sees the same directory as ``/var/lib/kubelet``,
so the plugin announces its CSI socket by that path (``--kubelet-registration-path``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException, NotFoundException

from cfs_csi.devcluster import node
from cfs_csi.devcluster.cluster import Process, spawn
from tests.e2e.conftest import EXAMPLES, Kube, NodeCluster, NodeTools, wait_for

pytestmark = pytest.mark.e2e

DRIVER = "com.tencent.cloud.csi.cfs"
REGISTERED = "registered with the kubelet as"


def csinode_drivers(kube: Kube, name: str) -> dict[str, str]:
    """Driver name -> node id, as the kubelet wrote them in the node's CSINode object."""
    try:  # raw JSON: the typed client cannot read a CSINode without drivers ("drivers": null)
        response = kube.storage.read_csi_node(name, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    drivers = json.loads(response.data)["spec"].get("drivers") or []
    return {d["name"]: d["nodeID"] for d in drivers}


def registrations(plugin: Process) -> int:
    return plugin.log.read_text(errors="replace").count(REGISTERED)


@pytest.fixture
def plugin(node_cluster: NodeCluster, tmp_path: Path) -> Iterator[Process]:
    the_node = node_cluster.node
    kubelet_dir = the_node.layout.kubelet_dir
    csi_dir = kubelet_dir / "plugins" / DRIVER
    process = spawn("node-plugin", [
        sys.executable, "-m", "cfs_csi", "--log-level", "DEBUG", "serve", "--component=node",
        f"--endpoint=unix://{csi_dir}/csi.sock", f"--node-id={the_node.name}", f"--state-dir={tmp_path / 'state'}",
        f"--kubelet-dir={kubelet_dir}", f"--kubelet-registration-path={node.KUBELET_DIR}/plugins/{DRIVER}/csi.sock",
    ], tmp_path)  # fmt: skip
    try:
        yield process
    finally:
        process.stop()
        print(f"--- node plugin log (tail) ---\n{process.tail(40)}")
        kubelet_log = node_cluster.node.layout.logs / "kubelet.log"
        lines = [ln for ln in kubelet_log.read_text(errors="replace").splitlines() if "plugin" in ln.lower()]
        print("--- kubelet log, plugin lines (tail) ---\n" + "\n".join(lines[-20:]))
        shutil.rmtree(csi_dir, ignore_errors=True)


def restart_kubelet(cluster: NodeCluster, tools: NodeTools, wipe: Path | None = None) -> None:
    """Stop the kubelet, optionally wipe a directory of its, and start it again as the harness did."""
    the_node = cluster.node
    old = the_node.process("kubelet")
    old.stop()
    the_node.processes.remove(old)
    if wipe is not None:
        shutil.rmtree(wipe)
    layout = the_node.layout
    argv = node.kubelet_argv(tools.binaries["kubelet"], layout, layout.root / "kubelet.kubeconfig", the_node.name)
    the_node.processes.append(spawn("kubelet", [*the_node.enter(), *argv], layout.logs))


def test_the_real_kubelet_registers_the_plugin_and_again_after_a_wipe_and_a_restart(
    node_cluster: NodeCluster, node_tools: NodeTools, kube: Kube, plugin: Process
) -> None:
    name = node_cluster.node.name
    registry = node_cluster.node.layout.kubelet_dir / "plugins_registry"

    wait_for("the driver in the node's CSINode", lambda: csinode_drivers(kube, name).get(DRIVER) == name, timeout=60)
    assert registrations(plugin) == 1
    assert plugin.alive()

    # plugins_registry wiped under a running kubelet: the kubelet forgets the driver; the plugin makes its socket
    # again and the kubelet registers it again.
    for entry in registry.iterdir():
        entry.unlink()
    wait_for("a second registration", lambda: registrations(plugin) == 2, timeout=60)
    wait_for("the driver back in CSINode", lambda: csinode_drivers(kube, name).get(DRIVER) == name, timeout=60)

    # The kubelet restarts on a wiped plugins_registry (its directory made anew).
    restart_kubelet(node_cluster, node_tools, wipe=registry)
    wait_for("a third registration", lambda: registrations(plugin) == 3, timeout=120)
    wait_for("the driver in CSINode", lambda: csinode_drivers(kube, name).get(DRIVER) == name, timeout=60)
    assert plugin.alive()
    node_cluster.node.check()

    # SIGTERM: the plugin removes its socket and the kubelet takes the driver off the node.
    plugin.stop()
    assert not any(registry.iterdir())
    wait_for("the driver gone from CSINode", lambda: DRIVER not in csinode_drivers(kube, name), timeout=60)


# --- the first pod with a volume of ours, mounted through the real kubelet ---------------------------------------

FSID = "regtest0001"
HOST = "127.0.0.1"


@pytest.fixture
def plugin_in_node(node_cluster: NodeCluster, tmp_path: Path) -> Iterator[tuple[Process, Path]]:
    """The plugin as the DaemonSet runs it: in the node's mount namespace, acting below ``/var/lib/kubelet``.

    It bind-mounts export directories (``--mounter bind``), the way a node mounts CFS where no NFS client exists.
    """
    the_node = node_cluster.node
    exports = tmp_path / "exports"
    (exports / HOST / FSID).mkdir(parents=True)
    csi_dir = the_node.layout.kubelet_dir / "plugins" / DRIVER
    process = spawn("node-plugin-in-node", [
        *the_node.enter(), sys.executable, "-m", "cfs_csi", "--log-level", "DEBUG", "serve", "--component=node",
        f"--endpoint=unix://{node.KUBELET_DIR}/plugins/{DRIVER}/csi.sock", f"--node-id={the_node.name}",
        f"--state-dir={tmp_path / 'state'}", f"--kubelet-dir={node.KUBELET_DIR}", "--mounter=bind",
        f"--export-root={exports}",
    ], tmp_path)  # fmt: skip
    try:
        yield process, exports / HOST / FSID
    finally:
        process.stop()
        print(f"--- node plugin log (tail) ---\n{process.tail(40)}")
        shutil.rmtree(csi_dir, ignore_errors=True)


def test_a_pod_mounts_a_volume_of_ours_through_the_real_kubelet(
    node_cluster: NodeCluster, kube: Kube, plugin_in_node: tuple[Process, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.e2e.test_node_cluster import LONG_RUNNING, busybox_pod, gone, phase, ready_namespace

    plugin, export = plugin_in_node
    name = node_cluster.node.name
    wait_for("the driver in the node's CSINode", lambda: csinode_drivers(kube, name).get(DRIVER) == name, timeout=60)
    (export / "hello").write_text("from the file server\n")

    created_driver = False
    try:
        kube.apply_file(EXAMPLES / "csidriver.yaml")
        created_driver = True
    except ApiException as exc:
        if exc.status != 409:
            raise
    namespace = ready_namespace(kube, "node-volume")
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "node-volume-static"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                   "persistentVolumeReclaimPolicy": "Retain",
                   "csi": {"driver": DRIVER, "volumeHandle": f"static-{FSID}",
                           "volumeAttributes": {"host": HOST, "fsid": FSID, "vers": "3"}}}}  # fmt: skip
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "static"},
           "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": "node-volume-static",
                    "resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip
    kube.core.create_persistent_volume(pv)
    try:
        kube.core.create_namespaced_persistent_volume_claim(namespace, pvc)
        work = "cat /data/hello; echo from-the-pod > /data/written-by-the-pod"
        body = busybox_pod("user", LONG_RUNNING.format(work=work),
                           volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "static"}}],
                           mounts=[{"name": "data", "mountPath": "/data"}])  # fmt: skip
        started = time.monotonic()
        kube.core.create_namespaced_pod(namespace, body)
        wait_for("the pod Running", lambda: phase(kube, namespace, "user") == "Running", timeout=120)
        to_running = time.monotonic() - started
        written = export / "written-by-the-pod"
        wait_for("the pod's file on the file server", written.exists, timeout=30)
        assert written.read_text() == "from-the-pod\n"
        pod_log = lambda: kube.core.read_namespaced_pod_log("user", namespace)  # noqa: E731
        wait_for("the pod's log", lambda: "from the file server" in pod_log(), timeout=30)
        uid = kube.core.read_namespaced_pod("user", namespace).metadata.uid
        target = f"{node.KUBELET_DIR}/pods/{uid}/volumes/kubernetes.io~csi/node-volume-static/mount"
        assert f" {target} " in node_cluster.node.mountinfo()
        log = plugin.log.read_text(errors="replace")
        assert "NodePublishVolume request" in log and f"mounting {HOST}:/{FSID}/ at {target}" in log

        deleted = time.monotonic()
        kube.core.delete_namespaced_pod("user", namespace)
        wait_for("the pod deleted", lambda: gone(kube, namespace, "user"), timeout=90)
        wait_for("the mount gone from the node", lambda: f" {target} " not in node_cluster.node.mountinfo(),
                 timeout=60)  # fmt: skip
        to_unmounted = time.monotonic() - deleted
        assert "NodeUnpublishVolume request" in plugin.log.read_text(errors="replace")
        assert (export / "hello").exists()  # unpublishing never touches the data
    finally:
        for delete in (lambda: kube.core.delete_namespaced_pod("user", namespace, grace_period_seconds=0),
                       lambda: kube.core.delete_namespaced_persistent_volume_claim("static", namespace),
                       lambda: kube.core.delete_persistent_volume("node-volume-static")):  # fmt: skip
            with contextlib.suppress(NotFoundException):
                delete()
        if created_driver:
            kube.storage.delete_csi_driver(DRIVER)
    with capsys.disabled():
        print(
            f"\nfirst kubelet-driven publish: pod create to Running with the volume {to_running:.1f}s; "
            f"pod delete to mount gone {to_unmounted:.1f}s"
        )
