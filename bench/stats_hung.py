"""NodeGetVolumeStats of healthy volumes while N other volumes hang (issue 12): prints time per call.

A real ``cfs-csi serve --component node --mounter bind`` over exports that are directories of
:mod:`tests.faultyfs`; N of them are made to hang (their ``statvfs`` never answers), and the healthy ones are
asked for stats, a round of sequential calls after the hung ones were asked (and timed out) a few times.
Prints one line per N; asserts nothing. Root, private mount namespace:

    unshare --mount --propagation private env CFS_CSI_MOUNT_NS=private PYTHONPATH=. \\
        .venv/bin/python bench/stats_hung.py --hung 0 20 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from cfs_csi.client import CsiClient
from cfs_csi.csi import csi_pb2
from tests import faultyfs
from tests.conftest import pods_dir, start_driver, stop_gracefully

HOST = "10.9.0.1"


def _volume(name: str) -> csi_pb2.Volume:
    return csi_pb2.Volume(volume_id=f"cfs-{name}", volume_context={"host": HOST, "fsid": name, "vers": "3"})


async def measure(root: Path, hung: int, healthy: int, rounds: int) -> list[float]:
    hung_names = [f"hung{i}" for i in range(hung)]
    ok_names = [f"ok{i}" for i in range(healthy)]
    fs = faultyfs.start(str(root / "exports" / HOST), str(root / "fs.sock"), hung_names + ok_names)
    driver = start_driver(root, "--component", "node", "--mounter", "bind", "--export-root", str(root / "exports"),
                          "--stats-timeout", "0.5", name=f"bench{hung}")  # fmt: skip
    try:
        async with CsiClient(driver.endpoint) as csi:

            def path(name: str) -> str:
                return str(pods_dir(root) / f"bench{hung}" / name)

            for name in hung_names + ok_names:
                await csi.publish(_volume(name), path(name))
            for name in hung_names:
                fs.set(name, "hang")
            for _ in range(3):
                await asyncio.gather(*(csi.stats(f"cfs-{n}", path(n)) for n in hung_names))
            times = []
            for _ in range(rounds):
                for name in ok_names:
                    start = time.perf_counter()
                    answer = await csi.stats(f"cfs-{name}", path(name))
                    times.append(time.perf_counter() - start)
                    if answer.volume_condition.abnormal:
                        print(f"  {name}: abnormal: {answer.volume_condition.message}")
            for name in hung_names:
                fs.set(name, "ok")
            return times
    finally:
        stop_gracefully(driver)
        fs.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hung", type=int, nargs="+", default=[0, 20, 100])
    parser.add_argument("--healthy", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for hung in args.hung:
        root = Path(tempfile.mkdtemp(prefix="cfs-csi-bench-"))
        await asyncio.to_thread(subprocess.run, ["mount", "-t", "tmpfs", "tmpfs", str(root)], check=True, timeout=10)
        try:
            times = await measure(root, hung, args.healthy, args.rounds)
        finally:
            await asyncio.to_thread(subprocess.run, ["umount", "-R", "-l", str(root)], check=False, timeout=30)
        ms = sorted(t * 1000 for t in times)
        print(f"hung={hung:4d} healthy={args.healthy} calls={len(ms)}: NodeGetVolumeStats of a healthy volume "
              f"median {statistics.median(ms):.1f} ms, p95 {ms[int(0.95 * (len(ms) - 1))]:.1f} ms, "
              f"max {ms[-1]:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
