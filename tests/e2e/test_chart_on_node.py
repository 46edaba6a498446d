"""The chart as a user installs it, on the real node, in its "try it without a Tencent Cloud account" mode.

``helm install`` of the chart, changed only by image names and values (``emulator.enabled``; host network and the
API server's loopback address, since the dev node has no pod network and no kube-proxy): our image and the
csi-provisioner image built here and imported into the node's containerd, the CFS emulator running in the
controller pod, and the seed's ``cfs-normal`` class provisioned through the in-cluster csi-provisioner, our
controller and that emulator. Pods using the volume need the node plugin registered with the kubelet; where it
is not (yet), that test skips and says so.

The first tests only render the chart (helm, no node): what the emulator mode changes, and that it is all of it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from cfs_csi.devcluster import helm as chart
from cfs_csi.devcluster import product
from cfs_csi.devcluster.cluster import ControlPlane
from cfs_csi.devcluster.node import Node
from tests.e2e.conftest import EXAMPLES, GROUP, PLURAL, VERSION, Kube, NodeCluster, wait_for
from tests.e2e.test_chart_helm import adopt, run_helm
from tests.e2e.test_chart_render import container, one, pod, render
from tests.e2e.test_node_cluster import busybox_pod, gone, phase, ready_namespace

pytestmark = pytest.mark.e2e

DRIVER = "com.tencent.cloud.csi.cfs"
CRD = "tcfs.tcfsoperator.k8s.io"
HOST_DIR = "/var/lib/cfs-csi-emulator"  # the chart's default emulator.hostDir, as the node sees it
NAMESPACE = chart.NAMESPACE


# --- the render (helm only) ------------------------------------------------------------------------------


def test_emulator_mode_runs_the_emulator_in_the_controller_pod_and_points_everything_at_it(helm: Path) -> None:
    objects = render(helm, emulator__enabled="true", cloud__endpoint="https://cfs.example.com",
                     cloud__region="ap-shanghai", cloud__credentials__secretId="AKIDreal",
                     cloud__credentials__secretKey="realkey")  # fmt: skip
    controller = one(objects, "Deployment", "csi-provisioner-cfsplugin")
    assert controller["spec"]["strategy"] == {"type": "Recreate"}  # never two emulators on one state
    emulator = container(controller, "cfs-emulator")
    assert emulator["args"] == [
        "emulator", "--listen=127.0.0.1:29680", f"--state={HOST_DIR}/state/emulator.db",
        f"--export-root={HOST_DIR}/exports", "--region=ap-guangzhou", "--create-delay=1",
    ]  # fmt: skip
    assert emulator["volumeMounts"] == [{"name": "emulator-data", "mountPath": HOST_DIR}]
    assert emulator["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["DAC_OVERRIDE", "FOWNER"]}
    volumes = {v["name"]: v for v in pod(controller)["volumes"]}
    assert volumes["emulator-data"]["hostPath"] == {"path": HOST_DIR, "type": "DirectoryOrCreate"}
    # The controller and the operator talk to it, not to the cloud the values name, with the chart's demo keys.
    for name in ("csi-cfs", "tcfs-operator"):
        args = container(controller, name)["args"]
        assert {"--cfs-endpoint=http://127.0.0.1:29680", "--region=ap-guangzhou", "--zone=ap-guangzhou-3",
                "--credentials-dir=/etc/cfs-csi/credentials"} <= set(args)  # fmt: skip
        assert not [a for a in args if "example.com" in a or "ap-shanghai" in a]
    assert volumes["cloud-credentials"]["secret"]["secretName"] == "cfs-csi-emulator-credentials"
    [secret] = [o for o in objects if o["kind"] == "Secret"]  # the real keys given make no Secret
    assert secret["metadata"]["name"] == "cfs-csi-emulator-credentials"
    assert set(secret["stringData"]) == {"TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"}
    assert "realkey" not in yaml.safe_dump(objects)
    keys = {e["valueFrom"]["secretKeyRef"]["name"] for e in emulator["env"]}
    assert keys == {"cfs-csi-emulator-credentials"}
    # The node plugin bind-mounts the emulator's directories, seen at the same path as the emulator sees them.
    node = one(objects, "DaemonSet", "csi-nodeplugin-cfsplugin")
    plugin = container(node, "csi-cfs")
    assert "--mounter=bind" in plugin["args"] and "--mounter=nfs" not in plugin["args"]
    assert f"--export-root={HOST_DIR}/exports" in plugin["args"]
    assert {"name": "emulator-exports", "mountPath": f"{HOST_DIR}/exports"} in plugin["volumeMounts"]
    node_volumes = {v["name"]: v for v in pod(node)["volumes"]}
    assert node_volumes["emulator-exports"]["hostPath"] == {"path": f"{HOST_DIR}/exports", "type": "DirectoryOrCreate"}


def test_without_the_emulator_nothing_of_it_is_rendered(helm: Path) -> None:
    text = yaml.safe_dump(render(helm))
    assert "emulator" not in text and "--mounter=bind" not in text and "KUBERNETES_SERVICE" not in text
    controller = one(render(helm), "Deployment", "csi-provisioner-cfsplugin")
    assert "hostNetwork" not in pod(controller) and "strategy" not in controller["spec"]


def test_dev_cluster_values_host_network_api_server_and_no_liveness_sidecar(helm: Path) -> None:
    objects = render(helm, controller__hostNetwork="true", controller__livenessProbe="false",
                     apiServer__host="127.0.0.1", apiServer__port="6443")  # fmt: skip
    controller = one(objects, "Deployment", "csi-provisioner-cfsplugin")
    spec = pod(controller)
    assert (spec["hostNetwork"], spec["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    assert [c["name"] for c in spec["containers"]] == ["csi-provisioner", "csi-resizer", "csi-cfs", "tcfs-operator"]
    assert "livenessProbe" not in container(controller, "csi-cfs")  # nothing would answer it
    wanted = [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
              {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"}]  # fmt: skip
    for name in ("csi-provisioner", "tcfs-operator"):  # the two API clients of the pod
        assert container(controller, name)["env"][-2:] == wanted
    assert "env" not in container(controller, "csi-cfs")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"emulator.enabled": "true", "emulator.hostDir": "var/lib/x"}, "/emulator/hostDir"),
        ({"emulator.enabled": "true", "emulator.port": "0"}, "/emulator/port"),
        ({"emulator.enable": "true"}, "additional properties 'enable' not allowed"),  # a typo
        ({"apiServer.host": "127.0.0.1"}, "apiServer.port is needed"),
        ({"emulator.enabled": "true", "controller.replicas": "2"}, "controller.replicas must be 1"),
    ],
)
def test_bad_emulator_values_are_refused(helm: Path, values: dict[str, str], message: str) -> None:
    with pytest.raises(chart.HelmError, match=message):
        chart.template(helm, None, values)


# --- helm install on the real node -----------------------------------------------------------------------


@dataclass
class Release:
    node: Node
    emulator_url: str
    exports: Path  # the emulator's export root, as the host sees it
    installed_at: float  # time.monotonic() of helm install
    image: str  # ours, as installed
    audit_log: Path  # the API server's log of service-account requests
    audit_offset: int  # its size at helm install
    install_to_controller_ready: float


def pods_ready(kube: Kube, selector: str) -> bool:
    pods = kube.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    return bool(pods) and all(
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []) for p in pods
    )


def describe(kube: Kube, selector: str) -> str:
    """Container states and log tails of the pods, for a failure message."""
    lines = []
    for p in kube.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items:
        for status in p.status.container_statuses or []:
            lines.append(f"--- {p.metadata.name}/{status.name}: ready={status.ready} {status.state}")
            try:
                lines.append(kube.core.read_namespaced_pod_log(p.metadata.name, NAMESPACE, container=status.name,
                                                               tail_lines=20))  # fmt: skip
            except ApiException as exc:
                lines.append(f"(no log: {exc.reason})")
    return "\n".join(lines) or "no pods"


def restarts(kube: Kube, selector: str) -> dict[str, int]:
    """Containers of the pods that were restarted, with how often."""
    counts = {}
    for p in kube.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items:
        for status in p.status.container_statuses or []:
            if status.restart_count:
                counts[f"{p.metadata.name}/{status.name}"] = int(status.restart_count)
    return counts


def api_clients(audit_log: Path, offset: int) -> set[str]:
    """The programs (user agents, without version) that called the API server as the controller pod's account
    since ``offset`` (bytes into the audit log: where it ended at helm install)."""
    account = f"system:serviceaccount:{NAMESPACE}:cfs-csi-controller"
    with audit_log.open("rb") as f:
        f.seek(offset)
        events = [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]
    return {e.get("userAgent", "").split("/")[0] for e in events if e["user"]["username"] == account}


def answers(url: str) -> bool:
    try:
        file_systems(url)
    except httpx.HTTPError:
        return False
    return True


def file_systems(url: str) -> list[dict[str, Any]]:
    """The emulator's file systems (not deleted), through its admin API on the node's loopback."""
    rows = httpx.get(f"{url}/admin/filesystems", timeout=10).raise_for_status().json()["FileSystems"]
    return [fs for fs in rows if fs["LifeCycleState"] != "deleted"]


@pytest.fixture(scope="module")
def release(
    node_cluster: NodeCluster, control_plane: ControlPlane, kube: Kube, dynamic: DynamicClient, helm: Path
) -> Iterator[Release]:
    """The chart installed on the node the way ``dev-cluster up --product`` installs it (devcluster.product)."""
    extensions = k8s.ApiextensionsV1Api(kube.api)
    crd_existed = CRD in [c.metadata.name for c in extensions.list_custom_resource_definition().items]
    adopt(dynamic, "apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD)
    adopt(dynamic, "storage.k8s.io/v1", "CSIDriver", DRIVER)
    audit_offset = control_plane.audit_log.stat().st_size if control_plane.audit_log.exists() else 0
    started = time.monotonic()
    try:
        installed = product.install(control_plane, node_cluster.node, helm)
    except product.ProductUnavailable as exc:
        pytest.skip(str(exc))
    except RuntimeError as exc:
        raise AssertionError(f"{exc}\n{describe(kube, 'app=csi-provisioner-cfsplugin')}") from None
    try:
        yield Release(node_cluster.node, installed.emulator_url, installed.exports, started, installed.image,
                      control_plane.audit_log, audit_offset, installed.install_to_ready)  # fmt: skip
    finally:
        product.uninstall(control_plane, node_cluster.node, helm)
        if not crd_existed:
            extensions.delete_custom_resource_definition(CRD)


@pytest.fixture(scope="module")
def seed_class(kube: Kube) -> Iterator[str]:
    """The seed's cfs-normal StorageClass, exactly as deploy/examples has it; removed again if made here, as
    later tests make their own."""
    try:
        kube.apply_file(EXAMPLES / "storageclass-cfs-normal.yaml")
    except ApiException as exc:
        if exc.status != 409:
            raise
        yield "cfs-normal"
        return
    try:
        yield "cfs-normal"
    finally:
        kube.storage.delete_storage_class("cfs-normal")


@pytest.fixture(scope="module")
def namespace(kube: Kube) -> Iterator[str]:
    name = ready_namespace(kube, "chart-node")
    try:
        yield name
    finally:
        kube.core.delete_namespace(name)


def claim(kube: Kube, namespace: str, name: str) -> None:
    kube.apply_file(EXAMPLES / "pvc-cfs-normal.yaml", metadata={"name": name, "namespace": namespace})


def bound(kube: Kube, namespace: str, name: str) -> bool:
    return str(kube.core.read_namespaced_persistent_volume_claim(name, namespace).status.phase) == "Bound"


def new_file_system(url: str, before: set[str]) -> dict[str, Any]:
    [fs] = [fs for fs in file_systems(url) if fs["FileSystemId"] not in before]
    return fs


def delete_claim_and_check_the_file_system_goes(kube: Kube, release: Release, namespace: str, name: str,
                                                fs: dict[str, Any]) -> None:  # fmt: skip
    pv = kube.core.read_namespaced_persistent_volume_claim(name, namespace).spec.volume_name
    data = release.exports / fs["IpAddress"] / fs["FSID"]
    kube.core.delete_namespaced_persistent_volume_claim(name, namespace)

    def pv_gone() -> bool:
        try:
            kube.core.read_persistent_volume(pv)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for("the PV deleted", pv_gone, timeout=120)
    wait_for("the file system gone from the emulator",
             lambda: fs["FileSystemId"] not in {f["FileSystemId"] for f in file_systems(release.emulator_url)},
             timeout=30)  # fmt: skip
    assert not data.exists()


def test_helm_install_gives_a_bound_claim_of_the_seeds_class_through_the_in_cluster_emulator(
    release: Release, kube: Kube, seed_class: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The emulator answers on the node's loopback (the controller pod uses the host network here).
    before = {fs["FileSystemId"] for fs in file_systems(release.emulator_url)}
    created = time.monotonic()
    claim(kube, namespace, "cfs-normal")
    wait_for("the claim Bound", lambda: bound(kube, namespace, "cfs-normal"), timeout=150)
    to_bound = time.monotonic() - created
    fs = new_file_system(release.emulator_url, before)
    assert fs["LifeCycleState"] == "available"
    assert (fs["VpcId"], fs["SubnetId"], fs["Zone"]) == ("vpc-oilua6pt", "subnet-rtwb42lu", "ap-guangzhou-3")
    pv = kube.core.read_persistent_volume(kube.core.read_namespaced_persistent_volume_claim(
        "cfs-normal", namespace).spec.volume_name)  # fmt: skip
    assert pv.spec.csi.driver == DRIVER
    assert (release.exports / fs["IpAddress"] / fs["FSID"]).is_dir()  # its data, on the node's disk
    delete_claim_and_check_the_file_system_goes(kube, release, namespace, "cfs-normal", fs)
    # Every container of the controller pod kept running, and csi-provisioner and the operator called the
    # API server as the pod's account, by the address the chart gave them.
    assert restarts(kube, "app=csi-provisioner-cfsplugin") == {}, describe(kube, "app=csi-provisioner-cfsplugin")
    assert {"csi-provisioner", "cfs-csi-operator"} <= api_clients(release.audit_log, release.audit_offset)
    with capsys.disabled():
        print(f"\nchart on the node: helm install to controller pod Ready {release.install_to_controller_ready:.1f}s;"
              f" PVC create to Bound {to_bound:.1f}s")  # fmt: skip


def registered(kube: Kube, node_name: str) -> bool:
    try:  # raw JSON: the client's model refuses a CSINode with no drivers yet (null)
        response = kube.storage.read_csi_node(node_name, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    drivers = json.loads(response.data)["spec"].get("drivers") or []
    return DRIVER in [d["name"] for d in drivers]


def volume_mounts(node: Node, pod_uid: str) -> list[str]:
    return [line for line in node.mountinfo().splitlines() if f"/pods/{pod_uid}/volumes/kubernetes.io~csi/" in line]


def plugin_container(kube: Kube) -> tuple[str, int]:
    """The node plugin container's containerd id and restart count."""
    [plugin] = kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=csi-nodeplugin-cfsplugin").items
    [status] = [s for s in plugin.status.container_statuses or [] if s.name == "csi-cfs"]
    return str(status.container_id or "").removeprefix("containerd://"), int(status.restart_count)


