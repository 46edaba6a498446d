"""What every component's metrics have: their own registry, the build info, the CFS API families where the
component calls the cloud, and the exposition of it all (:meth:`ComponentMetrics.exposition`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cfs_csi import __version__
from cfs_csi.metrics import record
from cfs_csi.metrics.client import Core, core
from cfs_csi.metrics.exposition import render

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Seconds: one CFS API call (a throttled or lost one runs to the client's timeout).
CLOUD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ComponentMetrics(record.Sink):
    """A :class:`~cfs_csi.metrics.record.Sink` on a registry of its own; ``cloud``: with the CFS API families."""

    def __init__(self, component: str, cloud: bool, prometheus: Core | None = None) -> None:
        self.prometheus = pc = prometheus or core()
        self.registry: CollectorRegistry = pc.registry(auto_describe=True)
        info = pc.gauge(
            "cfs_csi_build_info",
            "The running cfs-csi: version and component; always 1.",
            ["version", "component"],
            registry=self.registry,
        )
        info.labels(__version__, component).set(1)
        self._cloud = cloud
        if cloud:
            reg = self.registry
            self._cloud_total = pc.counter(
                "cfs_csi_cloud_requests_total",
                "CFS API calls answered, by action and error category (OK: no error; ClientNetworkError: no answer; "
                "Cancelled: the caller gave up first).",
                ["action", "error"],
                registry=reg,
            )
            self._cloud_seconds = pc.histogram(
                "cfs_csi_cloud_request_duration_seconds",
                "Time a CFS API call took, by action.",
                ["action"],
                registry=reg,
                buckets=CLOUD_BUCKETS,
            )
            self._throttled = pc.counter(
                "cfs_csi_cloud_throttled_total",
                "CFS API calls answered RequestLimitExceeded, by action.",
                ["action"],
                registry=reg,
            )
            self._retries = pc.counter(
                "cfs_csi_cloud_retries_total",
                "CFS API calls retried after a retryable error, by action and error category.",
                ["action", "error"],
                registry=reg,
            )
            self._gave_up = pc.counter(
                "cfs_csi_cloud_retries_exhausted_total",
                "Retryable CFS API errors not retried: the call's time budget would have run out.",
                ["action", "error"],
                registry=reg,
            )

    def refresh(self) -> None:
        """Bring values read from the component's state up to date (called before each exposition)."""

    def exposition(self) -> bytes:
        """The registry in the text format, as ``GET /metrics`` answers it."""
        self.refresh()
        return render(self.registry.collect(), self.prometheus.float_text)

    def cloud_call(self, action: str, code: str, seconds: float) -> None:
        if self._cloud:
            self._cloud_total.labels(action, code).inc()
            self._cloud_seconds.labels(action).observe(seconds)
            if code in record.THROTTLING:
                self._throttled.labels(action).inc()

    def cloud_retry(self, action: str, code: str, gave_up: bool) -> None:
        if self._cloud:
            (self._gave_up if gave_up else self._retries).labels(action, code).inc()
