"""Controller benchmark: CreateVolume/DeleteVolume against a zero-delay CFS emulator, the controller's own cost.

Starts ``cfs-csi emulator`` (``--create-delay 0``: a new file system is available at once) and ``cfs-csi serve
--component controller --backend tencent`` as the chart runs it (INFO logging, ``--no-probe-cloud``), then:

- start-up: time from spawning the controller to its CSI socket accepting, and its idle RSS;
- ``c=1 split``: N CreateVolume calls one after another; before and after each one the emulator's
  ``busy_ms`` (``GET /admin/requests``, its own time answering) is read, so each call's latency splits into the
  cloud's time and the controller's overhead (latency minus the emulator's time: gRPC, validation, the SDK's
  signing, HTTP, parsing). The volumes are then deleted the same way;
- ``c=1`` and ``c=8``: N CreateVolume then N DeleteVolume at that concurrency, no admin calls in between:
  pairs per second, latencies, and the CPU time per call of the controller and of the emulator, apart
  (``/proc/<pid>/stat``), plus the number of TCP connections the controller opened to the emulator.

Prints one JSON document. Needs no root and no mount namespace. Bounded: ``--pairs`` per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from cfs_csi.client import CsiClient

SECRET_ID = "AKIDcfscsibench000000000000000000000"  # noqa: S105 - the emulator's demo key, nothing real
SECRET_KEY = "cfs-csi-bench-secret-key-0000000000"  # noqa: S105
CLOUD_ENV = {"TENCENTCLOUD_API_SECRET_ID": SECRET_ID, "TENCENTCLOUD_API_SECRET_KEY": SECRET_KEY}
PARAMS = {"vpcid": "vpc-oilua6pt", "subnetid": "subnet-rtwb42lu", "zone": "ap-guangzhou-3"}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` (all its threads), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values_s: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values_s, 0.50) * 1000, 2),
        "p99_ms": round(percentile(values_s, 0.99) * 1000, 2),
        "max_ms": round(max(values_s) * 1000, 2),
        "mean_ms": round(statistics.fmean(values_s) * 1000, 2),
    }


@dataclass
class Emulator:
    process: subprocess.Popen[str]
    url: str

    def admin(self, method: str, path: str) -> dict[str, object]:
        request = urllib.request.Request(f"{self.url}/admin/{path}", method=method)  # noqa: S310 - our emulator
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer: dict[str, object] = json.loads(response.read())
        return answer

    def busy_s(self) -> float:
        return float(str(self.admin("GET", "requests")["busy_ms"])) / 1000

    def requests(self) -> int:
        return int(str(self.admin("GET", "requests")["total"]))


def start_emulator(root: Path, create_delay: float = 0.0) -> Emulator:
    argv = [
        sys.executable, "-m", "cfs_csi.emulator", "--log-level", "WARNING", "--listen", "127.0.0.1:0",
        "--state", str(root / "emulator.db"), "--export-root", str(root / "exports"),
        "--create-delay", str(create_delay),
    ]  # fmt: skip
    log = (root / "emulator.log").open("w")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, **CLOUD_ENV})
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    if "http://" not in first:
        process.kill()
        raise RuntimeError(f"emulator did not start: {first!r}")
    return Emulator(process, first[first.index("http://") :].rstrip("/"))


def accepts(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def tencent_flags(emulator: Emulator) -> list[str]:
    return [
        "--backend", "tencent", "--cfs-endpoint", emulator.url, "--region", "ap-guangzhou", "--zone",
        "ap-guangzhou-3", "--cluster-id", "cls-bench", "--cloud-poll-interval", "0.5",
    ]  # fmt: skip


def start_controller(root: Path, backend: list[str]) -> tuple[subprocess.Popen[bytes], Path, float]:
    """The controller as the chart runs it; returns the process, its socket and the seconds to a listening socket."""
    sock = root / "controller.sock"
    argv = [
        sys.executable, "-m", "cfs_csi", "serve", "--component", "controller", "--endpoint", f"unix://{sock}",
        "--state-dir", str(root / "state"), "--no-probe-cloud", *backend,
    ]  # fmt: skip
    started = time.perf_counter()
    with (root / "controller.log").open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **CLOUD_ENV})
    while not accepts(sock):
        if process.poll() is not None or time.perf_counter() - started > 30:
            process.kill()
            raise RuntimeError("controller did not start:\n" + (root / "controller.log").read_text())
        time.sleep(0.002)
    return process, sock, time.perf_counter() - started


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections of ``pid`` to ``port`` on loopback right now."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        remote_port = int(parts[2].split(":")[1], 16)
        if remote_port == port and parts[3] == "01" and parts[9] in inodes:
            count += 1
    return count


async def run_concurrently(items: list[str], concurrency: int, call: Callable[[str], Awaitable[object]]) -> list[float]:
    latencies: list[float] = []
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            item = queue.pop()
            started = time.perf_counter()
            await call(item)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def loaded_phase(
    csi: CsiClient, emulator: Emulator, controller: int, pairs: int, concurrency: int, tag: str
) -> dict[str, object]:
    names = [f"pvc-bench-{tag}-c{concurrency}-{i}" for i in range(pairs)]
    ids: dict[str, str] = {}

    async def create(name: str) -> None:
        ids[name] = (await csi.create_volume(name, PARAMS)).volume_id

    async def delete(name: str) -> None:
        await csi.delete_volume(ids[name])

    port = int(emulator.url.rsplit(":", 1)[1])
    requests_before = emulator.requests()
    cpu = (cpu_seconds(controller), cpu_seconds(emulator.process.pid))
    started = time.perf_counter()
    creates = await run_concurrently(names, concurrency, create)
    created = time.perf_counter()
    cpu_created = (cpu_seconds(controller), cpu_seconds(emulator.process.pid))
    open_connections = connections_to(controller, port)
    deletes = await run_concurrently(names, concurrency, delete)
    elapsed = time.perf_counter() - started
    cpu_end = (cpu_seconds(controller), cpu_seconds(emulator.process.pid))
    api_calls = emulator.requests() - requests_before  # admin calls are not counted
    return {
        "concurrency": concurrency,
        "pairs": pairs,
        "pairs_per_second": round(pairs / elapsed, 1),
        "creates_per_second": round(pairs / (created - started), 1),
        "create": summary(creates),
        "delete": summary(deletes),
        "controller_cpu_ms_per_create": round((cpu_created[0] - cpu[0]) * 1000 / pairs, 2),
        "controller_cpu_ms_per_delete": round((cpu_end[0] - cpu_created[0]) * 1000 / pairs, 2),
        "emulator_cpu_ms_per_create": round((cpu_created[1] - cpu[1]) * 1000 / pairs, 2),
        "emulator_cpu_ms_per_delete": round((cpu_end[1] - cpu_created[1]) * 1000 / pairs, 2),
        "api_calls_per_pair": round(api_calls / pairs, 2),
        "controller_connections_to_emulator": open_connections,
    }


async def split_phase(csi: CsiClient, emulator: Emulator, pairs: int, tag: str) -> dict[str, object]:
    """One call at a time: each call's latency minus the emulator's own time for it is the controller's overhead."""
    result: dict[str, object] = {"pairs": pairs}
    ids: list[str] = []
    for kind in ("create", "delete"):
        latency: list[float] = []
        cloud: list[float] = []
        for i in range(pairs):
            busy = emulator.busy_s()
            started = time.perf_counter()
            if kind == "create":
                ids.append((await csi.create_volume(f"pvc-bench-{tag}-split-{i}", PARAMS)).volume_id)
            else:
                await csi.delete_volume(ids[i])
            latency.append(time.perf_counter() - started)
            cloud.append(emulator.busy_s() - busy)
        overhead = [total - spent for total, spent in zip(latency, cloud, strict=True)]
        result[kind] = {"latency": summary(latency), "emulator": summary(cloud), "overhead": summary(overhead)}
    return result


