"""CSI load client: lifecycle pairs per second and latency, against a real ``cfs-csi serve --backend local``.

Measures CreateVolume+DeleteVolume and NodePublishVolume+NodeUnpublishVolume pairs at concurrency 1 and 8
over the real unix socket (real bind mounts for publish), and the driver's RSS before and after. Prints JSON.

Run it through ``bench/run.sh`` (root, private mount namespace). Bounded: a fixed number of pairs per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cfs_csi.client import CsiClient


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def phase(pairs: int, concurrency: int, pair: Callable[[int, int], Awaitable[None]]) -> dict[str, float]:
    latencies: list[float] = []
    next_index = 0

    async def worker(slot: int) -> None:
        nonlocal next_index
        while next_index < pairs:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await pair(index, slot)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "pairs": pairs,
        "concurrency": concurrency,
        "pairs_per_second": round(pairs / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
    }


async def measure(endpoint: str, root: Path, pairs: int, pid: int) -> dict[str, object]:
    results: dict[str, object] = {"rss_kib_before": rss_kib(pid)}
    async with CsiClient(endpoint) as csi:
        for concurrency in (1, 8):

            async def create_delete(index: int, slot: int, c: int = concurrency) -> None:
                volume = await csi.create_volume(f"bench-c{c}-{index}", {"vers": "3"})
                await csi.delete_volume(volume.volume_id)

            results[f"create_delete_c{concurrency}"] = await phase(pairs, concurrency, create_delete)

        volumes = [await csi.create_volume(f"bench-pub-{i}", {}) for i in range(8)]
        for concurrency in (1, 8):

            async def publish_unpublish(index: int, slot: int, c: int = concurrency) -> None:
                volume = volumes[slot]  # one volume per worker: same-volume calls would be ABORTED
                target = str(root / "kubelet" / "pods" / f"c{c}-{index}" / "mount")
                await csi.publish(volume, target)
                await csi.unpublish(volume.volume_id, target)

            results[f"publish_unpublish_c{concurrency}"] = await phase(pairs, concurrency, publish_unpublish)
        for volume in volumes:
            await csi.delete_volume(volume.volume_id)
    results["rss_kib_after"] = rss_kib(pid)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=300, help="pairs per phase")
    args = parser.parse_args()
    if os.environ.get("CFS_CSI_MOUNT_NS") != "private":
        print("run through bench/run.sh (root, private mount namespace)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="cfs-csi-bench-"))
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root)], check=True, timeout=10)
    (root / "kubelet" / "pods").mkdir(parents=True)  # the node plugin publishes only below <kubelet dir>/pods
    sock = root / "csi.sock"
    driver = subprocess.Popen(
        [sys.executable, "-m", "cfs_csi", "--log-level", "WARNING", "serve", "--endpoint", f"unix://{sock}",
         "--state-dir", str(root / "state"), "--kubelet-dir", str(root / "kubelet"), "--backend", "local",
         "--component", "all"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(str(sock))
                break
            except OSError:
                if time.monotonic() > deadline or driver.poll() is not None:
                    raise RuntimeError("driver did not start") from None
                time.sleep(0.05)
            finally:
                probe.close()
        results = asyncio.run(measure(f"unix://{sock}", root, args.pairs, driver.pid))
        results["driver"] = "cfs-csi serve --backend local --component all (bind mounts on tmpfs)"
        print(json.dumps(results, indent=2))
    finally:
        driver.send_signal(signal.SIGTERM)
        driver.wait(30)
        subprocess.run(["umount", "-R", "-l", str(root)], check=False, timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
