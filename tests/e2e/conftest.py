"""A real control plane (etcd, kube-apiserver, kube-controller-manager) and the real csi-provisioner sidecar.

The Go programs are built once from the Go module proxy and cached (``cfs-csi dev-cluster tools``). If a build
fails, every e2e test is skipped with the build error as the reason (``pytest -ra`` prints it), never silently.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from cfs_csi.devcluster import cluster, node, tools
from cfs_csi.devcluster import helm as chart
from cfs_csi.devcluster.cluster import ControlPlane, Process, spawn
from tests.conftest import CLOUD_ENV, Driver, Emulator, start_driver, start_emulator, tencent_driver_flags

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples"


@pytest.fixture(scope="session")
def go_tools() -> dict[str, Path]:
    try:
        return tools.ensure([*cluster.CONTROL_PLANE_TOOLS, "csi-provisioner"])
    except tools.BuildError as exc:
        pytest.skip(f"e2e tools could not be built: {exc}")


@pytest.fixture(scope="session")
def helm() -> Path:
    try:
        return tools.ensure(["helm"])["helm"]
    except tools.BuildError as exc:
        pytest.skip(f"helm could not be built: {exc}")


@pytest.fixture(scope="session")
def control_plane(go_tools: dict[str, Path]) -> Iterator[ControlPlane]:
    root = Path(tempfile.mkdtemp(prefix="cfs-csi-e2e-"))
    plane = cluster.start(root, go_tools, remove_root=True)
    try:
        yield plane
    finally:
        plane.stop()


@dataclass
class NodeCluster:
    """The session's real node (containerd + kubelet + kube-scheduler) and what bringing it up cost."""

    node: node.Node
    kubelet_build: float | None  # seconds, None when the kubelet came from the cache
    start_to_ready: float


@dataclass
class NodeTools:
    binaries: dict[str, Path]
    kubelet_build: float | None  # seconds, None when the kubelet came from the cache


@pytest.fixture(scope="session")
def node_tools() -> NodeTools:
    """The kubelet and kube-scheduler; skips (with why) where this machine cannot run a node."""
    try:
        node.check_requirements()
    except node.NodeUnavailable as exc:
        pytest.skip(f"no real node on this machine: {exc}")
    cached = tools.installed("kubelet") is not None
    started = time.monotonic()
    try:
        built = tools.ensure(node.NODE_TOOLS)
    except tools.BuildError as exc:
        pytest.skip(f"the kubelet could not be built: {exc}")
    return NodeTools(built, None if cached else time.monotonic() - started)


@pytest.fixture(scope="session")
def node_cluster(node_tools: NodeTools, control_plane: ControlPlane) -> Iterator[NodeCluster]:
    """One real node for the whole session (later tests reuse it), torn down at the end with nothing left."""
    started = time.monotonic()
    try:
        the_node = node.start(control_plane, node_tools.binaries)
    except node.NodeUnavailable as exc:
        pytest.skip(f"no real node on this machine: {exc}")
    try:
        yield NodeCluster(the_node, node_tools.kubelet_build, time.monotonic() - started)
    finally:
        leftovers = the_node.stop()
        if leftovers:  # in pytest's warnings summary: a session fixture's teardown output is otherwise hidden
            warnings.warn("the real node left behind:\n  " + "\n  ".join(leftovers), stacklevel=1)