def registrations(kube: Kube) -> int:
    """How often the running node plugin container has been registered by a kubelet (its log, through the API
    server; 0 while the kubelet cannot serve the log)."""
    [plugin] = kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=csi-nodeplugin-cfsplugin").items
    try:
        text = kube.core.read_namespaced_pod_log(plugin.metadata.name, NAMESPACE, container="csi-cfs")
    except ApiException:
        return 0
    return str(text).count("registered with the kubelet as")


def rolled(kube: Kube, selector: str, image: str) -> bool:
    """Every pod of ``selector`` runs ``image`` for our container and is Ready; none is terminating."""
    pods = kube.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    return bool(pods) and all(
        p.metadata.deletion_timestamp is None
        and {c.image for c in p.spec.containers if c.name == "csi-cfs"} == {image}
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        for p in pods
    )


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


# The writer: the token once, then a line every 0.2 s for as long as it runs.
WRITER = (
    "trap 'exit 0' TERM; echo {token} > /data/from-the-writer; "
    "i=0; while :; do echo $i >> /data/ticks; i=$((i+1)); sleep 0.2 & wait $!; done"
)


def test_two_pods_share_a_claim_through_the_node_plugin_which_can_be_killed_under_them(
    release: Release,
    kube: Kube,
    seed_class: str,
    namespace: str,
    helm: Path,
    control_plane: ControlPlane,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node_name = release.node.name
    try:
        wait_for("the node plugin registered", lambda: registered(kube, node_name), timeout=60, interval=1)
    except AssertionError:
        pytest.skip(f"the node plugin has not registered {DRIVER} with the kubelet (CSINode {node_name}): "
                    "kubelet plugin registration by the plugin itself is not there yet")  # fmt: skip
    selector = "app=csi-nodeplugin-cfsplugin"
    wait_for("the node plugin pod Ready", lambda: pods_ready(kube, selector), timeout=120)
    install_to_both_ready = time.monotonic() - release.installed_at

    before = {fs["FileSystemId"] for fs in file_systems(release.emulator_url)}
    token = uuid.uuid4().hex
    volume = [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]
    mounts = [{"name": "data", "mountPath": "/data"}]
    created = time.monotonic()
    claim(kube, namespace, "shared")
    writer = busybox_pod("writer", WRITER.format(token=token), volume, mounts)
    kube.core.create_namespaced_pod(namespace, writer)
    wait_for("the writer Running", lambda: phase(kube, namespace, "writer") == "Running", timeout=180)
    to_running = time.monotonic() - created
    fs = new_file_system(release.emulator_url, before)
    written = release.exports / fs["IpAddress"] / fs["FSID"] / "from-the-writer"
    wait_for("the writer's file in the file system's directory", written.exists, timeout=30)
    assert written.read_text().strip() == token

    # The node plugin killed while the writer uses the volume: the kubelet restarts it, the writer's mount is
    # untouched (its writes keep arriving in the file system), and the new instance serves what follows.
    container_id, restarts = plugin_container(kube)
    release.node.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)
    killed = time.monotonic()
    wait_for("the node plugin restarted", lambda: plugin_container(kube)[1] > restarts, timeout=120)
    wait_for("the node plugin pod Ready again", lambda: pods_ready(kube, selector), timeout=120)
    to_plugin_ready = time.monotonic() - killed
    ticks = written.with_name("ticks")
    seen = lines(ticks)
    wait_for("the writer still writing into the file system", lambda: lines(ticks) > seen + 2, timeout=30)
    wait_for("the new instance registered", lambda: registered(kube, node_name), timeout=60, interval=1)

    # helm upgrade to another tag of the image while the writer runs: both pods are replaced, the writer's
    # mount stays, the emulator's file systems survive the controller pod's replacement (state on the node).
    upgraded = f"{release.image}-upgrade"
    release.node.ctr("images", "tag", "--force", release.image, upgraded)
    upgrade_started = time.monotonic()
    run_helm(helm, control_plane, "upgrade", chart.RELEASE, str(chart.CHART), "--reuse-values",
             f"--set=image.tag={upgraded.rsplit(':', 1)[1]}")  # fmt: skip
    for component in ("provisioner", "nodeplugin"):
        wait_for(f"the {component} pod replaced and Ready",
                 lambda c=component: rolled(kube, f"app=csi-{c}-cfsplugin", upgraded), timeout=180)  # fmt: skip
    wait_for("the upgraded plugin registered", lambda: registered(kube, node_name), timeout=60, interval=1)
    to_upgraded = time.monotonic() - upgrade_started
    wait_for("the new emulator answering", lambda: answers(release.emulator_url), timeout=60)
    assert fs["FileSystemId"] in {f["FileSystemId"] for f in file_systems(release.emulator_url)}
    seen = lines(ticks)
    wait_for("the writer still writing after the upgrade", lambda: lines(ticks) > seen + 2, timeout=30)

    # The kubelet restarted while the writer runs: a new kubelet knows no plugin until it finds the registration
    # socket again, so the plugin is registered anew (its log says so once more), and a new pod (the reader
    # below) still mounts the volume.
    registered_before = registrations(kube)
    restarted = time.monotonic()
    release.node.restart_kubelet()
    wait_for("the plugin registered with the restarted kubelet", lambda: registrations(kube) > registered_before,
             timeout=120, interval=1)  # fmt: skip
    to_reregistered = time.monotonic() - restarted
    seen = lines(ticks)
    wait_for("the writer still writing after the kubelet restart", lambda: lines(ticks) > seen + 2, timeout=30)

    reader = busybox_pod("reader", "cat /data/from-the-writer", volume, mounts)
    kube.core.create_namespaced_pod(namespace, reader)
    wait_for("the reader done", lambda: phase(kube, namespace, "reader") in ("Succeeded", "Failed"), timeout=180)
    assert phase(kube, namespace, "reader") == "Succeeded"
    assert kube.core.read_namespaced_pod_log("reader", namespace).strip() == token  # RWX: same data, two pods

    uids = [kube.core.read_namespaced_pod(name, namespace).metadata.uid for name in ("writer", "reader")]
    assert volume_mounts(release.node, uids[0])  # published into the writer's pod directory on the node
    deleted = time.monotonic()
    for name in ("writer", "reader"):
        kube.core.delete_namespaced_pod(name, namespace)
    wait_for("the pods' volume mounts gone from the node",
             lambda: not any(volume_mounts(release.node, uid) for uid in uids), timeout=120)  # fmt: skip
    to_unmounted = time.monotonic() - deleted
    for name in ("writer", "reader"):
        wait_for(f"pod {name} deleted", lambda name=name: gone(kube, namespace, name), timeout=60)
    delete_claim_and_check_the_file_system_goes(kube, release, namespace, "shared", fs)
    with capsys.disabled():
        print(
            f"\nchart on the node: helm install to both pods Ready {install_to_both_ready:.1f}s; "
            f"PVC create to pod Running {to_running:.1f}s; pod delete to mount gone {to_unmounted:.1f}s; "
            f"node plugin killed to Ready again {to_plugin_ready:.1f}s; helm upgrade to both pods replaced "
            f"{to_upgraded:.1f}s; kubelet restarted to the plugin registered again {to_reregistered:.1f}s"
        )


