"""The ``cfs-csi`` command: every component of the driver is a sub-command of one program.

Only the sub-command that runs is imported (:data:`_COMMANDS`): the node plugin starts in a fraction of the time
and memory that the operator, the provisioner, the emulator and the dev cluster would cost it. The full parser
(every sub-command) is built only when no known sub-command is named (``--help``, a typo).
"""

from __future__ import annotations

import argparse
import gc
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from cfs_csi import DRIVER_NAME, __version__

if TYPE_CHECKING:
    from cfs_csi.driver.grpcserve import GrpcServer
    from cfs_csi.metrics.csi import CsiMetrics
    from cfs_csi.registration.server import Registrar

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: Timeouts of the node (seconds); the same defaults as :class:`cfs_csi.driver.node.NodeTimeouts`, which a test
#: compares, repeated here so that ``--help`` needs no driver module.
_MOUNT_TIMEOUT, _UNMOUNT_TIMEOUT, _STATS_TIMEOUT = 90.0, 60.0, 10.0

#: Modules the node plugin must never load: it speaks no TLS (a unix socket, plain-HTTP health) and needs no
#: OpenSSL hash. asyncio imports ``ssl`` only to offer TLS and ``hashlib`` falls back to its built-in SHA-2 when
#: ``_hashlib`` is missing; marking them missing saves about 13 MB of RSS and 20 ms of start-up (issue 15). Code
#: that needed one of them anyway would fail loudly with ImportError, never silently.
NODE_REFUSED_MODULES = ("ssl", "_ssl", "_hashlib")


def refuse_modules(names: tuple[str, ...] = NODE_REFUSED_MODULES) -> None:
    """Make ``import`` of each of ``names`` fail with ImportError in this process (those not loaded yet)."""
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]