@dataclass
class Kube:
    """Typed shortcuts over the official client, for one control plane."""

    api: k8s.ApiClient
    core: k8s.CoreV1Api
    storage: k8s.StorageV1Api
    custom: k8s.CustomObjectsApi
    apps: k8s.AppsV1Api

    def apply_file(self, path: Path, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = yaml.safe_load(path.read_text())
        for key, value in overrides.items():
            body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
        return self.create(body)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        kind = body["kind"]
        namespace = body["metadata"].get("namespace", "default")
        created: Any
        if kind == "StorageClass":
            created = self.storage.create_storage_class(body)
        elif kind == "CSIDriver":
            created = self.storage.create_csi_driver(body)
        elif kind == "PersistentVolumeClaim":
            created = self.core.create_namespaced_persistent_volume_claim(namespace, body)
        else:
            raise ValueError(f"no create for {kind}")
        result: dict[str, Any] = self.api.sanitize_for_serialization(created)
        return result

    def pvcs(self, namespace: str) -> list[k8s.V1PersistentVolumeClaim]:
        items: list[k8s.V1PersistentVolumeClaim] = self.core.list_namespaced_persistent_volume_claim(namespace).items
        return items

    def events_for(self, namespace: str, name: str) -> list[k8s.CoreV1Event]:
        selector = f"involvedObject.name={name}"
        events: list[k8s.CoreV1Event] = self.core.list_namespaced_event(namespace, field_selector=selector).items
        return events

    def namespace(self, name: str) -> str:
        try:
            self.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        except ApiException as exc:
            if exc.status != 409:
                raise
        return name


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Kube:
    api = k8s_config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    return Kube(api, k8s.CoreV1Api(api), k8s.StorageV1Api(api), k8s.CustomObjectsApi(api), k8s.AppsV1Api(api))


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 120, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Supervised:
    """A container with ``restartPolicy: Always``: restarted whenever it exits, as the kubelet would.

    The CSI sidecars exit on purpose when they lose their driver's socket, and rely on exactly this.
    """

    def __init__(self, start: Callable[[], Process]) -> None:
        self._start = start
        self.process = start()
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            if not self.process.alive():
                self.restarts += 1
                self.process = self._start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.process.stop()


def pv_gone(kube: Kube, name: str) -> bool:
    try:
        kube.core.read_persistent_volume(name)
    except ApiException as exc:
        return exc.status == 404
    return False


@dataclass
class Dedicated:
    """The controller pod of dedicated mode: our controller + the upstream csi-provisioner, sharing a socket."""

    emulator: Emulator
    controller: Driver
    provisioner: Supervised
    root: Path
    flags: list[str]

    def restart_controller(self, sig: int = signal.SIGKILL) -> None:
        self.controller.stop(sig)
        self.controller = start_driver(self.root, *self.flags, env=CLOUD_ENV, name="controller")

    def stop(self) -> None:
        self.provisioner.stop()
        self.controller.stop(signal.SIGKILL)
        self.emulator.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_dedicated(go_tools: dict[str, Path], kubeconfig: Path) -> Dedicated:
    """Emulator, our controller and csi-provisioner (acting as whoever ``kubeconfig`` names)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="cfs-e2e-"))  # short: unix socket paths are limited to 107 bytes
    emulator = start_emulator(tmp_path, "--create-delay", "1")
    flags = [*tencent_driver_flags(emulator), "--component", "controller", "--cloud-poll-interval", "0.5"]
    controller = start_driver(tmp_path, *flags, env=CLOUD_ENV, name="controller")
    provisioner = Supervised(lambda: spawn("csi-provisioner", [
        str(go_tools["csi-provisioner"]), f"--csi-address={controller.socket}",
        f"--kubeconfig={kubeconfig}", "--timeout=120s", "--leader-election=false",
        "--retry-interval-start=1s", "--retry-interval-max=5s", "--v=3",
    ], tmp_path))  # fmt: skip
    return Dedicated(emulator, controller, provisioner, tmp_path, flags)


@pytest.fixture
def dedicated(control_plane: ControlPlane, go_tools: dict[str, Path], kube: Kube) -> Iterator[Dedicated]:
    env = start_dedicated(go_tools, control_plane.kubeconfig)
    try:
        yield env
    finally:
        env.stop()


# --- shared mode: the operator ---------------------------------------------------------------------------

NAMESPACE = "kube-system"
GROUP, VERSION, PLURAL = "tcfsoperator.k8s.io", "v1alpha1", "tcfs"


class Operator:
    """``cfs-csi operator`` against the emulator; as admin (installing the CRD) unless given another kubeconfig."""

    def __init__(
        self, root: Path, plane: ControlPlane, emulator: Emulator, kubeconfig: Path | None = None,
        extra: Sequence[str] = (),
    ) -> None:  # fmt: skip
        self.root, self.plane, self.emulator = root, plane, emulator
        self.kubeconfig = kubeconfig or plane.kubeconfig
        self.extra = list(extra)  # more flags of the operator (--metrics-port, --health-port...)
        self.image = "cfs-csi:test"
        self.process = self.start()

    def start(self) -> Process:
        install = ["--install-crd"] if self.kubeconfig == self.plane.kubeconfig else []
        return spawn("operator", [
            sys.executable, "-m", "cfs_csi", "--log-level", "DEBUG", "operator", f"--kubeconfig={self.kubeconfig}",
            f"--namespace={NAMESPACE}", *install, f"--provisioner-image={self.image}", "--backend=tencent",
            f"--cfs-endpoint={self.emulator.url}", "--region=ap-guangzhou", "--zone=ap-guangzhou-3",
            "--cluster-id=cls-test", "--cloud-poll-interval=0.3", f"--state-dir={self.root}", *self.extra,
        ], self.root, env=CLOUD_ENV)  # fmt: skip

    def restart(self) -> None:
        self.process.popen.send_signal(signal.SIGKILL)
        self.process.popen.wait(10)
        self.process = self.start()


@pytest.fixture
def operator(control_plane: ControlPlane, kube: Kube) -> Iterator[Operator]:
    """A running operator (as admin) and its emulator; Tcfs objects left behind are deleted afterwards."""
    with running_operator(control_plane, kube) as running:
        yield running


@contextlib.contextmanager
def running_operator(control_plane: ControlPlane, kube: Kube, *extra: str) -> Iterator[Operator]:
    """The ``operator`` fixture's body, with more operator flags."""
    root = Path(tempfile.mkdtemp(prefix="cfs-op-"))
    emulator = start_emulator(root, "--create-delay", "0.5")
    operator = Operator(root, control_plane, emulator, extra=extra)
    try:
        yield operator
    finally:
        operator.process.stop()
        print("--- operator log (tail) ---\n" + operator.process.tail(60))
        emulator.stop()
        delete_every_tcfs(kube)
        shutil.rmtree(root, ignore_errors=True)


def delete_every_tcfs(kube: Kube) -> None:
    """Delete what Tcfs objects are left; one the garbage collector removes meanwhile (its class went) is fine."""
    for tcfs in kube.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]:
        try:
            kube.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, tcfs["metadata"]["name"])
        except ApiException as exc:
            if exc.status != 404:
                raise