# --- shared mode on the node ------------------------------------------------------------------------------


def test_the_operator_gives_provisioner_pods_the_network_api_server_and_pull_policy_of_the_chart(helm: Path) -> None:
    dev = render(helm, controller__hostNetwork="true", apiServer__host="127.0.0.1", apiServer__port="6443",
                 image__pullPolicy="Never")  # fmt: skip
    args = container(one(dev, "Deployment", "csi-provisioner-cfsplugin"), "tcfs-operator")["args"]
    assert {"--provisioner-image-pull-policy=Never", "--provisioner-host-network",
            "--provisioner-api-server=127.0.0.1:6443"} <= set(args)  # fmt: skip
    v6 = render(helm, apiServer__host="::1", apiServer__port="6443")
    args = container(one(v6, "Deployment", "csi-provisioner-cfsplugin"), "tcfs-operator")["args"]
    assert "--provisioner-api-server=[::1]:6443" in args
    default = container(one(render(helm), "Deployment", "csi-provisioner-cfsplugin"), "tcfs-operator")["args"]
    assert not [
        a
        for a in default
        if a.split("=")[0]
        in {"--provisioner-image-pull-policy", "--provisioner-host-network", "--provisioner-api-server"}
    ]


SHARE_CLASS = "cfs-share"
SUBDIR_PROVISIONER = "app=cfs-csi-subdir-provisioner"


