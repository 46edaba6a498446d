"""Kubernetes' own storage conformance suite (External Storage e2e) against the chart on the real node.

The suite (``e2e.test``, built from ``k8s.io/kubernetes/test/e2e`` at the control plane's version) is pointed at
the driver by the test-driver YAMLs in ``tests/e2e/testdrivers/``: once for dedicated mode (a file system per
claim, from the chart's emulator) and once for shared mode (sub-directories of the seed's ``cfs-share``
class). It runs pods that write and read through the kubelet and checks them with ``kubectl exec`` and pod logs.
The kernel NFS client does not exist here, so the node plugin bind-mounts the emulator's directories: this
exercises the CSI and kubelet path, not NFS itself.

CI runs :data:`CI_FOCUS` (a fixed subset that fits its time limit); ``scripts/e2e-storage.sh`` runs the whole
focused subset (``CFS_CSI_STORAGE_SUITE=full``). A failed spec fails the test; every skip is printed with why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from cfs_csi.devcluster import ociimage, storagesuite, tools
from cfs_csi.devcluster.cluster import ControlPlane
from cfs_csi.devcluster.node import BUSYBOX
from tests.e2e.conftest import EXAMPLES, REPO, Kube, NodeCluster, wait_for
from tests.e2e.test_chart_on_node import (  # noqa: F401  (release is a fixture used here)
    SHARE_CLASS,
    SUBDIR_PROVISIONER,
    Release,
    bound,
    describe,
    registered,
    release,
    tcfs_status,
)
from tests.e2e.test_node_cluster import ready_namespace

pytestmark = pytest.mark.e2e

DRIVERS = REPO / "tests" / "e2e" / "testdrivers"
# CI's fixed subset: one spec of each kind of check the suite makes through the kubelet (data written and
# read back by two pods in turn, exec of a file on the volume, several pods on one volume at once, subPath, a
# generic ephemeral volume), so a CI run stays well inside its limit; the script runs everything the focus selects.
CI_FOCUS = (
    r"External.Storage.*("
    r"volumes should store data|volumes should allow exec of files on the volume|"
    r"multiVolume .*should concurrently access the single volume from pods on the same node|"
    r"subPath should support existing directory|ephemeral should create read/write inline ephemeral volume|"
    r"Dynamic Snapshot \(delete policy\)\] snapshottable.*after modifying source data)"
)


def focus() -> str:
    """CI's focus; the whole subset with CFS_CSI_STORAGE_SUITE=full; any regular expression with ..._FOCUS."""
    if chosen := os.environ.get("CFS_CSI_STORAGE_SUITE_FOCUS"):
        return chosen
    return storagesuite.FOCUS if os.environ.get("CFS_CSI_STORAGE_SUITE") == "full" else CI_FOCUS


@pytest.fixture(scope="module")
def suite_tools(node_cluster: NodeCluster) -> dict[str, Path]:
    """The suite's binaries, and its images imported into the node's containerd under the names it asks for."""
    try:
        built = tools.ensure([*storagesuite.SUITE_TOOLS, "agnhost"])
    except tools.BuildError as exc:
        if os.environ.get("CI"):  # CI must run the suite: a skip there would hide that it never ran
            pytest.fail(f"the e2e suite could not be built: {exc}")
        pytest.skip(f"the e2e suite could not be built: {exc}")
    layout = node_cluster.node.layout
    archive = ociimage.write_e2e(layout.root / "e2e-images.tar", BUSYBOX, built["agnhost"])
    node_cluster.node.import_image(archive)
    return built


def run_suite(
    mode: str, driver: Path, suite_tools: dict[str, Path], plane: ControlPlane, out: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    report = out / f"{mode}.json"
    argv = storagesuite.suite_argv(
        suite_tools["e2e.test"], kubeconfig=plane.kubeconfig, kubectl=suite_tools["kubectl"], driver=driver,
        repo_root=REPO, report=report, focus=focus(),
    )  # fmt: skip
    done = storagesuite.run(argv, report, out / f"{mode}.log", timeout=7200)
    text = storagesuite.summary(mode, done.result, done.seconds)
    with capsys.disabled():  # the figures belong in CI's log, pass or fail
        print("\n" + text)
    assert not done.result.setup_failures, f"{text}\n(log: {done.log})"
    assert not done.result.failed, f"{text}\n(log: {done.log})"
    assert done.result.passed, f"no spec passed:\n{text}\n(log: {done.log})"
    assert done.returncode == 0, f"e2e.test exited {done.returncode} with no failed spec (log: {done.log})"


@pytest.fixture
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keep = os.environ.get("CFS_CSI_STORAGE_SUITE_OUT")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        return Path(keep)
    return tmp_path_factory.mktemp("storage-suite")


def test_external_storage_suite_dedicated_mode(
    release: Release,  # noqa: F811  (the fixture imported above)
    suite_tools: dict[str, Path],
    control_plane: ControlPlane,
    kube: Kube,
    out_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wait_for("the node plugin registered", lambda: registered(kube, release.node.name), timeout=60, interval=1)
    run_suite("dedicated", DRIVERS / "dedicated.yaml", suite_tools, control_plane, out_dir, capsys)


@pytest.fixture
def share(release: Release, kube: Kube) -> Iterator[str]:  # noqa: F811  (the fixture imported above)
    """The seed's cfs-share class with its Tcfs Ready and its provisioner running (one claim brings them up)."""
    namespace = ready_namespace(kube, "storage-suite-share")
    kube.apply_file(EXAMPLES / "storageclass-cfs-share.yaml")
    try:
        kube.apply_file(EXAMPLES / "pvc-cfs-share-1.yaml", metadata={"name": "first", "namespace": namespace})
        try:
            wait_for("the first claim of cfs-share Bound", lambda: bound(kube, namespace, "first"), timeout=240)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{describe(kube, SUBDIR_PROVISIONER)}") from None
        yield SHARE_CLASS
    finally:
        pv = None
        try:
            found = kube.core.read_namespaced_persistent_volume_claim("first", namespace)
            pv = found.spec.volume_name if found.spec else None
        except ApiException as exc:
            if exc.status != 404:
                raise
        kube.core.delete_namespace(namespace)
        if pv:  # the seed's class retains: released, deleted here
            wait_for("the first claim gone", lambda: not kube.core.list_namespaced_persistent_volume_claim(
                namespace).items, timeout=120)  # fmt: skip
            kube.core.delete_persistent_volume(pv)
        kube.storage.delete_storage_class(SHARE_CLASS)
        wait_for("the Tcfs gone", lambda: tcfs_status(kube, SHARE_CLASS) is None, timeout=120)


def test_external_storage_suite_shared_mode(
    share: str, suite_tools: dict[str, Path], control_plane: ControlPlane, out_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    run_suite("shared", DRIVERS / "shared.yaml", suite_tools, control_plane, out_dir, capsys)
