"""``cfs-csi subdir-provisioner``: configured by environment, as the operator's Deployment sets it.

``PROVISIONER_NAME`` (the class's provisioner), ``NFS_SERVER``, ``NFS_PATH`` (``/<fsid>/`` for NFSv3, ``/`` for
NFSv4), optionally ``NFS_FSID`` and ``NFS_VERS``, ``SHARE_MOUNT_PATH`` where the share is mounted in the pod
(default ``/persistentvolumes``), and ``CFS_ID``, the file system's cloud id that directory quotas are set on.

The cloud flags are the operator's (:func:`cfs_csi.cloud.factory.add_backend_arguments`), passed on by it; the
backend is built only when a quota is first set or removed (:mod:`.cloud`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cfs_csi.provisioner.volumes import Share

if TYPE_CHECKING:
    from cfs_csi.cloud.base import FileStorage
    from cfs_csi.driver.health import HttpServer
    from cfs_csi.provisioner.handlers import ProvisionerContext


def share_from_env(env: Mapping[str, str]) -> tuple[str, Share, Path]:
    """(provisioner name, share, mount path); ValueError naming what is missing or inconsistent."""
    name = env.get("PROVISIONER_NAME", "").strip()
    server = env.get("NFS_SERVER", "").strip()
    path = env.get("NFS_PATH", "").strip() or "/"
    if not name or not server:
        raise ValueError("PROVISIONER_NAME and NFS_SERVER must be set (the operator's Deployment sets them)")
    vers = env.get("NFS_VERS", "").strip() or ("4" if path == "/" else "3")
    fsid = env.get("NFS_FSID", "").strip() or path.strip("/")
    if vers == "3" and (not fsid or "/" in fsid):
        raise ValueError(f"NFS_PATH {path!r} is not /<fsid>/ as an NFSv3 share of CFS needs")
    root = Path(env.get("SHARE_MOUNT_PATH", "").strip() or "/persistentvolumes")
    return name, Share(server=server, fsid=fsid, vers=vers, cloud_id=env.get("CFS_ID", "").strip()), root


def add_provisioner_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_arguments(sub.add_parser("subdir-provisioner", help=HELP))


HELP = "shared mode: one directory and PV per claim of a shared class"


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from cfs_csi.kube.liveness import add_health_argument  # small: stdlib only

    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, then in-cluster")
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="act only while holding the Lease named after the provisioner (default: on)",
    )
    p.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "kube-system"), help="of the Lease")
    p.add_argument(
        "--dir-mode",
        type=lambda text: int(text, 8),
        default=0o777,
        help="mode of new directories, octal (default 0777, like the NFS sub-directory provisioner)",
    )
    p.add_argument(
        "--resync",
        type=float,
        default=60.0,
        help="seconds between full re-lists of classes, claims and PVs, which retry what failed (default 60)",
    )
    add_health_argument(p)
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics (GET /metrics) on this port: provisions and deletes by outcome, directory "
        "quotas, CFS API calls; 0: off",
    )
    from cfs_csi.cloud.factory import add_backend_arguments  # small: the tencent backend is imported when built

    add_backend_arguments(p)
    p.set_defaults(run=_run)  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    name, share, root = share_from_env(os.environ)
    if not root.is_dir():
        raise ValueError(f"the share is not mounted at {root} (SHARE_MOUNT_PATH)")
    from cfs_csi.kube.leading import few_malloc_arenas

    few_malloc_arenas()
    asyncio.run(_provide(args, name, share, root))
    return 0


async def _provide(args: argparse.Namespace, name: str, share: Share, root: Path) -> None:
    from cfs_csi.driver.health import start_health
    from cfs_csi.kube.leading import lead_and_run
    from cfs_csi.kube.rest import Client
    from cfs_csi.provisioner.cloud import ShareQuotas
    from cfs_csi.provisioner.handlers import Provisioner, ProvisionerContext

    def build() -> FileStorage:
        from cfs_csi.cloud.factory import backend_from_arguments

        return backend_from_arguments(args)

    client = Client.from_kubeconfig(args.kubeconfig, user_agent=f"cfs-csi-subdir-provisioner/{name}")
    context = ProvisionerContext(name=name, share=share, root=root, dir_mode=args.dir_mode, client=client,
                                 quotas=ShareQuotas(share.cloud_id, build))  # fmt: skip
    exposition = await _serve_metrics(getattr(args, "metrics_port", 0), context)
    health = await start_health(getattr(args, "health_port", 0), context.liveness.check)
    try:
        await lead_and_run(client, name, args.namespace, Provisioner(context, args.resync).run, args.leader_elect,
                           liveness=context.liveness)  # fmt: skip
    finally:
        for server in (exposition, health):
            if server is not None:
                await server.stop()
        assert context.events is not None
        await context.events.drain()
        await client.aclose()


def share_volumes(volumes: Iterable[Mapping[str, Any]], provisioner: str) -> tuple[int, int, int]:
    """(PVs ``provisioner`` made, those recording a directory quota, the sum of their quotas in bytes) (pure)."""
    from cfs_csi.provisioner.quotas import recorded_quota

    count = with_quota = total = 0
    for pv in volumes:
        annotations = (pv.get("metadata") or {}).get("annotations") or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") != provisioner:
            continue
        count += 1
        quota = recorded_quota(((pv.get("spec") or {}).get("csi") or {}).get("volumeAttributes") or {})
        if quota:
            with_quota += 1
            total += quota
    return count, with_quota, total


async def _serve_metrics(port: int, context: ProvisionerContext) -> HttpServer | None:
    """With ``port``: count the provisioner's events from now on and serve ``GET /metrics`` there (volumes and
    quota bytes read from the PV cache at each scrape); the server, to stop. None without."""
    if not port:
        return None
    from cfs_csi.driver.health import metrics_server
    from cfs_csi.metrics import record
    from cfs_csi.metrics.shared import ProvisionerMetrics

    metrics = ProvisionerMetrics(lambda: share_volumes(list(context.volumes.values()), context.name))
    record.install(metrics)
    server = metrics_server(port, metrics.exposition)
    await server.start()
    return server


def main(argv: list[str] | None = None) -> int:
    """``python -m cfs_csi.provisioner``: the same command without the rest of ``cfs-csi``'s sub-commands."""
    import sys

    from cfs_csi import logsetup

    parser = argparse.ArgumentParser(prog="python -m cfs_csi.provisioner", description=HELP)
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--log-format", default="text", choices=logsetup.LOG_FORMATS)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logsetup.configure(args.log_level, log_format=args.log_format, component="cfs-csi-subdir-provisioner")
    try:
        result: int = args.run(args)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"cfs-csi subdir-provisioner: error: {logsetup.redact(str(exc))}", file=sys.stderr)
        return 2
    return result
