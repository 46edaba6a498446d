"""The CSI gRPC server on a unix socket: which services it serves, start-up, and a draining stop.

Served with grpclib (:mod:`cfs_csi.driver.grpcserve`), not grpcio: the node plugin must not load grpcio's C core
(issue 15). The Controller and Node servicers are imported only by the component that serves them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cfs_csi.csi import csi_pb2
from cfs_csi.driver.grpcserve import GrpcServer
from cfs_csi.driver.health import Check, HealthServer, HttpServer, csi_probe, metrics_server
from cfs_csi.driver.identity import IdentityServicer, ReadinessCheck
from cfs_csi.driver.interceptor import intercept
from cfs_csi.driver.listen import Listener, listen_unix, socket_path
from cfs_csi.driver.listen import remove_stale_socket as _remove_stale_socket
from cfs_csi.mount import runner

if TYPE_CHECKING:
    from cfs_csi.cloud.base import FileStorage
    from cfs_csi.driver.node import NodeTimeouts
    from cfs_csi.metrics.csi import CsiMetrics
    from cfs_csi.mount.mounter import Mounter
    from cfs_csi.registration.server import Registrar

log = logging.getLogger(__name__)


@dataclass
class NodeConfig:
    node_id: str
    mounter: Mounter
    state_dir: Path
    #: The kubelet's directory (``--kubelet-dir``): the node acts only below its ``pods/``.
    kubelet_dir: Path = Path("/var/lib/kubelet")
    #: None: :class:`~cfs_csi.driver.node.NodeTimeouts`' defaults.
    timeouts: NodeTimeouts | None = None


_SERVICES = csi_pb2.DESCRIPTOR.services_by_name


def build_server(storage: FileStorage | None, node: NodeConfig | None, probe_storage: bool = True) -> GrpcServer:
    """A server with Identity, plus Controller when ``storage`` is given and Node when ``node`` is.

    ``probe_storage``: Probe also asks the storage backend (the cloud) whether it answers. Off where Probe drives a
    liveness check (the livenessprobe sidecar fails on "not ready"): restarting the controller cannot fix a cloud
    outage, and would cut the calls it has in flight.
    """
    server = GrpcServer()
    checks: list[ReadinessCheck] = []
    if storage is not None:
        from cfs_csi.driver.controller import ControllerServicer

        server.add(_SERVICES["Controller"], ControllerServicer(storage), intercept)
        if probe_storage:
            checks.append(storage.probe)
    if node is not None:
        from cfs_csi.driver.locks import TargetLocks
        from cfs_csi.driver.node import NodeServicer, NodeTimeouts
        from cfs_csi.driver.published import PublishedVolumes
        from cfs_csi.mount.targets import PodsDir

        published = PublishedVolumes(node.state_dir)
        pods = PodsDir(str(node.kubelet_dir))
        locks = TargetLocks(node.state_dir / "running")
        timeouts = node.timeouts or NodeTimeouts()
        servicer = NodeServicer(node.node_id, node.mounter, published, timeouts, pods, locks)
        servicer.reconcile()
        server.add(_SERVICES["Node"], servicer, intercept)
    server.add(_SERVICES["Identity"], IdentityServicer(storage is not None, checks), intercept)
    return server


def remove_stale_socket(path: str) -> None:
    """:func:`cfs_csi.driver.listen.remove_stale_socket`, logged."""
    if _remove_stale_socket(path):
        log.info("removed stale socket %s", path)


async def serve(
    server: GrpcServer,
    endpoint: str,
    grace: float = 30.0,
    registrar: Registrar | None = None,
    health_port: int = 0,
    listener: Listener | None = None,
    health_socket: socket.socket | None = None,
    metrics: CsiMetrics | None = None,
    metrics_port: int = 0,
    metrics_socket: socket.socket | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then let in-flight calls finish (up to ``grace`` s) and clean up.

    ``registrar``: also register with the kubelet once the CSI socket answers (the kubelet calls it at once), and
    unregister first on the way out. ``health_port``: also serve ``GET /healthz`` there (0: not at all).
    ``listener``: the socket of ``endpoint``, bound early (:mod:`cfs_csi.driver.listen`); ``serve`` owns it from
    here on and closes and removes it on the way out, as one it binds itself. Connections that waited in its
    backlog are accepted only now, with every service built. ``health_socket``: likewise, the health port's.
    ``metrics``: also serve ``GET /metrics`` on ``metrics_port`` (or ``metrics_socket``, bound early), a port of
    its own, once the CSI socket serves.
    """
    path = socket_path(endpoint)
    if listener is None:
        listener = listen_unix(path)
    elif listener.path != path:
        listener.close()
        raise ValueError(f"the socket bound at {listener.path} is not the endpoint's {path}")
    if listener.removed_stale:
        log.info("removed stale socket %s", path)
    try:
        if registrar is not None:
            remove_stale_socket(str(registrar.path))  # before serving anything: a refusal leaves no socket behind
    except BaseException:
        listener.close()
        raise
    stop = asyncio.Event()
    health: HealthServer | None = None
    exposition: HttpServer | None = None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if listener.signalled:
        log.info("stopping: asked to while starting")
        stop.set()
    try:
        if not stop.is_set():
            await server.start(path, sock=listener.sock)
            log.info("serving CSI on unix://%s", path)
            if registrar is not None:
                await registrar.start()
            if health_port:
                checks: list[Check] = [csi_probe(path)]
                if registrar is not None:
                    checks.append(registrar.problem)
                health = HealthServer(health_port, checks, sock=health_socket)
                await health.start()
            if metrics is not None and (metrics_port or metrics_socket is not None):
                exposition = metrics_server(metrics_port, metrics.exposition, sock=metrics_socket)
                await exposition.start()
        await stop.wait()
        if registrar is not None:
            await registrar.stop()  # the kubelet forgets the driver: no new calls while we drain
        log.info("stopping: draining in-flight calls (up to %.0fs)", grace)
        await server.stop(grace)
        # A mount or unmount still running would outlive the plugin (it runs in a session of its own): kill it, so
        # that no command is left behind; one stuck in the kernel keeps its target's lock file locked until it
        # exits, so the next run answers ABORTED for that target meanwhile.
        killed = runner.kill_all()
        if killed:
            log.warning("stopping: killed %d mount/umount commands still running after the grace period", killed)
    finally:
        if health_socket is not None and health is None:
            health_socket.close()  # never served
        if metrics_socket is not None and exposition is None:
            metrics_socket.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if registrar is not None:
            await registrar.stop()
        if health is not None:
            await health.stop()
        if exposition is not None:
            await exposition.stop()
        listener.close()
        log.info("stopped")