# --- the Helm chart against the control plane ----------------------------------------------------------------

APPLY_MANAGER = "cfs-csi-tests"


def apply(dynamic: DynamicClient, body: dict[str, Any], dry_run: bool) -> Any:
    """Server-side apply (``kubectl apply --server-side``), or its server-side dry-run."""
    resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    namespace = body["metadata"].get("namespace") if resource.namespaced else None
    return dynamic.server_side_apply(resource, body=body, namespace=namespace, field_manager=APPLY_MANAGER,
                                     force_conflicts=True, dry_run="All" if dry_run else None)  # fmt: skip


@pytest.fixture(scope="module")
def dynamic(kube: Kube) -> DynamicClient:
    return DynamicClient(kube.api)


@pytest.fixture(scope="module")
def crd(kube: Kube, dynamic: DynamicClient, helm: Path) -> None:
    """The chart's Tcfs CRD, applied for real and established."""
    [body] = [o for o in chart.objects(chart.template(helm)) if o["kind"] == "CustomResourceDefinition"]
    apply(dynamic, body, dry_run=False)
    extensions = k8s.ApiextensionsV1Api(kube.api)

    def established() -> bool:
        status = extensions.read_custom_resource_definition(body["metadata"]["name"]).status
        return any(c.type == "Established" and c.status == "True" for c in status.conditions or [])

    wait_for("the Tcfs CRD established", established, timeout=30)
    dynamic.resources.invalidate_cache()
