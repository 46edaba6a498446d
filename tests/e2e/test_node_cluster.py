"""The real node of the e2e suite: containerd and the kubelet next to the loopback control plane.

A pod goes the whole way a cluster takes it (API server, scheduler, kubelet, containerd, runc) and its log comes
back through the API server from the kubelet; bringing a node up and down leaves nothing on the host.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from cfs_csi.devcluster import node, ociimage
from cfs_csi.devcluster.cluster import ControlPlane
from cfs_csi.devcluster.node import node_processes
from tests.e2e.conftest import Kube, NodeCluster, NodeTools, wait_for

pytestmark = pytest.mark.e2e


def host_tunables() -> dict[str, str]:
    return {t: Path(f"/proc/sys/{t}").read_text().strip() for t in node.KERNEL_TUNABLES}


def busybox_pod(name: str, script: str, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]],
                node_name: str | None = None) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {
        "hostNetwork": True, "restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
        "containers": [{"name": "main", "image": ociimage.BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                        "command": ["sh", "-c", script], "volumeMounts": mounts}],
        "volumes": volumes,
    }  # fmt: skip
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def phase(kube: Kube, namespace: str, name: str) -> str:
    return str(kube.core.read_namespaced_pod(name, namespace).status.phase)


def gone(kube: Kube, namespace: str, name: str) -> bool:
    try:
        kube.core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        return exc.status == 404
    return False


def ready_namespace(kube: Kube, name: str) -> str:
    """A namespace whose default ServiceAccount exists (the controller manager makes it; pods need it)."""
    kube.namespace(name)

    def has_account() -> bool:
        return any(a.metadata.name == "default" for a in kube.core.list_namespaced_service_account(name).items)

    wait_for(f"the default ServiceAccount of {name}", has_account, timeout=60)
    return name


# Runs until deleted; PID 1 of the container traps TERM, so deleting the pod does not wait for a SIGKILL.
LONG_RUNNING = "trap 'exit 0' TERM; {work}; while :; do sleep 1 & wait $!; done"


def test_a_host_network_pod_runs_on_the_real_node_and_its_log_comes_through_the_api_server(
    node_cluster: NodeCluster, kube: Kube, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    the_node = kube.core.read_node(node_cluster.node.name)
    assert [c.status for c in the_node.status.conditions if c.type == "Ready"] == ["True"]
    assert {(a.type, a.address) for a in the_node.status.addresses} >= {("InternalIP", "127.0.0.1")}

    namespace = ready_namespace(kube, "node-smoke")
    token = uuid.uuid4().hex
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    work = (f"echo line-from-the-pod {token}; echo {token} > /scratch/empty; cat /scratch/empty; "
            f"echo {token} > /host/written-by-the-pod")  # fmt: skip
    body = busybox_pod(
        "writer", LONG_RUNNING.format(work=work),
        volumes=[{"name": "scratch", "emptyDir": {}},
                 {"name": "host", "hostPath": {"path": str(host_dir), "type": "Directory"}}],
        mounts=[{"name": "scratch", "mountPath": "/scratch"}, {"name": "host", "mountPath": "/host"}],
    )  # fmt: skip
    created = time.monotonic()
    kube.core.create_namespaced_pod(namespace, body)
    wait_for("the pod Running", lambda: phase(kube, namespace, "writer") == "Running", timeout=120)
    to_running = time.monotonic() - created

    def logged() -> str:
        text: str = kube.core.read_namespaced_pod_log("writer", namespace)
        return text if token in text else ""

    log = wait_for("the pod's log through the API server", logged, timeout=30)
    assert log.splitlines()[:2] == [f"line-from-the-pod {token}", token]
    written = host_dir / "written-by-the-pod"
    wait_for("the file in the hostPath", written.exists, timeout=30)
    assert written.read_text().strip() == token
    pod = kube.core.read_namespaced_pod("writer", namespace)
    assert pod.spec.node_name == node_cluster.node.name  # placed by the real scheduler

    kube.core.delete_namespaced_pod("writer", namespace)
    wait_for("the pod deleted (the kubelet confirmed its end)", lambda: gone(kube, namespace, "writer"), timeout=60)
    pod_dir = node_cluster.node.layout.kubelet_dir / "pods" / pod.metadata.uid
    wait_for("the pod's directory (and emptyDir) cleaned up", lambda: not pod_dir.exists(), timeout=60)
    # The kubelet wrote its kernel settings into the node's private copies, never into the host's.
    assert host_tunables() == node_cluster.node.tunables_at_start
    with capsys.disabled():
        build = f"{node_cluster.kubelet_build:.0f}s" if node_cluster.kubelet_build is not None else "cached"
        print(f"\nreal node: kubelet build {build}; start to Node Ready {node_cluster.start_to_ready:.1f}s; "
              f"pod create to Running {to_running:.1f}s")  # fmt: skip


def test_pods_survive_a_kubelet_restart_and_new_ones_start(node_cluster: NodeCluster, kube: Kube) -> None:
    namespace = ready_namespace(kube, "node-restart")
    kube.core.create_namespaced_pod(namespace, busybox_pod("before", LONG_RUNNING.format(work="true"), [], []))
    try:
        wait_for("the first pod Running", lambda: phase(kube, namespace, "before") == "Running", timeout=120)
        old = node_cluster.node.process("kubelet").popen.pid
        kubelet = node_cluster.node.restart_kubelet()
        assert kubelet.popen.pid != old and kubelet.alive()
        kube.core.create_namespaced_pod(namespace, busybox_pod("after", LONG_RUNNING.format(work="true"), [], []))
        wait_for("the second pod Running", lambda: phase(kube, namespace, "after") == "Running", timeout=120)
        assert phase(kube, namespace, "before") == "Running"
        node_cluster.node.check()
    finally:
        for name in ("before", "after"):
            kube.core.delete_namespaced_pod(name, namespace)
        for name in ("before", "after"):
            wait_for(f"pod {name} deleted", lambda n=name: gone(kube, namespace, n), timeout=60)


def test_a_pod_gets_a_bound_token_and_reaches_the_api_server_on_loopback(
    node_cluster: NodeCluster, kube: Kube, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The kubelet got the pod a token bound to it (TokenRequest, allowed by the Node authorizer), and the API
    server is reachable from the pod at the address :func:`node.api_server_env` gives (no kube-proxy here).

    The token goes to a hostPath under the test's directory, never to a log; the test then presents it itself.
    """
    namespace = ready_namespace(kube, "node-api")
    out = tmp_path / "out"
    out.mkdir()
    # Plain HTTP to the TLS port: the API server's answer (400) proves the address reaches it; busybox has no
    # TLS client the API server accepts.
    script = ("cp /var/run/secrets/kubernetes.io/serviceaccount/token /out/token && "
              'wget -O /dev/null "http://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/" 2>&1 '
              "| grep -q '400 Bad Request' && echo reached")  # fmt: skip
    body = busybox_pod("api-client", script, [{"name": "out", "hostPath": {"path": str(out), "type": "Directory"}}],
                       [{"name": "out", "mountPath": "/out"}])  # fmt: skip
    env = node.api_server_env(control_plane.server)
    body["spec"]["containers"][0]["env"] = [{"name": k, "value": v} for k, v in env.items()]
    created = kube.core.create_namespaced_pod(namespace, body)
    try:
        wait_for("the pod finished", lambda: phase(kube, namespace, "api-client") in {"Succeeded", "Failed"})
        log = kube.core.read_namespaced_pod_log("api-client", namespace)
        assert phase(kube, namespace, "api-client") == "Succeeded", log
        assert log.split() == ["reached"]
        review = k8s.AuthenticationV1Api(kube.api).create_token_review(
            k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=(out / "token").read_text().strip()))
        )
        assert review.status.authenticated, review.status.error
        assert review.status.user.username == f"system:serviceaccount:{namespace}:default"
        assert review.status.user.extra["authentication.kubernetes.io/pod-uid"] == [created.metadata.uid]
        assert review.status.user.extra["authentication.kubernetes.io/node-name"] == [node_cluster.node.name]
    finally:
        kube.core.delete_namespaced_pod("api-client", namespace, grace_period_seconds=0)


