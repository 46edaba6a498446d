"""Controller benchmark: CreateVolume/DeleteVolume against a zero-delay CFS emulator, the controller's own cost.

Starts ``cfs-csi emulator`` (``--create-delay 0``: a new file system is available at once) and ``cfs-csi serve
--component controller --backend tencent`` as the chart runs it (INFO logging, ``--no-probe-cloud``), then, in
each of ``--runs`` independent runs (fresh processes):

- start-up: time from spawning the controller to its first answered call (Identity Probe; its socket accepts
  connections earlier, bound before the imports), and its idle RSS one second later,
  for the tencent backend and (``--local-startups``) the local backend too;
- ``split``: N CreateVolume calls one after another, then N DeleteVolume. Around each call the bench reads the
  emulator's ``busy_ms`` (``GET /admin/requests``: its own time answering, body read to answer ready) and the
  CPU and run-queue time of every thread of the controller, the emulator and the bench itself
  (``/proc/<pid>/task/<tid>/schedstat``, nanoseconds), and afterwards each call's INFO line in the controller's
  log (``... in 4.1 ms (cloud 2.9 ms in 4 calls)``: its time in the server and its wait for the cloud's
  answers). So each call's latency splits into:

  - ``overhead``: latency minus the emulator's busy time (issue 15's definition: everything that is not the
    cloud's own work: the bench's gRPC client, the controller, the emulator's HTTP parsing, loopback, and any
    wait for a CPU on this shared 2-core machine);
  - ``beyond cloud wait``: latency minus the controller's wait for the cloud's answers (the controller and the
    gRPC hop, client library included);
  - ``in controller``: the server's time minus its cloud wait (the controller's own code and event loop);

  and the controller's CPU per call apart from the emulator's and the client's, plus each process' time
  waiting for a CPU (run queue): on this shared 2-core machine that wait is most of the p99, so the overhead is
  also shown less the three processes' run-queue waits (an estimate of the overhead on an idle machine);
  - ``less the emulator's CPU``: latency minus all the CPU the emulator spent while the call ran (its HTTP parsing
    included: the cloud's whole time on this machine, where busy time leaves the parsing out);
- ``c=1`` and ``c=8``: N CreateVolume then N DeleteVolume at that concurrency, no admin calls in between:
  pairs per second, and CPU per call of the controller and the emulator over the whole phase.

Prints one table: each figure's median over the runs and its spread (min-max); ``--json FILE`` writes every run.
Needs no root and no mount namespace. Bounded: ``--pairs`` per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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

#: The controller's INFO line per decision (driver/interceptor.py), with the cloud's share of its time.
DECISION = re.compile(
    r"(?P<method>CreateVolume|DeleteVolume) (?P<subject>\S+): .* in (?P<total>[\d.]+) ms"
    r"(?: \(cloud (?P<cloud>[\d.]+) ms in (?P<calls>\d+) calls\))?$"
)


# -- /proc -----------------------------------------------------------------------------------------------------


def thread_times(pid: int) -> dict[int, tuple[int, int]]:
    """Per thread of ``pid``: (ns on a CPU, ns runnable but waiting for one), from ``schedstat``."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            run, wait, _ = Path(task, "schedstat").read_text().split()
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        times[int(task.name)] = (int(run), int(wait))
    return times


