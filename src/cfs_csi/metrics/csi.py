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

from cfs_csi.metrics import record
from cfs_csi.metrics.base import ComponentMetrics
from cfs_csi.metrics.client import Core

#: Seconds: CSI calls run from under a millisecond (Probe, a republish) to minutes (a file system being created).
RPC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Seconds: a mount or umount command (default timeouts 90 s and 60 s).
MOUNT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 90)
#: Seconds: one statvfs (default timeout 10 s).
STATS_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10)

COMPONENTS = ("controller", "node", "all")


class CsiMetrics(ComponentMetrics):
    """The CSI plugin's metrics for ``component`` (``controller``, ``node`` or ``all``)."""

    def __init__(self, component: str, prometheus: Core | None = None) -> None:
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}")
        super().__init__(component, cloud=component in ("controller", "all"), prometheus=prometheus)
        pc, reg = self.prometheus, self.registry
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

    def mount_command(self, command: str, outcome: str, seconds: float) -> None:
        self._mount_seconds.labels(command, outcome).observe(seconds)

    def volume_stats(self, outcome: str, seconds: float) -> None:
        self._stats_seconds.labels(outcome).observe(seconds)