async def measure(sock: Path, emulator: Emulator, controller: int, pairs: int, tag: str) -> dict[str, object]:
    results: dict[str, object] = {}
    async with CsiClient(f"unix://{sock}") as csi:
        await csi.delete_volume((await csi.create_volume(f"pvc-bench-{tag}-warm", PARAMS)).volume_id)
        results["rss_mib_after_first_call"] = rss_mib(controller)
        results["c1_split"] = await split_phase(csi, emulator, pairs, tag)
        for concurrency in (1, 8):
            results[f"c{concurrency}"] = await loaded_phase(csi, emulator, controller, pairs, concurrency, tag)
    results["rss_mib_after"] = rss_mib(controller)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=200, help="CreateVolume+DeleteVolume pairs per phase")
    parser.add_argument("--runs", type=int, default=1, help="independent runs (fresh emulator and controller)")
    args = parser.parse_args()
    runs = []
    for run in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix="cfs-ctl-bench-"))
        emulator = start_emulator(root)
        controller = None
        try:
            controller, sock, startup = start_controller(root, tencent_flags(emulator))
            time.sleep(1.0)  # let start-up settle before reading the idle figure
            result: dict[str, object] = {"start_to_socket_ms": round(startup * 1000, 1)}
            result["idle_rss_mib"] = rss_mib(controller.pid)
            result["idle_cpu_ms"] = round(cpu_seconds(controller.pid) * 1000)
            result.update(asyncio.run(measure(sock, emulator, controller.pid, args.pairs, f"r{run}")))
            runs.append(result)
        finally:
            if controller is not None:
                controller.send_signal(signal.SIGTERM)
                controller.wait(30)
            emulator.process.terminate()
            emulator.process.wait(15)
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"controller": "cfs-csi serve --component controller --backend tencent (INFO logging)",
                      "emulator": "cfs-csi emulator --create-delay 0", "runs": runs}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
