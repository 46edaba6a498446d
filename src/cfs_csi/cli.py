"""The ``cfs-csi`` command: every component of the driver is a sub-command of one program.

Only the sub-command that runs is imported (:data:`_COMMANDS`): the node plugin starts in a fraction of the time
and memory that the operator, the provisioner, the emulator and the dev cluster would cost it. The full parser
(every sub-command) is built only when no known sub-command is named (``--help``, a typo).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from cfs_csi import DRIVER_NAME, __version__, logsetup

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


def _serve_parser(sub: Subparsers) -> None:
    from cfs_csi.cloud.factory import add_backend_arguments

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
        "--probe-cloud",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Probe also checks that the cloud answers (turn off where Probe is a liveness check)",
    )
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    # Imported here, after main's refuse_modules: these pull in asyncio (and through it, ssl unless refused).
    import asyncio

    from cfs_csi.driver.node import NodeTimeouts
    from cfs_csi.driver.server import NodeConfig, build_server, serve, socket_path
    from cfs_csi.mount.mounter import BindMounter, Mounter, NfsMounter

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
            mounter = NfsMounter(timeouts.mount)
        node = NodeConfig(
            node_id=args.node_id,
            mounter=mounter,
            state_dir=args.state_dir / "node",
            kubelet_dir=args.kubelet_dir,
            timeouts=timeouts,
        )

    registration = None
    if node is not None and args.register:
        csi_socket = args.kubelet_registration_path or socket_path(args.endpoint)
        if not csi_socket.startswith("/"):
            raise ValueError(f"--kubelet-registration-path {csi_socket!r} must be an absolute path")
        registration = (args.kubelet_dir, DRIVER_NAME, csi_socket)

    async def main() -> None:
        registrar = None
        if registration is not None:
            from cfs_csi.registration.server import Registrar, plugin_info, registration_socket

            kubelet_dir, driver, csi_socket = registration
            registrar = Registrar(registration_socket(kubelet_dir, driver), plugin_info(driver, csi_socket))
        server = build_server(storage, node, probe_storage=args.probe_cloud)
        await serve(server, args.endpoint, grace=args.grace, registrar=registrar, health_port=args.health_port)

    asyncio.run(main())
    return 0


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
_VALUE_OPTIONS = ("--log-level",)


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
    sub = parser.add_subparsers(dest="command", required=True)
    named = command_named(words)
    for name, add in _COMMANDS:
        if named is None or name == named:
            add(sub)
    args = parser.parse_args(words)
    logsetup.configure(args.log_level)  # the one set-up of every component's logging, with redaction
    try:
        result: int = args.run(args)
    except (ValueError, RuntimeError, OSError, _api_exception()) as exc:
        # Start-up problems an admin must fix (bad endpoint, socket in use): one line, no traceback.
        print(f"cfs-csi: error: {logsetup.redact(str(exc))}", file=sys.stderr)
        return 2
    return result
