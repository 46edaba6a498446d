"""The CSI gRPC server on a unix socket: which services it serves, start-up, and a draining stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from cfs_csi.cloud.base import FileStorage
from cfs_csi.csi import csi_pb2_grpc
from cfs_csi.driver.controller import ControllerServicer
from cfs_csi.driver.health import Check, HealthServer, csi_probe
from cfs_csi.driver.identity import IdentityServicer, ReadinessCheck
from cfs_csi.driver.interceptor import CsiInterceptor
from cfs_csi.driver.locks import TargetLocks
from cfs_csi.driver.node import NodeServicer, NodeTimeouts
from cfs_csi.driver.published import PublishedVolumes
from cfs_csi.mount import runner
from cfs_csi.mount.mounter import Mounter
from cfs_csi.mount.targets import PodsDir
from cfs_csi.registration.server import Registrar

log = logging.getLogger(__name__)


@dataclass
class NodeConfig:
    node_id: str
    mounter: Mounter
    state_dir: Path
    #: The kubelet's directory (``--kubelet-dir``): the node acts only below its ``pods/``.
    kubelet_dir: Path = Path("/var/lib/kubelet")
    timeouts: NodeTimeouts = field(default_factory=NodeTimeouts)


def build_server(storage: FileStorage | None, node: NodeConfig | None, probe_storage: bool = True) -> grpc.aio.Server:
    """A server with Identity, plus Controller when ``storage`` is given and Node when ``node`` is.

    ``probe_storage``: Probe also asks the storage backend (the cloud) whether it answers. Off where Probe drives a
    liveness check (the livenessprobe sidecar fails on "not ready"): restarting the controller cannot fix a cloud
    outage, and would cut the calls it has in flight.
    """
    server = grpc.aio.server(interceptors=[CsiInterceptor()])
    checks: list[ReadinessCheck] = []
    if storage is not None:
        csi_pb2_grpc.add_ControllerServicer_to_server(ControllerServicer(storage), server)
        if probe_storage:
            checks.append(storage.probe)
    if node is not None:
        published = PublishedVolumes(node.state_dir)
        pods = PodsDir(str(node.kubelet_dir))
        locks = TargetLocks(node.state_dir / "running")
        servicer = NodeServicer(node.node_id, node.mounter, published, node.timeouts, pods, locks)
        servicer.reconcile()
        csi_pb2_grpc.add_NodeServicer_to_server(servicer, server)
    csi_pb2_grpc.add_IdentityServicer_to_server(IdentityServicer(storage is not None, checks), server)
    return server


def socket_path(endpoint: str) -> str:
    """The file of a ``unix://`` endpoint (``unix:///abs/path`` or ``unix:/abs/path``)."""
    if not endpoint.startswith("unix:"):
        raise ValueError(f"endpoint {endpoint!r} must be a unix socket (unix:///path/csi.sock)")
    path = endpoint.removeprefix("unix:").removeprefix("//")
    if not os.path.isabs(path):
        raise ValueError(f"endpoint {endpoint!r} must name an absolute path")
    return path


def remove_stale_socket(path: str) -> None:
    """Remove a socket left by a previous run; refuse to remove a live one or a non-socket file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)
        log.info("removed stale socket %s", path)
        return
    finally:
        probe.close()
    raise RuntimeError(f"another process is serving on {path}")


async def serve(
    server: grpc.aio.Server,
    endpoint: str,
    grace: float = 30.0,
    registrar: Registrar | None = None,
    health_port: int = 0,
) -> None:
    """Serve until SIGTERM or SIGINT, then let in-flight calls finish (up to ``grace`` s) and clean up.

    ``registrar``: also register with the kubelet once the CSI socket answers (the kubelet calls it at once), and
    unregister first on the way out. ``health_port``: also serve ``GET /healthz`` there (0: not at all).
    """
    path = socket_path(endpoint)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    remove_stale_socket(path)
    if registrar is not None:
        remove_stale_socket(str(registrar.path))  # before serving anything: a refusal leaves no socket behind
    stop = asyncio.Event()
    health: HealthServer | None = None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        server.add_insecure_port(f"unix://{path}")
        await server.start()
        log.info("serving CSI on unix://%s", path)
        if registrar is not None:
            await registrar.start()
        if health_port:
            checks: list[Check] = [csi_probe(path)]
            if registrar is not None:
                checks.append(registrar.problem)
            health = HealthServer(health_port, checks)
            await health.start()
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
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if registrar is not None:
            await registrar.stop()
        if health is not None:
            await health.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        log.info("stopped")
