"""The metrics of shared mode: the operator and the sub-directory provisioner.

Both call the CFS API (the operator finds or creates file systems, the provisioner sets directory quotas), so
both have the ``cfs_csi_cloud_*`` families. Values that describe state rather than events (Tcfs by condition,
the provisioner's volumes and quotas) are read from the component's informer cache at each scrape, through a
callable the component hands over: this package imports nothing of theirs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cfs_csi.metrics import record
from cfs_csi.metrics.base import ComponentMetrics
from cfs_csi.metrics.client import Core

#: Seconds: a Tcfs reconcile (cloud calls and API server writes; a file system being created is a retry).
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: Seconds: provisioning or deleting one claim's directory (a quota is one or two cloud calls).
PROVISION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def tcfs_conditions(objects: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, str]]:
    """How many Tcfs are in each (Ready status, reason) (pure): ``Unknown``/``none`` without a Ready condition,
    a reason outside :data:`~cfs_csi.metrics.record.TCFS_REASONS` as ``other``."""
    found: Counter[tuple[str, str]] = Counter()
    for tcfs in objects:
        conditions = (tcfs.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if isinstance(c, Mapping) and c.get("type") == "Ready"), None)
        if ready is None:
            found[("Unknown", "none")] += 1
            continue
        status = str(ready.get("status"))
        found[
            (
                status if status in ("True", "False") else "Unknown",
                record.bounded(str(ready.get("reason")), record.TCFS_REASONS),
            )
        ] += 1
    return found


class OperatorMetrics(ComponentMetrics):
    """``cfs_csi_operator_*``: reconciles by outcome and their time; Tcfs by Ready condition (from ``tcfs()``,
    the informer's cache, at each scrape)."""

    def __init__(self, tcfs: Callable[[], Iterable[Mapping[str, Any]]], prometheus: Core | None = None) -> None:
        super().__init__("operator", cloud=True, prometheus=prometheus)
        pc, reg = self.prometheus, self.registry
        self._tcfs_source = tcfs
        self._reconciles = pc.counter(
            "cfs_csi_operator_reconciles_total",
            "Tcfs reconciles, by outcome (retry: a temporary problem, reported on the Tcfs and retried with "
            "backoff; error: an unexpected failure, retried).",
            ["outcome"],
            registry=reg,
        )
        self._seconds = pc.histogram(
            "cfs_csi_operator_reconcile_duration_seconds",
            "Time a Tcfs reconcile took.",
            registry=reg,
            buckets=RECONCILE_BUCKETS,
        )
        self._tcfs = pc.gauge(
            "cfs_csi_operator_tcfs",
            "Tcfs objects this operator sees, by their Ready condition's status and reason (none while it is not "
            "the leader).",
            ["ready", "reason"],
            registry=reg,
        )
        for outcome in sorted(record.RECONCILE_OUTCOMES):
            self._reconciles.labels(outcome)  # zero until counted: rates work from the first scrape

    def refresh(self) -> None:
        self._tcfs.clear()
        for (ready, reason), count in tcfs_conditions(self._tcfs_source()).items():
            self._tcfs.labels(ready, reason).set(count)

    def reconcile(self, outcome: str, seconds: float) -> None:
        self._reconciles.labels(outcome).inc()
        self._seconds.observe(seconds)


class ProvisionerMetrics(ComponentMetrics):
    """``cfs_csi_provisioner_*``: provisions and deletes by outcome and their time, directory quota calls by
    outcome; its volumes and the quota bytes they record (from ``volumes()``: (count, with a quota, bytes)) at
    each scrape."""

    def __init__(self, volumes: Callable[[], tuple[int, int, int]], prometheus: Core | None = None) -> None:
        super().__init__("subdir-provisioner", cloud=True, prometheus=prometheus)
        pc, reg = self.prometheus, self.registry
        self._volumes_source = volumes
        self._operations = pc.counter(
            "cfs_csi_provisioner_operations_total",
            "Claims provisioned and released volumes deleted, by outcome (refused: for good, an Event says why; "
            "error: retried at the next resync).",
            ["operation", "outcome"],
            registry=reg,
        )
        self._seconds = pc.histogram(
            "cfs_csi_provisioner_operation_duration_seconds",
            "Time to provision a claim or delete a released volume.",
            ["operation"],
            registry=reg,
            buckets=PROVISION_BUCKETS,
        )
        self._quotas = pc.counter(
            "cfs_csi_provisioner_quota_operations_total",
            "Directory quotas set or removed on the share's file system, by outcome.",
            ["operation", "outcome"],
            registry=reg,
        )
        self._volumes = pc.gauge(
            "cfs_csi_provisioner_volumes",
            "Volumes (PVs) of this provisioner's share, by whether they record a directory quota.",
            ["quota"],
            registry=reg,
        )
        self._quota_bytes = pc.gauge(
            "cfs_csi_provisioner_quota_bytes",
            "Sum of the directory quotas the share's volumes record (what the share may be asked to hold).",
            registry=reg,
        )

    def refresh(self) -> None:
        count, with_quota, quota_bytes = self._volumes_source()
        self._volumes.labels("set").set(with_quota)
        self._volumes.labels("none").set(count - with_quota)
        self._quota_bytes.set(quota_bytes)

    def provision(self, operation: str, outcome: str, seconds: float) -> None:
        self._operations.labels(operation, outcome).inc()
        self._seconds.labels(operation).observe(seconds)

    def quota(self, operation: str, outcome: str) -> None:
        self._quotas.labels(operation, outcome).inc()
