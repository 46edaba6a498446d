"""Emulator benchmark: what one DescribeCfsFileSystems costs as the number of deleted file systems grows.

The emulator keeps every deleted file system's row (the admin API counts them), so a long test session or a demo
that ran for days piles them up. This fills a fresh store with ``N`` deleted rows (inserted directly, as
deletion leaves them) next to 50 live file systems, then times the action in-process (no HTTP, no signing):
by ``FileSystemId``, by name (``CreationToken``, what the controller sends before every create), and the whole
subnet (one page). Prints one JSON document with the median and p90 in microseconds per call.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cfs_csi.emulator import model
from cfs_csi.emulator.actions import Cloud, CloudSettings
from cfs_csi.emulator.faults import FaultConfig, Faults, Outcome
from cfs_csi.emulator.store import Store

LIVE = 50
VPC, SUBNET = "vpc-oilua6pt", "subnet-rtwb42lu"


def row(seq: int, state: str) -> model.FileSystem:
    return model.FileSystem(
        id=f"cfs-{seq:08d}", seq=seq, name=f"cls-bench_pvc-{seq}", zone="ap-guangzhou-3", net_interface="VPC",
        vpc_id=VPC, subnet_id=SUBNET, pgroup_id="pgroupbasic", storage_type="SD", protocol="NFS",
        tags=(model.Tag("cfs-csi/volume", f"pvc-{seq}"),), encrypted=False, capacity_gib=10, created_at=0.0,
        ready_at=0.0, outcome=Outcome.AVAILABLE, state=state, delete_at=1.0 if state == model.DELETED else None,
        deleted_at=1.0 if state == model.DELETED else None,
    )  # fmt: skip


def timed(call: Callable[[], object], repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples) * 1e6, 1),
        "p90_us": round(samples[int(0.9 * (len(samples) - 1))] * 1e6, 1),
    }


def measure(deleted: int, repeat: int) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="cfs-emu-history-"))
    store = Store(root / "emulator.db")
    with store.transaction():
        for seq in range(deleted):
            store.insert(row(seq, model.DELETED))
        for seq in range(deleted, deleted + LIVE):
            store.insert(row(seq, model.AVAILABLE))
    cloud = Cloud(store, CloudSettings(), Faults(FaultConfig(), random.Random(1)), time.time, random.Random(1))
    live_id, live_name = f"cfs-{deleted + LIVE // 2:08d}", f"cls-bench_pvc-{deleted + LIVE // 2}"
    subnet = {"VpcId": VPC, "SubnetId": SUBNET, "Limit": 100}
    result: dict[str, object] = {
        "deleted_rows": deleted,
        "by_id": timed(lambda: cloud.describe_file_systems({"FileSystemId": live_id}), repeat),
        "by_name": timed(lambda: cloud.describe_file_systems({"CreationToken": live_name, "VpcId": VPC}), repeat),
        "subnet_page": timed(lambda: cloud.describe_file_systems(subnet), repeat),
    }
    store.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deleted", default="0,1000,10000,50000", help="comma-separated numbers of deleted rows")
    parser.add_argument("--repeat", type=int, default=200, help="calls timed per figure")
    args = parser.parse_args()
    results = [measure(int(n), args.repeat) for n in args.deleted.split(",")]
    print(json.dumps({"live_file_systems": LIVE, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