def _node_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The backend flags of ``serve`` as the node alone parses them, without importing the cloud package (its
    import costs the node's start-up tens of ms, issue 15). The node reads ``--backend`` (the default mounter)
    and ``--state-dir``; the others are accepted, as with every component, and ignored. A test checks that these
    match :func:`cfs_csi.cloud.factory.add_backend_arguments` flag for flag."""
    parser.add_argument("--backend", choices=("local", "tencent"), default="local")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/cfs-csi"),
        help="local backend file systems (<dir>/local) and node publications (<dir>/node)",
    )
    parser.add_argument("--local-host", default="127.0.0.1", help="ignored by the node")
    ignored = parser.add_argument_group("tencent backend (ignored by the node)")
    for flag in ("--region", "--zone", "--cluster-id", "--cfs-endpoint", "--metadata-url"):
        ignored.add_argument(flag, help=argparse.SUPPRESS)
    ignored.add_argument("--credentials-dir", type=Path, help=argparse.SUPPRESS)
    for flag in ("--cloud-timeout", "--cloud-poll-interval"):
        ignored.add_argument(flag, type=float, help=argparse.SUPPRESS)
    ignored.add_argument("--delete-vendor-volumes", action="store_true", help=argparse.SUPPRESS)


def _serve_parser(sub: Subparsers, node_alone: bool = False) -> None:
    p = sub.add_parser("serve", help="serve the CSI gRPC API on a unix socket")
    p.add_argument("--endpoint", default="unix:///csi/csi.sock", help="unix:///path/to/csi.sock")
    p.add_argument("--node-id", default=socket.gethostname(), help="this node's name (default: host name)")
    p.add_argument("--component", choices=("controller", "node", "all"), default="all")
    if node_alone:
        _node_backend_arguments(p)
    else:
        from cfs_csi.cloud.factory import add_backend_arguments

        add_backend_arguments(p)
    p.add_argument(
        "--mounter",
        choices=("nfs", "bind"),
        default=None,
        help="how the node mounts: real NFS, or bind mounts of local export directories "
        "(default: bind with --backend local, nfs otherwise)",
    )
    p.add_argument(
        "--nfs-mount-helper",
        default="auto",
        metavar="auto|none|PATH",
        help="--mounter nfs: run this mount.nfs directly; auto: the one mount(8) would run (/sbin/mount.nfs), when "
        "there is one; none: always run mount -t nfs (default: auto)",
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
    p.add_argument("--mount-timeout", type=float, default=_MOUNT_TIMEOUT)
    p.add_argument("--unmount-timeout", type=float, default=_UNMOUNT_TIMEOUT)
    p.add_argument("--stats-timeout", type=float, default=_STATS_TIMEOUT)
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
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics (GET /metrics) on this port, a port of its own; 0: off, and "
        "prometheus_client is not even loaded",
    )
    p.add_argument(
        "--probe-cloud",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Probe also checks that the cloud answers (turn off where Probe is a liveness check)",
    )
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    """Bind the CSI socket first, then set up logging, import and build the rest, and serve.

    The socket is bound before anything heavy is imported (:mod:`cfs_csi.driver.listen`), but connections are
    accepted only once every service is built and the node has reconciled its publication records; whatever fails
    before serving closes the socket and removes its file.
    """
    from cfs_csi.driver.listen import listen_tcp, listen_unix, remove_stale_socket, socket_path

    registration_path = None
    if args.component in ("node", "all") and args.register:
        registration_path = args.kubelet_registration_path or socket_path(args.endpoint)
        if not registration_path.startswith("/"):
            raise ValueError(f"--kubelet-registration-path {registration_path!r} must be an absolute path")
        # Before binding anything: a live registration socket (another instance) is a refusal that leaves no
        # socket behind. Registrar checks it again when it starts.
        remove_stale_socket(str(registration_socket_path(args.kubelet_dir)))
    listener = listen_unix(socket_path(args.endpoint))
    listener.catch_stop_signals()
    health_socket = metrics_socket = None
    try:
        if args.health_port:
            health_socket = listen_tcp(args.health_port)
        if args.metrics_port:
            if args.metrics_port == args.health_port:
                raise ValueError("--metrics-port must differ from --health-port")
            metrics_socket = listen_tcp(args.metrics_port)
        _configure_logging(args)
        # Imported here, after main's refuse_modules and the bind: these pull in asyncio (and through it, ssl
        # unless refused), HTTP/2 and protobuf.
        import asyncio

        from cfs_csi.driver.server import serve

        metrics = _install_metrics(args.component) if args.metrics_port else None
        server, registrar = _build_serve(args, registration_path)
    except BaseException:
        listener.close()
        for sock in (health_socket, metrics_socket):
            if sock is not None:
                sock.close()
        raise

    async def main() -> None:
        await serve(
            server,
            args.endpoint,
            grace=args.grace,
            registrar=registrar,
            health_port=args.health_port,
            listener=listener,
            health_socket=health_socket,
            metrics=metrics,
            metrics_port=args.metrics_port,
            metrics_socket=metrics_socket,
        )

    # Everything built so far (modules, servers) lives as long as the process: out of the collector's sight, a full
    # collection no longer walks it, which shortened the controller's p99 (issue 15; bench/controller_load.py).
    gc.collect()
    gc.freeze()
    asyncio.run(main())
    return 0


def _install_metrics(component: str) -> CsiMetrics:
    """The component's metrics, counting from now on (before any service is built: nothing is missed)."""
    from cfs_csi.metrics import record
    from cfs_csi.metrics.csi import CsiMetrics

    metrics = CsiMetrics(component)
    record.install(metrics)
    return metrics


def registration_socket_path(kubelet_dir: Path) -> Path:
    """:func:`cfs_csi.registration.server.registration_socket` of our driver, without importing that module
    (gRPC and protobuf) before the bind; a test compares the two."""
    return kubelet_dir / "plugins_registry" / f"{DRIVER_NAME}-reg.sock"


def _build_serve(args: argparse.Namespace, registration_path: str | None) -> tuple[GrpcServer, Registrar | None]:
    """The CSI server (node: with its publication records reconciled) and the kubelet registrar, if any."""
    from cfs_csi.driver.node import NodeTimeouts
    from cfs_csi.driver.server import NodeConfig, build_server
    from cfs_csi.mount.mounter import BindMounter, Mounter, NfsMounter, chosen_helper

    storage = None
    if args.component in ("controller", "all"):
        from cfs_csi.cloud.factory import backend_from_arguments

        storage = backend_from_arguments(args)
    node = None
    if args.component in ("node", "all"):
        timeouts = NodeTimeouts(mount=args.mount_timeout, unmount=args.unmount_timeout, stats=args.stats_timeout)
        kind = args.mounter or ("bind" if args.backend == "local" else "nfs")
        mounter: Mounter
        if kind == "bind":
            from cfs_csi.volume.exports import ExportRoot

            root = args.export_root or args.state_dir / "local" / "exports"
            mounter = BindMounter(ExportRoot(root), timeouts.mount)
        else:
            mounter = NfsMounter(timeouts.mount, chosen_helper(args.nfs_mount_helper))
        node = NodeConfig(
            node_id=args.node_id,
            mounter=mounter,
            state_dir=args.state_dir / "node",
            kubelet_dir=args.kubelet_dir,
            timeouts=timeouts,
        )
    registrar = None
    if node is not None and registration_path is not None:
        from cfs_csi.registration.server import Registrar, plugin_info, registration_socket

        socket_file = registration_socket(args.kubelet_dir, DRIVER_NAME)
        registrar = Registrar(socket_file, plugin_info(DRIVER_NAME, registration_path))
    return build_server(storage, node, probe_storage=args.probe_cloud), registrar


def component_name(command: str, component: str | None = None) -> str:
    """The ``component`` field of JSON log lines: what a platform team filters on (pure)."""
    if command == "serve":
        return {"controller": "cfs-csi-controller", "node": "cfs-csi-node"}.get(component or "", "cfs-csi")
    return {"operator": "cfs-csi-operator", "subdir-provisioner": "cfs-csi-subdir-provisioner",
            "emulator": "cfs-emulator"}.get(command, "cfs-csi")  # fmt: skip


def _configure_logging(args: argparse.Namespace) -> None:
    from cfs_csi import logsetup

    component = component_name(args.command, getattr(args, "component", None))
    # the one set-up of every component's logging, with redaction
    logsetup.configure(args.log_level, log_format=args.log_format, component=component)


def _api_exception() -> type[Exception]:
    """The Kubernetes client's error type if a sub-command loaded that client (the node never loads it)."""
    module = sys.modules.get("kubernetes.client.exceptions")
    api_exception: type[Exception] = getattr(module, "ApiException", RuntimeError)
    return api_exception


def _client(sub: Subparsers) -> None:
    from cfs_csi.clientcli import add_client_parser

    add_client_parser(sub)


def _emulator(sub: Subparsers) -> None:
    from cfs_csi.emulator.cli import add_emulator_parser

    add_emulator_parser(sub)


def _dev_cluster(sub: Subparsers) -> None:
    from cfs_csi.devcluster.cli import add_dev_cluster_parser

    add_dev_cluster_parser(sub)


def _operator(sub: Subparsers) -> None:
    from cfs_csi.operator.cli import add_operator_parser

    add_operator_parser(sub)


def _provisioner(sub: Subparsers) -> None:
    from cfs_csi.provisioner.main import add_provisioner_parser

    add_provisioner_parser(sub)


#: Each sub-command's name and what adds its parser (importing its modules), in ``--help`` order.
_COMMANDS: tuple[tuple[str, Callable[[Subparsers], None]], ...] = (
    ("serve", _serve_parser),
    ("client", _client),
    ("emulator", _emulator),
    ("dev-cluster", _dev_cluster),
    ("operator", _operator),
    ("subdir-provisioner", _provisioner),
)

#: Options of the top-level parser that take a value (the sub-command is the first word that is not one).
_VALUE_OPTIONS = ("--log-level", "--log-format")


def command_named(argv: list[str]) -> str | None:
    """The sub-command that ``argv`` names, if it names a known one before anything unexpected (pure)."""
    names = {name for name, _ in _COMMANDS}
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _VALUE_OPTIONS:
            skip = True
        elif word.startswith("-"):
            if word in ("-h", "--help", "--version"):
                return None
        else:
            return word if word in names else None
    return None


def node_only(argv: list[str]) -> bool:
    """Whether ``argv`` runs the node plugin alone (``serve --component=node``), decided before any import that
    could load a refused module (pure)."""
    if command_named(argv) != "serve":
        return False
    return any(
        word == "--component=node" or (word == "--component" and argv[index + 1 : index + 2] == ["node"])
        for index, word in enumerate(argv)
    )


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if node_only(words):
        refuse_modules()
    parser = argparse.ArgumentParser(prog="cfs-csi", description="CSI driver for Tencent Cloud CFS")
    parser.add_argument("--version", action="version", version=f"cfs-csi {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--log-format", default="text", choices=("text", "json"),
                        help="text lines, or one JSON object per line (time, level, component, logger, message, "
                        "and the volume/claim it is about) (default: text)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    named = command_named(words)
    node_alone = node_only(words)
    for name, add in _COMMANDS:
        if name == "serve" and node_alone:
            _serve_parser(sub, node_alone=True)
        elif named is None or name == named:
            add(sub)
    args = parser.parse_args(words)
    if node_alone and args.component != "node":  # e.g. --component=node --component=all: the last one wins
        parser.error("--component: give it once (the node alone was asked for, then another component)")
    if args.run is not _run_serve:
        _configure_logging(args)  # serve does it right after binding its socket
    try:
        result: int = args.run(args)
    except (ValueError, RuntimeError, OSError, _api_exception()) as exc:
        from cfs_csi import logsetup

        # Start-up problems an admin must fix (bad endpoint, socket in use): one line, no traceback.
        print(f"cfs-csi: error: {logsetup.redact(str(exc))}", file=sys.stderr)
        return 2
    return result
