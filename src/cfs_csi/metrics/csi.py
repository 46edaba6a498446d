"""The metrics of the CSI plugin (``serve``): controller, node, or both in one process.

Every component: ``cfs_csi_build_info`` and the CSI calls (``cfs_csi_rpc_*``, counted in
:func:`cfs_csi.driver.interceptor.intercept`, one place for both servers). The controller adds the cloud API
(``cfs_csi_cloud_*``), the node the mount commands and volume statistics (``cfs_csi_mount_*``,
``cfs_csi_volume_stats_*``). Families of the other component are not registered, so a scrape shows only what
can move.

Label values (see :mod:`cfs_csi.metrics.record`): ``method`` is a CSI method name, ``code`` a gRPC status name,
``action`` a CFS API action our code names, ``error`` an API error category, ``command`` ``mount``/``umount``,
``outcome`` one of a fixed set. No volume, name or path is ever a label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cfs_csi import __version__
from cfs_csi.metrics import record
from cfs_csi.metrics.client import Core, core

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Seconds: CSI calls run from under a millisecond (Probe, a republish) to minutes (a file system being created).
RPC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Seconds: one CFS API call (a throttled or lost one runs to the client's timeout).
CLOUD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Seconds: a mount or umount command (default timeouts 90 s and 60 s).
MOUNT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 90)
#: Seconds: one statvfs (default timeout 10 s).
STATS_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10)

COMPONENTS = ("controller", "node", "all")


class CsiMetrics:
    """A :class:`~cfs_csi.metrics.record.Sink` on its own registry, for ``component`` (``controller``, ``node`` or
    ``all``)."""

    def __init__(self, component: str, prometheus: Core | None = None) -> None:
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}")
        pc = prometheus or core()
        self.registry: CollectorRegistry = pc.registry(auto_describe=True)
        self.float_text = pc.float_text
        reg = self.registry
        info = pc.gauge(
            "cfs_csi_build_info",
            "The running cfs-csi: version and component; always 1.",
            ["version", "component"],
            registry=reg,
        )
        info.labels(__version__, component).set(1)
        self._rpc_total = pc.counter(
            "cfs_csi_rpc_requests_total",
            "CSI calls answered, by method and gRPC status.",
            ["method", "code"],
            registry=reg,
        )
        self._rpc_seconds = pc.histogram(
            "cfs_csi_rpc_duration_seconds",
            "Time to answer a CSI call, by method.",
            ["method"],
            registry=reg,
            buckets=RPC_BUCKETS,
        )
        if component in ("controller", "all"):
            self._cloud_total = pc.counter(
                "cfs_csi_cloud_requests_total",
                "CFS API calls answered, by action and error category (OK: no error; ClientNetworkError: no answer).",
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
        if component in ("node", "all"):
            self._mount_seconds = pc.histogram(
                "cfs_csi_mount_command_duration_seconds",
                "mount and umount commands, by outcome (timeout: killed at its deadline).",
                ["command", "outcome"],
                registry=reg,
                buckets=MOUNT_BUCKETS,
            )
            self._stats_seconds = pc.histogram(
                "cfs_csi_volume_stats_duration_seconds",
                "statvfs of published volumes, by outcome (stale: ESTALE/EIO/ENOTCONN...; timeout: hung server).",
                ["outcome"],
                registry=reg,
                buckets=STATS_BUCKETS,
            )
            hung = pc.gauge(
                "cfs_csi_volume_stats_hung_probes",
                "Volumes whose statvfs is past its deadline and still blocked (a hung file server).",
                registry=reg,
            )
            hung.set_function(record.stuck_probes)
            running = pc.gauge(
                "cfs_csi_mount_commands_running",
                "mount and umount commands running now; killed: killed at a deadline, cancel or stop and not exited "
                "yet (stuck in the kernel on a dead server: their targets answer ABORTED until they exit).",
                ["state"],
                registry=reg,
            )
            running.labels("running").set_function(lambda: record.running_commands()[0])
            running.labels("killed").set_function(lambda: record.running_commands()[1])

    def rpc(self, method: str, code: str, seconds: float) -> None:
        self._rpc_total.labels(method, code).inc()
        self._rpc_seconds.labels(method).observe(seconds)

    def cloud_call(self, action: str, code: str, seconds: float) -> None:
        self._cloud_total.labels(action, code).inc()
        self._cloud_seconds.labels(action).observe(seconds)
        if code in record.THROTTLING:
            self._throttled.labels(action).inc()

    def cloud_retry(self, action: str, code: str, gave_up: bool) -> None:
        (self._gave_up if gave_up else self._retries).labels(action, code).inc()

    def mount_command(self, command: str, outcome: str, seconds: float) -> None:
        self._mount_seconds.labels(command, outcome).observe(seconds)

    def volume_stats(self, outcome: str, seconds: float) -> None:
        self._stats_seconds.labels(outcome).observe(seconds)
