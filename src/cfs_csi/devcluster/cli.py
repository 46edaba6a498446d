"""``cfs-csi dev-cluster``: build the Go tools or the images, or run a loopback control plane until Ctrl-C."""

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
    image = actions.add_parser("image", help="build (once) our image and csi-provisioner's; print their archives")
    image.add_argument("--no-provisioner", action="store_true", help="only the cfs-csi image")
    up = actions.add_parser("up", help="start etcd, kube-apiserver and kube-controller-manager; Ctrl-C stops")
    up.add_argument("--dir", type=Path, default=None, help="working directory (default: a new temporary one)")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from cfs_csi.devcluster import cluster, tools

    if args.action == "tools":
        tools.ensure(args.names or list(tools.TOOLS))
        print(tools.bin_dir())
        return 0
    if args.action == "image":
        return _image(args)
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


def _image(args: argparse.Namespace) -> int:
    from cfs_csi.devcluster import images

    if reasons := images.check_prerequisites():
        print(f"cannot build images here: {'; '.join(reasons)}")
        return 1
    try:
        built = [images.ensure_image()]
        if not args.no_provisioner:
            built.append(images.ensure_provisioner_image())
    except images.ImageError as exc:
        print(f"image build failed: {exc}")
        return 1
    for image in built:
        how = "built" if image.built else "cached"
        print(f"{image.name} {image.archive} ({image.size / 1e6:.0f} MB, {how} in {image.seconds:.1f}s)")
    return 0
