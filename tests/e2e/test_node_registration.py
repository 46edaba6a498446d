"""The real kubelet registers our node plugin: no node-driver-registrar, the plugin serves registration itself.

The plugin runs on the host (not in a pod), next to the harness's kubelet, whose root the host sees under the
node's directory; the kubelet (in the node's mount namespace) sees the same directory as ``/var/lib/kubelet``,
so the plugin announces its CSI socket by that path (``--kubelet-registration-path``).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from cfs_csi.devcluster import node
from cfs_csi.devcluster.cluster import Process, spawn
from tests.e2e.conftest import Kube, NodeCluster, NodeTools, wait_for

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
