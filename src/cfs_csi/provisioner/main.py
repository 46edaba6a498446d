"""``cfs-csi subdir-provisioner``: configured by environment, as the operator's Deployment sets it.

``PROVISIONER_NAME`` (the class's provisioner), ``NFS_SERVER``, ``NFS_PATH`` (``/<fsid>/`` for NFSv3, ``/`` for
NFSv4), optionally ``NFS_FSID`` and ``NFS_VERS``, and ``SHARE_MOUNT_PATH`` where the share is mounted in the pod
(default ``/persistentvolumes``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from cfs_csi.provisioner.volumes import Share


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
    return name, Share(server=server, fsid=fsid, vers=vers), root


def add_provisioner_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("subdir-provisioner", help="shared mode: one directory and PV per claim of a shared class")
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
    p.set_defaults(run=_run)  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    name, share, root = share_from_env(os.environ)
    if not root.is_dir():
        raise ValueError(f"the share is not mounted at {root} (SHARE_MOUNT_PATH)")
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # before the client is imported: it reads it once
    from cfs_csi.kube.client import api_client
    from cfs_csi.kube.kopfrun import configure_kopf, run_as_leader
    from cfs_csi.provisioner import handlers

    api = api_client(args.kubeconfig)
    context = handlers.ProvisionerContext(name=name, share=share, root=root, dir_mode=args.dir_mode, api=api)
    configure_kopf()
    asyncio.run(run_as_leader(api, name, args.namespace, {"context": context}, args.leader_elect))
    return 0
