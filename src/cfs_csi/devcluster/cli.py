"""``cfs-csi dev-cluster``: build the Go tools, or run a loopback control plane until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import tempfile
import threading
from pathlib import Path


def add_dev_cluster_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev-cluster", help="a real Kubernetes control plane on 127.0.0.1, for development")
    actions = p.add_subparsers(dest="action", required=True)
    tools = actions.add_parser("tools", help="build (once) and cache the Go programs; print their directory")
    tools.add_argument("names", nargs="*", help="tools to build (default: all)")
    up = actions.add_parser("up", help="start etcd, kube-apiserver and kube-controller-manager; Ctrl-C stops")
    up.add_argument("--dir", type=Path, default=None, help="working directory (default: a new temporary one)")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from cfs_csi.devcluster import cluster, tools

    if args.action == "tools":
        tools.ensure(args.names or list(tools.TOOLS))
        print(tools.bin_dir())
        return 0
    binaries = tools.ensure(cluster.CONTROL_PLANE_TOOLS)
    root = args.dir or Path(tempfile.mkdtemp(prefix="cfs-csi-dev-cluster-"))
    plane = cluster.start(root, binaries, remove_root=args.dir is None)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"control plane at {plane.server}\nexport KUBECONFIG={plane.kubeconfig}\n(Ctrl-C stops and cleans up)")
    try:
        while not stop.wait(2):
            plane.check()
    finally:
        plane.stop()
    return 0
