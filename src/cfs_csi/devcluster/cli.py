"""``cfs-csi dev-cluster``: build the Go tools or the images, or run a loopback control plane until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cfs_csi.devcluster import node


def add_dev_cluster_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev-cluster", help="a real Kubernetes control plane on 127.0.0.1, for development")
    actions = p.add_subparsers(dest="action", required=True)
    tools = actions.add_parser("tools", help="build (once) and cache the Go programs; print their directory")
    tools.add_argument("names", nargs="*", help="tools to build (default: all)")
    image = actions.add_parser("image", help="build (once) our image and the sidecars'; print their archives")
    image.add_argument("--no-provisioner", action="store_true", help="only the cfs-csi image, no sidecar")
    up = actions.add_parser("up", help="start etcd, kube-apiserver and kube-controller-manager; Ctrl-C stops")
    up.add_argument("--dir", type=Path, default=None, help="working directory (default: a new temporary one)")
    up.add_argument("--with-node", action="store_true",
                    help="also a real node: kube-scheduler, a private containerd and the kubelet (needs root, "
                         "Debian packages containerd runc containernetworking-plugins busybox-static)")  # fmt: skip
    up.add_argument("--product", action="store_true",
                    help="the whole product on that node, as the chart installs it in emulator mode: our image "
                         "and csi-provisioner's built (podman, mmdebstrap) and imported, then helm install; "
                         "implies --with-node")  # fmt: skip
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from cfs_csi.devcluster import cluster, tools

    if args.action == "tools":
        tools.ensure(args.names or list(tools.TOOLS))
        print(tools.bin_dir())
        return 0
    if args.action == "image":
        return _image(args)
    from cfs_csi.devcluster import node

    args.with_node = args.with_node or args.product
    if args.with_node:
        try:
            node.check_requirements()
        except node.NodeUnavailable as exc:
            print(f"dev-cluster: no real node on this machine: {exc}", file=sys.stderr)
            return 1
    # Readiness polls answer 500 until a component is ready: normal, and not worth a line each.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    wanted = [*cluster.CONTROL_PLANE_TOOLS, *(node.NODE_TOOLS if args.with_node else ())]
    binaries = tools.ensure([*wanted, *(("helm", "kubectl") if args.product else ())])
    root = args.dir or Path(tempfile.mkdtemp(prefix="cfs-csi-dev-cluster-"))
    stop = threading.Event()
    # SIGTERM is a stop request from the first moment, as Ctrl-C is: while starting, it unwinds the start (each
    # start stops what it started on any exception); once up, it ends the wait below. Either way the finally
    # clauses stop every process (they run in their own sessions, so no signal reaches them directly).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        plane = cluster.start(root, binaries, remove_root=args.dir is None)
    except KeyboardInterrupt:
        print("dev-cluster: stopped while starting; what had started was stopped", file=sys.stderr)
        return 130
    the_node = None
    installed = False
    try:
        if args.with_node:
            the_node = node.start(plane, binaries)
            print(_node_help(the_node), flush=True)
        if args.product and the_node:
            from cfs_csi.devcluster import product

            print("installing the chart (first run: the images take a few minutes to build)...", flush=True)
            try:
                installed_product = product.install(plane, the_node, binaries["helm"])
            except product.ProductUnavailable as exc:
                print(f"dev-cluster: {exc}", file=sys.stderr)
                return 1
            installed = True
            print(product.usage(plane, binaries["kubectl"], installed_product), flush=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        parts = ["the chart"] if installed else []
        parts += ["the node (containerd, kubelet, every pod)"] if the_node else []
        stops = ", ".join([*parts, "the control plane"])
        print(f"control plane at {plane.server}\nexport KUBECONFIG={plane.kubeconfig}\n"
              f"(Ctrl-C or SIGTERM stops {stops}, and removes what they left)", flush=True)  # fmt: skip
        while not stop.wait(2):
            plane.check()
            if the_node:
                the_node.check()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the teardown short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if installed and the_node:
            from cfs_csi.devcluster import product

            try:
                product.uninstall(plane, the_node, binaries["helm"])
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # the node and plane still go
                print(f"dev-cluster: uninstalling the chart failed: {exc}", file=sys.stderr)
        if the_node:
            the_node.stop()
        plane.stop()
    return 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _node_help(the_node: node.Node) -> str:
    from cfs_csi.devcluster import ociimage

    ctr = " ".join([*the_node.enter(), "ctr", f"--address={the_node.layout.socket}", "--namespace=k8s.io"])
    return (
        f"node {the_node.name} Ready (kubelet /var/lib/kubelet inside the node = {the_node.layout.kubelet_dir})\n"
        f"images: {ociimage.BUSYBOX_IMAGE} (imagePullPolicy: Never; no registry), {ociimage.PAUSE_IMAGE}\n"
        f"import an image archive: {ctr} images import <archive.tar>\n"
        "pods off the host network get 10.244.0.0/24 addresses on a bridge private to the node (no kube-proxy)"
    )


def _image(args: argparse.Namespace) -> int:
    from cfs_csi.devcluster import images

    if reasons := images.check_prerequisites():
        print(f"cannot build images here: {'; '.join(reasons)}")
        return 1
    try:
        built = [images.ensure_image()]
        if not args.no_provisioner:
            built += [images.ensure_sidecar_image(name) for name in images.SIDECAR_TOOLS]
    except images.ImageError as exc:
        print(f"image build failed: {exc}")
        return 1
    for image in built:
        how = "built" if image.built else "cached"
        print(f"{image.name} {image.archive} ({image.size / 1e6:.0f} MB, {how} in {image.seconds:.1f}s)")
    return 0