def spent(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> tuple[float, float]:
    """(CPU s, run-queue s) between two readings: threads alive in both, plus threads born in between.

    A thread that ended in between is left out (its time is gone from ``/proc``): in the emulator those are the
    bench's own admin requests, one short-lived thread each; the controller's keep-alive connection lives on.
    """
    run = wait = 0
    for tid, (run_after, wait_after) in after.items():
        run_before, wait_before = before.get(tid, (0, 0))
        run += run_after - run_before
        wait += wait_after - wait_before
    return run / 1e9, wait / 1e9


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


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


# -- processes -------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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


def answered(sock: Path, timeout: float = 30.0) -> None:
    """Return once the server at ``sock`` has answered an Identity Probe (waits for it to get ready)."""
    import grpc

    from cfs_csi.csi import csi_pb2, csi_pb2_grpc

    with grpc.insecure_channel(f"unix://{sock}") as channel:
        csi_pb2_grpc.IdentityStub(channel).Probe(csi_pb2.ProbeRequest(), timeout=timeout, wait_for_ready=True)


def start_controller(
    root: Path, backend: list[str], until_answered: bool = False
) -> tuple[subprocess.Popen[bytes], Path, float]:
    """The controller as the chart runs it; returns the process, its socket and the seconds to a socket that
    accepts connections or (``until_answered``) to the first answered call. The serve command binds its socket
    before it imports and builds the servers, so a connection is accepted long before any call is answered."""
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
    if until_answered:
        answered(sock)
    return process, sock, time.perf_counter() - started


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def startup(root: Path, backend: list[str]) -> tuple[float, float]:
    """(ms to the first answered call, idle RSS MiB one second later) of a fresh controller."""
    controller, _, seconds = start_controller(root, backend, until_answered=True)
    try:
        time.sleep(1.0)
        return seconds * 1000, rss_mib(controller.pid)
    finally:
        stop(controller)


# -- phases ----------------------------------------------------------------------------------------------------


async def run_concurrently(items: list[str], concurrency: int, call: Callable[[str], Awaitable[object]]) -> None:
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            await call(queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def loaded_phase(
    csi: CsiClient, emulator: Emulator, controller: int, pairs: int, concurrency: int, tag: str
) -> dict[str, float]:
    names = [f"pvc-bench-{tag}-c{concurrency}-{i}" for i in range(pairs)]
    ids: dict[str, str] = {}

    async def create(name: str) -> None:
        ids[name] = (await csi.create_volume(name, PARAMS)).volume_id

    async def delete(name: str) -> None:
        await csi.delete_volume(ids[name])

    port = int(emulator.url.rsplit(":", 1)[1])
    emulator_pid = emulator.process.pid
    before = (thread_times(controller), thread_times(emulator_pid))
    started = time.perf_counter()
    await run_concurrently(names, concurrency, create)
    created = time.perf_counter()
    middle = (thread_times(controller), thread_times(emulator_pid))
    connections = connections_to(controller, port)
    await run_concurrently(names, concurrency, delete)
    elapsed = time.perf_counter() - started
    after = (thread_times(controller), thread_times(emulator_pid))
    return {
        "pairs_per_second": pairs / elapsed,
        "creates_per_second": pairs / (created - started),
        "controller_cpu_ms_per_create": spent(before[0], middle[0])[0] * 1000 / pairs,
        "controller_cpu_ms_per_delete": spent(middle[0], after[0])[0] * 1000 / pairs,
        "emulator_cpu_ms_per_create": spent(before[1], middle[1])[0] * 1000 / pairs,
        "emulator_cpu_ms_per_delete": spent(middle[1], after[1])[0] * 1000 / pairs,
        "connections_to_emulator": connections,
    }


@dataclass
class Sample:
    """One call of the split phase, in seconds."""

    subject: str
    latency: float
    busy: float
    controller_cpu: float
    controller_queued: float
    emulator_cpu: float
    client_cpu: float
    #: Run-queue time of all three processes (runnable, waiting for a CPU the machine's other work holds).
    queued: float


async def split_phase(
    csi: CsiClient, emulator: Emulator, controller: int, pairs: int, tag: str
) -> dict[str, list[Sample]]:
    """One call at a time, each measured alone (see the module's docstring)."""
    samples: dict[str, list[Sample]] = {"create": [], "delete": []}
    ids: list[str] = []
    own = os.getpid()
    for kind in ("create", "delete"):
        for i in range(pairs):
            busy = emulator.busy_s()
            before = (thread_times(controller), thread_times(emulator.process.pid), thread_times(own))
            started = time.perf_counter()
            if kind == "create":
                name = f"pvc-bench-{tag}-split-{i}"
                ids.append((await csi.create_volume(name, PARAMS)).volume_id)
            else:
                name = ids[i]
                await csi.delete_volume(name)
            latency = time.perf_counter() - started
            after = (thread_times(controller), thread_times(emulator.process.pid), thread_times(own))
            (controller_cpu, controller_queued), (emulator_cpu, emulator_queued), (client_cpu, client_queued) = (
                spent(old, new) for old, new in zip(before, after, strict=True)
            )
            queued = controller_queued + emulator_queued + client_queued
            samples[kind].append(Sample(name, latency, emulator.busy_s() - busy, controller_cpu, controller_queued,
                                        emulator_cpu, client_cpu, queued))  # fmt: skip
    return samples


def decisions(log: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(method, subject) -> (ms in the server, ms waiting for the cloud), from the controller's INFO lines."""
    found = {}
    for line in log.splitlines():
        match = DECISION.search(line)
        if match:
            found[(match["method"], match["subject"])] = (float(match["total"]), float(match["cloud"] or 0))
    return found


def split_figures(samples: dict[str, list[Sample]], log: str) -> dict[str, float]:
    """p50/p99 of each part of each call's latency (ms)."""
    lines = decisions(log)
    figures: dict[str, float] = {}
    for kind, method in (("create", "CreateVolume"), ("delete", "DeleteVolume")):
        calls = samples[kind]
        server = [lines.get((method, call.subject)) for call in calls]
        parts = {
            "latency": [call.latency * 1000 for call in calls],
            "emulator busy": [call.busy * 1000 for call in calls],
            "overhead": [(call.latency - call.busy) * 1000 for call in calls],
            "overhead less run-queue waits": [(call.latency - call.busy - call.queued) * 1000 for call in calls],
            "beyond emulator CPU": [(call.latency - call.emulator_cpu) * 1000 for call in calls],
            "beyond cloud wait": [call.latency * 1000 - s[1] for call, s in zip(calls, server, strict=True) if s],
            "in controller": [s[0] - s[1] for s in server if s],
            "controller CPU": [call.controller_cpu * 1000 for call in calls],
            "controller run-queue wait": [call.controller_queued * 1000 for call in calls],
            "emulator CPU": [call.emulator_cpu * 1000 for call in calls],
            "client CPU": [call.client_cpu * 1000 for call in calls],
        }
        for part, values in parts.items():
            if values:
                figures[f"{kind} {part} p50"] = percentile(values, 0.5)
                figures[f"{kind} {part} p99"] = percentile(values, 0.99)
        figures[f"{kind} calls with a decision line"] = sum(1 for s in server if s)
    return figures


async def measure(
    sock: Path, emulator: Emulator, controller: int, pairs: int, tag: str
) -> tuple[dict[str, float], dict[str, list[Sample]]]:
    results: dict[str, float] = {}
    async with CsiClient(f"unix://{sock}") as csi:
        await csi.delete_volume((await csi.create_volume(f"pvc-bench-{tag}-warm", PARAMS)).volume_id)
        results["RSS after first call MiB"] = rss_mib(controller)
        split = await split_phase(csi, emulator, controller, pairs, tag)
        for concurrency in (1, 8):
            loaded = await loaded_phase(csi, emulator, controller, pairs, concurrency, tag)
            results.update({f"c={concurrency} {name}": value for name, value in loaded.items()})
    results["RSS after MiB"] = rss_mib(controller)
    return results, split


def one_run(run: int, pairs: int, local_startups: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="cfs-ctl-bench-"))
    emulator = start_emulator(root)
    try:
        result: dict[str, float] = {}
        for i in range(local_startups):
            (root / f"local{i}").mkdir()
            result[f"local start to first answer ms #{i}"], result[f"local idle RSS MiB #{i}"] = startup(
                root / f"local{i}", ["--backend", "local"]
            )
        controller, sock, seconds = start_controller(root, tencent_flags(emulator), until_answered=True)
        try:
            time.sleep(1.0)  # let start-up settle before reading the idle figure
            result["tencent start to first answer ms"] = seconds * 1000
            result["tencent idle RSS MiB"] = rss_mib(controller.pid)
            measured, split = asyncio.run(measure(sock, emulator, controller.pid, pairs, f"r{run}"))
        finally:
            stop(controller)  # the log is complete once it has stopped
        result.update(measured)
        result.update(split_figures(split, (root / "controller.log").read_text(errors="replace")))
        return result
    finally:
        emulator.process.terminate()
        emulator.process.wait(15)
        shutil.rmtree(root, ignore_errors=True)


# -- the table -------------------------------------------------------------------------------------------------

#: Rows of the table, in order: (label, key of a run's figures; several keys are pooled over the runs).
ROWS: list[tuple[str, tuple[str, ...]]] = [
    ("pairs/s, c=1", ("c=1 pairs_per_second",)),
    ("pairs/s, c=8", ("c=8 pairs_per_second",)),
    ("CreateVolume overhead beyond emulator busy p50 (ms)", ("create overhead p50",)),
    ("CreateVolume overhead beyond emulator busy p99 (ms)", ("create overhead p99",)),
    ("CreateVolume overhead less every process' run-queue wait p50 / p99 (ms)", (
        "create overhead less run-queue waits p50", "create overhead less run-queue waits p99")),
    ("CreateVolume latency less the emulator's CPU for it p50 / p99 (ms)", ("create beyond emulator CPU p50",
                                                                            "create beyond emulator CPU p99")),
    ("CreateVolume beyond the controller's cloud wait p50 (ms)", ("create beyond cloud wait p50",)),
    ("CreateVolume beyond the controller's cloud wait p99 (ms)", ("create beyond cloud wait p99",)),
    ("CreateVolume in the controller, cloud wait excluded p50 (ms)", ("create in controller p50",)),
    ("CreateVolume in the controller, cloud wait excluded p99 (ms)", ("create in controller p99",)),
    ("CreateVolume latency p50 / emulator busy p50 (ms)", ("create latency p50", "create emulator busy p50")),
    ("DeleteVolume overhead beyond emulator busy p50 (ms)", ("delete overhead p50",)),
    ("DeleteVolume overhead beyond emulator busy p99 (ms)", ("delete overhead p99",)),
    ("controller CPU per CreateVolume, alone p50 / p99 (ms)", ("create controller CPU p50",
                                                              "create controller CPU p99")),
    ("controller run-queue wait per CreateVolume p50 / p99 (ms)", ("create controller run-queue wait p50",
                                                                   "create controller run-queue wait p99")),
    ("emulator CPU per CreateVolume, alone p50 (ms)", ("create emulator CPU p50",)),
    ("bench client CPU per CreateVolume p50 (ms)", ("create client CPU p50",)),
    ("controller CPU per CreateVolume, c=1 / c=8 (ms)", ("c=1 controller_cpu_ms_per_create",
                                                        "c=8 controller_cpu_ms_per_create")),
    ("controller CPU per DeleteVolume, c=1 / c=8 (ms)", ("c=1 controller_cpu_ms_per_delete",
                                                        "c=8 controller_cpu_ms_per_delete")),
    ("emulator CPU per CreateVolume, c=1 / c=8 (ms)", ("c=1 emulator_cpu_ms_per_create",
                                                      "c=8 emulator_cpu_ms_per_create")),
    ("connections to the emulator after c=1 / c=8 creates", ("c=1 connections_to_emulator",
                                                             "c=8 connections_to_emulator")),
    ("tencent: start to first answered call (ms)", ("tencent start to first answer ms",)),
    ("tencent: idle RSS (MiB)", ("tencent idle RSS MiB",)),
    ("tencent: RSS after the run (MiB)", ("RSS after MiB",)),
    ("local: start to first answered call (ms)", ("local start to first answer ms #",)),
    ("local: idle RSS (MiB)", ("local idle RSS MiB #",)),
]  # fmt: skip


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    digits = 0 if max(values) >= 100 else 1 if max(values) >= 10 else 2
    median = f"{statistics.median(values):.{digits}f}"
    return median if len(values) == 1 else f"{median} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def table(runs: list[dict[str, float]]) -> str:
    lines = [f"| figure (median over {len(runs)} runs, min-max) | value |", "|---|---|"]
    for label, keys in ROWS:
        cells = []
        for key in keys:
            pooled = key.endswith("#")  # one figure per start-up, several per run
            values = [v for run in runs for k, v in run.items() if k == key or (pooled and k.startswith(key))]
            cells.append(cell(values))
        lines.append(f"| {label} | {' / '.join(cells)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=200, help="CreateVolume+DeleteVolume pairs per phase")
    parser.add_argument("--runs", type=int, default=3, help="independent runs (fresh emulator and controller)")
    parser.add_argument("--local-startups", type=int, default=2, help="local-backend start-ups measured per run")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    args = parser.parse_args()
    runs = [one_run(run, args.pairs, args.local_startups) for run in range(args.runs)]
    load = os.getloadavg()
    print(f"controller: cfs-csi serve --component controller --backend tencent (INFO logging), {args.pairs} pairs "
          f"per phase; emulator: --create-delay 0; load average at the end {load[0]:.1f} (machine shared)")  # fmt: skip
    print(table(runs))
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