@pytest.mark.parametrize("containerd_crashed", [False, True], ids=["orderly", "containerd-killed-first"])
def test_a_node_brought_down_with_a_running_pod_leaves_nothing_on_the_host(
    node_tools: NodeTools, control_plane: ControlPlane, kube: Kube, containerd_crashed: bool
) -> None:
    name = "teardown-crashed" if containerd_crashed else "teardown-orderly"
    tunables = host_tunables()
    second = node.start(control_plane, node_tools.binaries, name=name)
    root, ns = second.layout.root, second.mount_ns
    try:
        namespace = ready_namespace(kube, "node-teardown")
        kube.core.create_namespaced_pod(namespace, busybox_pod(name, LONG_RUNNING.format(work="true"), [], [],
                                                               node_name=name))  # fmt: skip
        wait_for("the pod Running", lambda: phase(kube, namespace, name) == "Running", timeout=120)
        containers = second.ctr("containers", "list", "--quiet").split()
        assert len(containers) >= 2  # the sandbox and the container
        mountinfo = second.mountinfo()
        assert " - overlay " in mountinfo, f"no container root file system mounted in the node:\n{mountinfo}"
        table = node._process_table()
        started = {(p.pid, p.started) for p in table if p.pid in node_processes(table, ns)}
        assert any("sleep" in p.cmdline and (p.pid, p.started) in started for p in table)  # the pod's, by descent
        if containerd_crashed:  # its shims and containers live on, and nothing can ask it to delete them
            second.process("containerd").popen.send_signal(signal.SIGKILL)
            second.process("containerd").popen.wait(10)
        leftovers = second.stop(remove_root=True)
    finally:
        second.stop()
        kube.core.delete_namespaced_pod(name, "node-teardown", grace_period_seconds=0)
        kube.core.delete_node(name)

    assert leftovers == []
    assert second.holder.poll() is not None
    processes = node._process_table()
    assert [p for p in processes if (p.pid, p.started) in started] == []
    assert [p for p in processes if str(root) in p.cmdline] == []
    assert [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line] == []
    assert not root.exists()
    cgroups = [path for path in node._cgroup_dirs() if os.path.basename(path) in set(containers)]
    assert cgroups == []
    assert host_tunables() == tunables