def tcfs_status(kube: Kube, name: str) -> dict[str, Any] | None:
    """The Tcfs's status ({} before it has one), None when there is no such Tcfs."""
    try:
        found = kube.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    status: dict[str, Any] = found.get("status") or {}
    return status


def test_shared_mode_provisioner_pod_mounts_its_share_through_the_node_plugin_and_claims_stay_apart(
    release: Release, kube: Kube, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    node_name = release.node.name
    wait_for("the node plugin registered", lambda: registered(kube, node_name), timeout=60, interval=1)
    before = {fs["FileSystemId"] for fs in file_systems(release.emulator_url)}
    created = time.monotonic()
    kube.apply_file(EXAMPLES / "storageclass-cfs-share.yaml")  # the seed's class, unchanged
    claims = ("share-a", "share-b")
    try:
        for name in claims:
            kube.apply_file(EXAMPLES / "pvc-cfs-share-1.yaml", metadata={"name": name, "namespace": namespace})
        try:
            for name in claims:
                wait_for(f"claim {name} Bound", lambda name=name: bound(kube, namespace, name), timeout=240)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{describe(kube, SUBDIR_PROVISIONER)}") from None
        to_bound = time.monotonic() - created
        # The provisioner is a real pod of the operator's Deployment on the node, with the share published into
        # it by our node plugin (a CSI volume mount in its pod directory), reaching the API server by the
        # address the chart gave the operator.
        [provisioner] = kube.core.list_namespaced_pod(NAMESPACE, label_selector=SUBDIR_PROVISIONER).items
        assert provisioner.spec.host_network is True and provisioner.spec.node_name == node_name
        assert provisioner.spec.containers[0].image_pull_policy == "Never"
        assert volume_mounts(release.node, provisioner.metadata.uid)
        fs = new_file_system(release.emulator_url, before)
        status = tcfs_status(kube, SHARE_CLASS) or {}
        assert status.get("cfsfilesystemid") == fs["FSID"]  # the Tcfs names the share the class got
        share = release.exports / fs["IpAddress"] / fs["FSID"]

        started = time.monotonic()
        for name in claims:
            script = f"echo {name} > /data/{name}.txt && ls -A /data"
            volume = [{"name": "data", "persistentVolumeClaim": {"claimName": name}}]
            pod_body = busybox_pod(name, script, volume, [{"name": "data", "mountPath": "/data"}])
            kube.core.create_namespaced_pod(namespace, pod_body)
        for name in claims:
            wait_for(f"pod {name} done", lambda name=name: phase(kube, namespace, name) in ("Succeeded", "Failed"),
                     timeout=180)  # fmt: skip
        to_done = time.monotonic() - started
        for name in claims:
            assert phase(kube, namespace, name) == "Succeeded", kube.core.read_namespaced_pod_log(name, namespace)
            # Each pod sees its own file only: the other claim's directory is not in its volume.
            assert kube.core.read_namespaced_pod_log(name, namespace).split() == [f"{name}.txt"]
            pv = kube.core.read_namespaced_persistent_volume_claim(name, namespace).spec.volume_name
            directory = share / f"{namespace}-{name}-{pv}"  # the provisioner's default directory name
            assert (directory / f"{name}.txt").read_text().strip() == name
        with capsys.disabled():
            print(f"\nchart on the node, shared mode: class and 2 PVCs create to Bound {to_bound:.1f}s; "
                  f"2 pods create to done {to_done:.1f}s")  # fmt: skip
    finally:
        for name in claims:
            try:
                kube.core.delete_namespaced_pod(name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        for name in claims:
            wait_for(f"pod {name} deleted", lambda name=name: gone(kube, namespace, name), timeout=120)
        volumes = []
        for name in claims:
            try:
                volumes.append(kube.core.read_namespaced_persistent_volume_claim(name, namespace).spec.volume_name)
                kube.core.delete_namespaced_persistent_volume_claim(name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        for pv in [v for v in volumes if v]:  # Retain: released, never deleted by anyone else
            try:
                kube.core.delete_persistent_volume(pv)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        kube.storage.delete_storage_class(SHARE_CLASS)
        # The Tcfs, its Deployment and pod go by garbage collection; the pod's share unmounted by the node plugin
        # while it still runs (before the module's helm uninstall).
        wait_for("the Tcfs gone", lambda: tcfs_status(kube, SHARE_CLASS) is None, timeout=120)
        wait_for("the provisioner pod gone",
                 lambda: not kube.core.list_namespaced_pod(NAMESPACE, label_selector=SUBDIR_PROVISIONER).items,
                 timeout=120)  # fmt: skip
