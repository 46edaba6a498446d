"""``/metrics`` of the operator and the sub-directory provisioner on the real control plane, after real work:
a shared class's claim makes the operator create a Tcfs and its file system, the provisioner provisions the
claims' directories with quotas, one claim is deleted and its directory and quota go. Each scrape is checked by
``promtool check metrics`` (when it could be built) and parsed by prometheus_client's parser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cfs_csi.devcluster.cluster import ControlPlane
from tests.e2e.conftest import Kube, Operator, pv_gone, running_operator, wait_for
from tests.e2e.test_operator import claim
from tests.e2e.test_subdir import Share
from tests.integration.test_metrics import Samples, free_port, scrape, value

CLASS = "cfs-metrics"


@pytest.fixture
def metered_operator(control_plane: ControlPlane, kube: Kube) -> Iterator[tuple[Operator, int]]:
    """The operator fixture's operator, serving its metrics on a port of its own; and that port."""
    port = free_port()
    with running_operator(control_plane, kube, f"--metrics-port={port}") as operator:
        yield operator, port


def moved(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (sample, labels), v in samples.items() if sample == name and v}


def test_operator_and_provisioner_count_their_work(
    kube: Kube, metered_operator: tuple[Operator, int], control_plane: ControlPlane, promtool: Path | None
) -> None:
    operator, metrics_port = metered_operator
    share = Share(kube, operator, operator.root, CLASS, reclaim="Delete")
    port = free_port()
    share.start_provisioner(control_plane.kubeconfig, "metrics", f"--metrics-port={port}")
    try:
        kube.create(claim("metrics-1", CLASS))
        wait_for("both claims bound", lambda: all(c.status.phase == "Bound" for c in kube.pvcs("default")
                                                  if c.spec.storage_class_name == CLASS), timeout=90)  # fmt: skip
        bound = kube.core.read_namespaced_persistent_volume_claim("metrics-1", "default")
        kube.core.delete_namespaced_persistent_volume_claim("metrics-1", "default")
        wait_for("its PV deleted", lambda: pv_gone(kube, bound.spec.volume_name), timeout=90)

        # The operator: the Tcfs is Ready, its reconciles were counted, and it created the file system.
        ops = scrape(metrics_port, promtool)
        assert value(ops, "cfs_csi_build_info", component="operator", version="0.1.0") == 1
        assert value(ops, "cfs_csi_operator_tcfs", ready="True", reason="FileSystemReady") == 1
        assert sum(moved(ops, "cfs_csi_operator_tcfs").values()) == 1
        reconciles = moved(ops, "cfs_csi_operator_reconciles_total")
        assert reconciles.get((("outcome", "ok"),), 0) >= 1
        assert value(ops, "cfs_csi_operator_reconcile_duration_seconds_count") == sum(reconciles.values())
        assert value(ops, "cfs_csi_cloud_requests_total", action="CreateCfsFileSystem", error="OK") == 1

        # The provisioner: two claims provisioned (the trigger and ours), ours deleted, with their quotas.
        pvs = wait_for("the metrics to settle", lambda: _settled(port, promtool), timeout=30)
        assert moved(pvs, "cfs_csi_provisioner_operations_total") == {
            (("operation", "provision"), ("outcome", "ok")): 2,
            (("operation", "delete"), ("outcome", "ok")): 1,
        }
        assert moved(pvs, "cfs_csi_provisioner_quota_operations_total") == {
            (("operation", "set"), ("outcome", "ok")): 2,
            (("operation", "remove"), ("outcome", "ok")): 1,
        }
        assert value(pvs, "cfs_csi_provisioner_operation_duration_seconds_count", operation="provision") == 2
        cloud = moved(pvs, "cfs_csi_cloud_requests_total")
        assert cloud.get((("action", "SetUserQuota"), ("error", "OK")), 0) == 2
        # What is left: the trigger claim's PV, with the quota it records.
        [left] = [
            pv
            for pv in kube.core.list_persistent_volume().items
            if (pv.metadata.annotations or {}).get("pv.kubernetes.io/provisioned-by") == share.provisioner_name
        ]
        assert value(pvs, "cfs_csi_provisioner_volumes", quota="set") == 1
        assert value(pvs, "cfs_csi_provisioner_volumes", quota="none") == 0
        assert value(pvs, "cfs_csi_provisioner_quota_bytes") == int(left.spec.csi.volume_attributes["quotaBytes"])
        for samples in (ops, pvs):
            for _, items in samples:
                assert not any("/" in text or "metrics-1" in text or "pvc-" in text for _, text in items), items
    finally:
        share.stop()


def _settled(port: int, promtool: Path | None) -> Samples | None:
    """A scrape once the delete is counted (the PV's deletion is seen before the provisioner's count moves)."""
    samples = scrape(port, promtool)
    return samples if value(samples, "cfs_csi_provisioner_operations_total", operation="delete", outcome="ok") else None
