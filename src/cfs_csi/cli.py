"""The ``cfs-csi`` command: every component of the driver is a sub-command of one program."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from pathlib import Path

from cfs_csi import DRIVER_NAME, __version__, logsetup
from cfs_csi.cloud.factory import add_backend_arguments, backend_from_arguments
from cfs_csi.driver.node import NodeTimeouts
from cfs_csi.driver.server import NodeConfig, build_server, serve, socket_path
from cfs_csi.mount.mounter import BindMounter, Mounter, NfsMounter
from cfs_csi.registration.server import Registrar, plugin_info, registration_socket
from cfs_csi.volume.exports import ExportRoot


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve the CSI gRPC API on a unix socket")
    p.add_argument("--endpoint", default="unix:///csi/csi.sock", help="unix:///path/to/csi.sock")
    p.add_argument("--node-id", default=socket.gethostname(), help="this node's name (default: host name)")
    p.add_argument("--component", choices=("controller", "node", "all"), default="all")
    add_backend_arguments(p)
    p.add_argument(
        "--mounter",
        choices=("nfs", "bind"),
        default=None,
        help="how the node mounts: real NFS, or bind mounts of local export directories "
        "(default: bind with --backend local, nfs otherwise)",
    )
    p.add_argument(
        "--export-root",
        type=Path,
        default=None,
        help="export directories for --mounter bind (default: <state-dir>/local/exports)",
    )
    p.add_argument(
        "--kubelet-dir",
        type=Path,
        default=Path("/var/lib/kubelet"),
        help="the kubelet's directory; the node mounts, unmounts and removes only below its pods/ sub-directory",
    )
    p.add_argument("--mount-timeout", type=float, default=NodeTimeouts.mount)
    p.add_argument("--unmount-timeout", type=float, default=NodeTimeouts.unmount)
    p.add_argument("--stats-timeout", type=float, default=NodeTimeouts.stats)
    p.add_argument("--grace", type=float, default=30.0, help="seconds to drain in-flight calls on SIGTERM")
    p.add_argument(
        "--register",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="node: register with the kubelet through <kubelet-dir>/plugins_registry/<driver>-reg.sock "
        "(turn off where node-driver-registrar does it)",
    )
    p.add_argument(
        "--kubelet-registration-path",
        default=None,
        help="node: the CSI socket's path as the kubelet sees it, when it differs from --endpoint's "
        "(a container's /csi/csi.sock is the host's <kubelet-dir>/plugins/<driver>/csi.sock)",
    )
    p.add_argument(
        "--health-port",
        type=int,
        default=0,
        help="serve GET /healthz on this port (200 when the CSI socket answers Probe and, on a node, the "
        "registration socket is in place; 503 otherwise); 0: off",
    )
    p.add_argument(
        "--probe-cloud",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Probe also checks that the cloud answers (turn off where Probe is a liveness check)",
    )
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    storage = None
    if args.component in ("controller", "all"):
        storage = backend_from_arguments(args)
    node = None
    if args.component in ("node", "all"):
        timeouts = NodeTimeouts(mount=args.mount_timeout, unmount=args.unmount_timeout, stats=args.stats_timeout)
        kind = args.mounter or ("bind" if args.backend == "local" else "nfs")
        mounter: Mounter
        if kind == "bind":
            root = args.export_root or args.state_dir / "local" / "exports"
            mounter = BindMounter(ExportRoot(root), timeouts.mount)
        else:
            mounter = NfsMounter(timeouts.mount)
        node = NodeConfig(
            node_id=args.node_id,
            mounter=mounter,
            state_dir=args.state_dir / "node",
            kubelet_dir=args.kubelet_dir,
            timeouts=timeouts,
        )

    registrar = None
    if node is not None and args.register:
        csi_socket = args.kubelet_registration_path or socket_path(args.endpoint)
        if not csi_socket.startswith("/"):
            raise ValueError(f"--kubelet-registration-path {csi_socket!r} must be an absolute path")
        registrar = Registrar(registration_socket(args.kubelet_dir, DRIVER_NAME), plugin_info(DRIVER_NAME, csi_socket))

    async def main() -> None:
        server = build_server(storage, node, probe_storage=args.probe_cloud)
        await serve(server, args.endpoint, grace=args.grace, registrar=registrar, health_port=args.health_port)

    asyncio.run(main())
    return 0


def _api_exception() -> type[Exception]:
    """The Kubernetes client's error type if that client is installed (the node image need not have it)."""
    try:
        from kubernetes.client.exceptions import ApiException
    except ImportError:
        return RuntimeError
    return ApiException


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cfs-csi", description="CSI driver for Tencent Cloud CFS")
    parser.add_argument("--version", action="version", version=f"cfs-csi {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    from cfs_csi.client import add_client_parser
    from cfs_csi.devcluster.cli import add_dev_cluster_parser
    from cfs_csi.emulator.cli import add_emulator_parser
    from cfs_csi.operator.cli import add_operator_parser
    from cfs_csi.provisioner.main import add_provisioner_parser

    add_client_parser(sub)
    add_emulator_parser(sub)
    add_dev_cluster_parser(sub)
    add_operator_parser(sub)
    add_provisioner_parser(sub)
    args = parser.parse_args(argv)
    logsetup.configure(args.log_level)  # the one set-up of every component's logging, with redaction
    try:
        result: int = args.run(args)
    except (ValueError, RuntimeError, OSError, _api_exception()) as exc:
        # Start-up problems an admin must fix (bad endpoint, socket in use): one line, no traceback.
        print(f"cfs-csi: error: {logsetup.redact(str(exc))}", file=sys.stderr)
        return 2
    return result
