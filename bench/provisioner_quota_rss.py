"""Memory of the sub-directory provisioner with directory quotas: what loading the cloud backend costs it.

The provisioner builds its cloud backend on the first quota, not at start-up. This measures, in a fresh process
per run and source tree (``--src``, e.g. a ``git archive`` of an older commit, or this tree):

- ``idle``: RSS after importing and setting up what ``cfs-csi subdir-provisioner`` has loaded while it waits
  (its parser with the cloud flags, the handlers, the Kubernetes client, the lease) and building its context;
- ``quota``: RSS after the same process set one directory quota through its :class:`ShareQuotas` (the tencent
  backend built, one SetUserQuota and DescribeUserQuota against a local CFS emulator), only for trees that
  have quotas.

Printed: per tree, the median and min-max over ``--runs`` runs (trees interleaved run by run). Example::

    git archive fa546a1 src | tar -x -C /tmp/before
    .venv/bin/python bench/provisioner_quota_rss.py --runs 7 --src before=/tmp/before/src --src after=src
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, json, os, sys
from pathlib import Path

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

import argparse
from cfs_csi.provisioner import main as pmain
from cfs_csi.kube.leading import lead_and_run
from cfs_csi.kube.rest import Client
from cfs_csi.provisioner import handlers
parser = argparse.ArgumentParser()
pmain._add_arguments(parser)
args, _ = parser.parse_known_args(sys.argv[1:])
name, share, root = pmain.share_from_env(os.environ)
context = handlers.ProvisionerContext(name=name, share=share, root=root, dir_mode=0o777, client=None,
                                      events=object())
result = {"idle": rss()}
quotas = getattr(context, "quotas", None)
if quotas is not None and os.environ.get("CFS_ID"):
    from cfs_csi.provisioner.cloud import ShareQuotas
    from cfs_csi.cloud.factory import backend_from_arguments
    share_quotas = ShareQuotas(share.cloud_id, lambda: backend_from_arguments(args))
    quota = asyncio.run(share_quotas.set("/cfs/bench", 20))
    assert quota.capacity_bytes == 20 * 1024**3, quota
    result["quota"] = rss()
print(json.dumps(result))
"""


async def _shared_fs(url: str) -> tuple[str, str]:
    """A shared class's file system in the emulator, made as the operator makes it: (cloud id, export fsid)."""
    from cfs_csi.cloud.base import FileSystemSpec
    from cfs_csi.cloud.factory import BackendOptions, make_backend
    from cfs_csi.operator.shared import shared_fs_name
    from cfs_csi.volume.params import parse_parameters

    options = BackendOptions("tencent", Path("/nonexistent"), region="ap-guangzhou", zone="ap-guangzhou-3",
                             cluster_id="cls-bench", cfs_endpoint=url, poll_interval=0.2)  # fmt: skip
    storage = make_backend(options)
    params = storage.with_defaults(parse_parameters({
        "storagetype": "SD", "pgroupid": "pgroupbasic", "vpcid": "vpc-oilua6pt", "subnetid": "subnet-rtwb42lu",
    }))  # fmt: skip
    spec = FileSystemSpec(name=shared_fs_name("bench"), capacity_bytes=0, params=params)
    while True:
        try:
            fs = await storage.ensure_file_system(spec)
        except Exception as exc:  # PENDING while it is created
            if "PENDING" not in repr(getattr(exc, "kind", "")):
                raise
            await asyncio.sleep(0.2)
            continue
        if fs.ready:
            return fs.id, fs.export_fsid
        await asyncio.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src", action="append", default=[], help="NAME=PATH of a src directory (repeatable)")
    args = parser.parse_args()
    trees = [tuple(s.split("=", 1)) for s in args.src] or [("this", str(REPO / "src"))]
    sys.path.insert(0, str(REPO))
    from tests.conftest import CLOUD_ENV, start_emulator

    os.environ.update(CLOUD_ENV)  # the emulator's keys, for the set-up's own backend
    root = Path(tempfile.mkdtemp(prefix="cfs-quota-rss-"))
    emulator = start_emulator(root, "--create-delay", "0")
    try:
        fs_id, fsid = asyncio.run(_shared_fs(emulator.url))
        data = emulator.export_root
        for directory in data.rglob("*"):
            if directory.name == fsid and directory.is_dir():
                (directory / "bench").mkdir(exist_ok=True)
        env = {**os.environ, **CLOUD_ENV, "PROVISIONER_NAME": "com.tencent.cloud.csi.tcfs.bench",
               "NFS_SERVER": "10.0.0.9", "NFS_PATH": f"/{fsid}/", "SHARE_MOUNT_PATH": str(root), "CFS_ID": fs_id,
               "MALLOC_ARENA_MAX": "2"}  # fmt: skip
        flags = ["--backend=tencent", f"--cfs-endpoint={emulator.url}", "--region=ap-guangzhou",
                 "--zone=ap-guangzhou-3", "--cluster-id=cls-bench"]  # fmt: skip
        results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
        for _ in range(args.runs):
            for name, src in trees:
                run_env = {**env, "PYTHONPATH": src}
                out = subprocess.run([sys.executable, "-c", CHILD, *flags], env=run_env, capture_output=True,
                                     text=True, timeout=120, check=False)  # fmt: skip
                if out.returncode != 0:
                    print(f"{name}: failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                    return 1
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        emulator.stop()
    print(f"provisioner RSS in MB, {args.runs} runs per tree (median, min-max); shared machine")
    for name, runs in results.items():
        for key in ("idle", "quota"):
            values = [r[key] for r in runs if key in r]
            if values:
                print(f"  {name:10} {key:6} {statistics.median(values):6.1f}  ({min(values):.1f}-{max(values):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
