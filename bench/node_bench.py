"""Node plugin benchmark: NodePublish+NodeUnpublish pairs, idle RSS, start-up time and imports, side by side.

What it prints (one table, medians with min-max over the runs):

- pairs per second at concurrency 1 and 8, NodePublishVolume p50 at c=1, the driver's own CPU per pair (its
  utime+stime from ``/proc/<pid>/stat``; the mount/umount children it reaps are shown apart), each with about 30
  and with about 500 unrelated mounts in the mount table (the kernel's table of the namespace: the count is
  printed as found);
- idle RSS (``VmRSS`` a few seconds after the socket answers) and start to listening socket, for the node as the
  chart runs it (registering itself with the kubelet, health port on) and bare (``--no-register``);
- whether the node process imported anything it must not (ssl, hashlib/OpenSSL, sqlite, the SDK, kopf, the
  Kubernetes client), from one start under ``python -X importtime``; which gRPC server it ran on (grpclib or
  grpc.aio) and whether grpcio's C core was loaded all the same.

Both drivers get the same requests from the same client over their unix sockets, in the same private mount
namespace, and mount through the same ``mount.nfs`` stand-in: a shell script that bind-mounts a directory of this
run's tmpfs for ``host:/path`` (it is laid over the helper directory with an overlay mount, in this namespace
only). The anchor runs ``mount -t nfs``, which runs the stand-in; ours runs the stand-in itself, as it runs the
system's ``mount.nfs`` on a node (issue 15), and unmounts ``--vers 4`` volumes with the ``umount2`` system call,
``--vers 3`` ones (the default) with ``umount(8)``. ``--mounter=bind`` runs ours with the local backend's bind
mounter instead (same bind mounts, unmounted with ``umount2``), for that comparison.
The anchor is csi-driver-nfs's ``nfsplugin``, found from ``$CFS_CSI_ANCHOR_NFS_PLUGIN``; without it, the
side-by-side columns are left out and the run says so.

Python byte code: the image installs compiled ``.pyc`` files; this run compiles ours into a private cache
(``PYTHONPYCACHEPREFIX``) and starts the node once before timing any start.

Run it through ``bench/run.sh node`` (root, private mount namespace). The machine may be shared: figures are noisy;
runs alternate the drivers and the mount counts so that drift hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from cfs_csi.csi import csi_pb2, csi_pb2_grpc

ANCHOR_ENV = "CFS_CSI_ANCHOR_NFS_PLUGIN"
#: Modules the node plugin must not load (issue 15): TLS, OpenSSL (``_hashlib``: ``hashlib`` itself, on its built-in
#: SHA-2, is shown apart), SQLite, the cloud SDK, kopf, the Kubernetes client; and gRPC's C core, shown apart.
FORBIDDEN = ("ssl", "_ssl", "_hashlib", "sqlite3", "_sqlite3", "tencentcloud", "kopf", "kubernetes")
NOTED = ("hashlib", "grpc", "grpclib", "google")
#: Runs the node like ``python -m cfs_csi`` and, when it exits, prints the modules it loaded (a refused import,
#: an entry of None, does not count).
MODULES_PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('MODULES', ' '.join(sorted(n for n, m in sys.modules.items() if m is not None))))\n"
    "sys.argv[0] = 'cfs_csi'\n"
    "runpy.run_module('cfs_csi', run_name='__main__', alter_sys=True)\n"
)
HOST = "10.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")

STAND_IN = """#!/bin/sh
# mount.nfs stand-in for the benchmark: mount.nfs HOST:/PATH DIR [-o OPTIONS]: bind-mount EXPORTS/PATH at DIR.
src="${1#*:}"
exec mount --no-canonicalize --bind "EXPORTS$src" "$2"
"""


# -- small pure helpers ----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    """``median (min-max)`` with a precision that suits the size."""
    if not values:
        return "-"
    med, low, high = statistics.median(values), min(values), max(values)
    digits = 0 if med >= 100 else 1 if med >= 10 else 2
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def ratio(ours: list[float], anchor: list[float], higher_is_better: bool) -> str:
    if not ours or not anchor:
        return ""
    a, b = statistics.median(ours), statistics.median(anchor)
    if not a or not b:
        return ""
    return f"{(a / b if higher_is_better else b / a):.2f}x"


def forbidden_in(modules: set[str], names: tuple[str, ...] = FORBIDDEN) -> list[str]:
    return sorted({m.split(".")[0] for m in modules if m.split(".")[0] in names})


def grpc_stack(modules: set[str]) -> str:
    """Which gRPC server the node ran on, and whether grpcio's C core (about 10 MB of RSS) was loaded anyway."""
    if not modules:
        return "(not found out)"
    server = "grpclib" if "grpclib.server" in modules else "grpc.aio" if "grpc.aio" in modules else "none"
    core = "grpcio's C core loaded" if "grpc._cython.cygrpc" in modules else "no grpcio"
    return f"{server}; {core}"


# -- processes -------------------------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own utime+stime, reaped children's cutime+cstime) of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])
    children = int(fields[13]) + int(fields[14])
    return own / TICK, children / TICK


def accepts(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


@dataclass
class Driver:
    """One driver under test: how to start it and what its requests look like."""

    name: str
    argv: Callable[[Path, Path], list[str]]  # (socket, run directory) -> argv
    context: Callable[[int], dict[str, str]]  # slot -> volume_context
    env: dict[str, str] = field(default_factory=dict)
    started: float = 0.0

    def start(self, sock: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], float]:
        """The process and the seconds from spawning it to its socket accepting a connection (``self.started``:
        when it was spawned)."""
        workdir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        log = (workdir / "driver.log").open("ab")
        started = self.started = time.perf_counter()
        process = subprocess.Popen(self.argv(sock, workdir), stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = started + 30
        while not accepts(sock):
            if process.poll() is not None or time.perf_counter() > deadline:
                stop(process)
                raise RuntimeError(f"{self.name} did not start; see {workdir / 'driver.log'}")
            time.sleep(0.001)
        return process, time.perf_counter() - started


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# -- the load --------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    pairs_per_second: float
    publish_p50_ms: float
    cpu_ms_per_pair: float
    children_cpu_ms_per_pair: float


async def run_phase(sock: Path, pid: int, driver: Driver, pods: Path, tag: str, pairs: int, concurrency: int) -> Phase:
    parents = [pods / f"{tag}-{index}" / "volumes" / "kubernetes.io~csi" / f"pv-{index}" for index in range(pairs)]
    for parent in parents:  # the kubelet makes these before it calls NodePublishVolume
        parent.mkdir(parents=True)
    capability = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(
            mode=csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER
        ),
    )
    publish_ms: list[float] = []
    next_index = 0
    async with grpc.aio.insecure_channel(f"unix://{sock}") as channel:
        node = csi_pb2_grpc.NodeStub(channel)
        await node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), timeout=10)

        async def worker(slot: int) -> None:
            nonlocal next_index
            volume_id = f"bench-{tag}-{slot}"
            while next_index < pairs:
                index = next_index
                next_index += 1
                target = str(parents[index] / "mount")
                started = time.perf_counter()
                await node.NodePublishVolume(
                    csi_pb2.NodePublishVolumeRequest(
                        volume_id=volume_id,
                        target_path=target,
                        volume_capability=capability,
                        volume_context=driver.context(slot),
                    ),
                    timeout=60,
                )
                publish_ms.append((time.perf_counter() - started) * 1000)
                await node.NodeUnpublishVolume(
                    csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target), timeout=60
                )

        own_before, children_before = cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
        elapsed = time.perf_counter() - started
        own_after, children_after = cpu_seconds(pid)
    return Phase(
        pairs_per_second=pairs / elapsed,
        publish_p50_ms=percentile(publish_ms, 0.5),
        cpu_ms_per_pair=(own_after - own_before) * 1000 / pairs,
        children_cpu_ms_per_pair=(children_after - children_before) * 1000 / pairs,
    )


def mount_count() -> int:
    return len(Path("/proc/self/mountinfo").read_text().splitlines())


def set_unrelated_mounts(directory: Path, mounted: list[Path], wanted_total: int) -> None:
    """Add or remove tmpfs mounts below ``directory`` until the table has ``wanted_total`` entries (or none of ours
    are left to remove)."""
    directory.mkdir(exist_ok=True)
    while mount_count() < wanted_total:
        point = directory / f"m{len(mounted)}"
        point.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "unrelated", str(point)], check=True, timeout=10)
        mounted.append(point)
    while mount_count() > wanted_total and mounted:
        subprocess.run(["umount", str(mounted.pop())], check=True, timeout=10)


# -- set-up ----------------------------------------------------------------------------------------------------


def install_stand_in(root: Path, exports: Path) -> None:
    """Lay a ``mount.nfs`` that bind-mounts ``exports/<path>`` over the helper directory (this namespace only)."""
    helpers = Path(os.path.realpath("/sbin"))
    stub = root / "helpers"
    stub.mkdir()
    script = stub / "mount.nfs"
    script.write_text(STAND_IN.replace("EXPORTS", str(exports)))
    script.chmod(0o755)
    options = f"lowerdir={stub}:{helpers}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(helpers)], check=True, timeout=10)


def ours(
    kubelet: Path, *extra: str, mounter: tuple[str, ...] = ("--mounter=nfs",)
) -> Callable[[Path, Path], list[str]]:
    def argv(sock: Path, workdir: Path) -> list[str]:
        return [
            sys.executable, "-m", "cfs_csi", "serve", "--component=node", *mounter,
            f"--endpoint=unix://{sock}", "--node-id=bench", f"--state-dir={workdir / 'state'}",
            f"--kubelet-dir={kubelet}", *extra,
        ]  # fmt: skip

    return argv


def anchor(binary: str) -> Callable[[Path, Path], list[str]]:
    extra = os.environ.get("CFS_CSI_ANCHOR_ARGS", "").split()

    def argv(sock: Path, workdir: Path) -> list[str]:
        return [binary, f"--endpoint=unix://{sock}", "--nodeid=bench", *extra]

    return argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python_env(cache: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


# -- the run ---------------------------------------------------------------------------------------------------


def first_answer(sock: Path) -> None:
    """One NodeGetInfo over a new connection (what the kubelet asks first when it registers a driver)."""
    with grpc.insecure_channel(f"unix://{sock}") as channel:
        csi_pb2_grpc.NodeStub(channel).NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=30)


def measure_starts(
    driver: Driver, root: Path, name: str, starts: int, idle: float
) -> tuple[list[float], list[float], list[float]]:
    """(start to socket in ms, start to the first answered call in ms, idle RSS in MiB) over ``starts`` starts.

    A socket bound before the process has loaded everything accepts connections early and answers later: both
    figures are shown."""
    times, answers, rss = [], [], []
    for index in range(starts):
        sock = root / f"{name}.sock"
        process, seconds = driver.start(sock, root / f"start-{name}-{index}")
        try:
            first_answer(sock)
            answers.append((time.perf_counter() - driver.started) * 1000)
            time.sleep(idle)
            rss.append(rss_mib(process.pid))
            times.append(seconds * 1000)
        finally:
            stop(process)
    return times, answers, rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="runs of every phase (alternating drivers)")
    parser.add_argument("--pairs", type=int, default=200, help="publish+unpublish pairs per phase")
    parser.add_argument("--starts", type=int, default=5, help="starts for start-up time and idle RSS")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds after start before reading RSS")
    parser.add_argument("--mounts", default="30,500", help="mount table sizes to run at")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--src", type=Path, help="run cfs-csi from this source directory (before/after comparisons)")
    parser.add_argument(
        "--mounter",
        choices=("nfs", "bind"),
        default="nfs",
        help="our node's mounter: nfs (runs the mount.nfs stand-in itself; unmounts NFSv3 with umount(8), NFSv4 with "
        "umount2(2)) or bind (the local backend's bind mounts of --export-root; unmounts with umount2(2))",
    )
    parser.add_argument(
        "--vers",
        choices=("3", "4"),
        default="3",
        help="the NFS version of our volumes (3: CFS's recommended one and our default; 4: what csi-driver-nfs gets "
        "without mountOptions on a v4 server)",
    )
    args = parser.parse_args()
    if os.environ.get("CFS_CSI_MOUNT_NS") != "private" or os.geteuid() != 0:
        print("run through bench/run.sh node (root, private mount namespace)", file=sys.stderr)
        return 2
    sizes = [int(size) for size in args.mounts.split(",")]
    root = Path(tempfile.mkdtemp(prefix="cfs-csi-node-bench-"))
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root)], check=True, timeout=10)
    unrelated: list[Path] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        exports = root / "exports"
        for slot in range(8):
            (exports / f"bench{slot}").mkdir(parents=True)
            (exports / f"anchor{slot}").mkdir(parents=True)
            (exports / "bind" / HOST / f"bench{slot}").mkdir(parents=True)  # --mounter=bind: <root>/<host>/<fsid>
        mounter = (
            ("--mounter=nfs",) if args.mounter == "nfs" else ("--mounter=bind", f"--export-root={exports / 'bind'}")
        )
        install_stand_in(root, exports)
        kubelet = root / "kubelet"
        pods = kubelet / "pods"
        pods.mkdir(parents=True)
        env = python_env(root / "pycache")
        if args.src:
            env["PYTHONPATH"] = str(args.src.resolve())
        bare = Driver(
            "cfs-csi",
            ours(kubelet, "--no-register", mounter=mounter),
            lambda slot: {"host": HOST, "fsid": f"bench{slot}", "vers": args.vers},
            env,
        )
        port = free_port()
        chart = Driver(
            "cfs-csi (as the chart runs it)",
            ours(
                kubelet, f"--kubelet-registration-path={root / 'chart.sock'}", f"--health-port={port}", mounter=mounter
            ),
            bare.context,
            env,
        )
        drivers = [bare]
        binary = os.environ.get(ANCHOR_ENV)
        if binary:
            drivers.append(
                Driver(
                    "csi-driver-nfs",
                    anchor(binary),
                    lambda slot: {"server": HOST, "share": f"/anchor{slot}"},
                    dict(os.environ),
                )
            )
        else:
            print(f"{ANCHOR_ENV} is not set: no side-by-side run with csi-driver-nfs (set it to the path of its "
                  "nfsplugin binary)", file=sys.stderr)  # fmt: skip

        # Warm-up: byte code compiled into the private cache, as the image has it.
        process, _ = bare.start(root / "warm.sock", root / "warm")
        stop(process)

        figures: dict[str, dict[str, list[float]]] = {d.name: {} for d in [*drivers, chart]}

        def add(driver: str, key: str, value: float) -> None:
            figures[driver].setdefault(key, []).append(value)

        # What the node process (as the chart runs it) loaded, printed by MODULES_PROBE when it stops.
        probe = subprocess.Popen(
            [sys.executable, "-c", MODULES_PROBE, *chart.argv(root / "imports.sock", root / "imports")[3:]],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not accepts(root / "imports.sock") and time.monotonic() < deadline and probe.poll() is None:
            time.sleep(0.01)
        time.sleep(0.5)
        probe.send_signal(signal.SIGTERM)
        stdout, _ = probe.communicate(timeout=30)
        modules = {name for line in stdout.splitlines() if line.startswith("MODULES ") for name in line.split()[1:]}
        bad = forbidden_in(modules) if modules else ["(not found out)"]
        noted = forbidden_in(modules, NOTED)
        stack = grpc_stack(modules)

        for driver, name in ((d, d.name) for d in [chart, *drivers]):
            times, answers, rss = measure_starts(
                driver, root, name.split()[0] + str(id(driver)), args.starts, args.idle
            )
            for t in times:
                add(name, "start_ms", t)
            for t in answers:
                add(name, "first_answer_ms", t)
            for r in rss:
                add(name, "idle_rss_mib", r)

        running = {}
        for driver in drivers:
            process, _ = driver.start(root / f"{driver.name}.sock", root / f"load-{driver.name}")
            processes.append(process)
            running[driver.name] = process
        found_sizes: dict[int, list[int]] = {size: [] for size in sizes}
        for run in range(args.runs):
            order = sizes if run % 2 == 0 else list(reversed(sizes))
            for size in order:
                set_unrelated_mounts(root / "unrelated", unrelated, size)
                found_sizes[size].append(mount_count())
                for driver in drivers if run % 2 == 0 else list(reversed(drivers)):
                    process = running[driver.name]
                    for concurrency in (1, 8):
                        tag = f"{driver.name}-r{run}-m{size}-c{concurrency}"
                        phase = asyncio.run(
                            run_phase(root / f"{driver.name}.sock", process.pid, driver, pods, tag, args.pairs,
                                      concurrency)
                        )  # fmt: skip
                        key = f"m{size}_c{concurrency}"
                        add(driver.name, f"{key}_pairs_per_second", phase.pairs_per_second)
                        add(driver.name, f"{key}_publish_p50_ms", phase.publish_p50_ms)
                        add(driver.name, f"{key}_cpu_ms_per_pair", phase.cpu_ms_per_pair)
                        add(driver.name, f"{key}_children_cpu_ms_per_pair", phase.children_cpu_ms_per_pair)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
        for driver in drivers:
            add(driver.name, "rss_after_load_mib", rss_mib(running[driver.name].pid))

        print_table(figures, bare.name, chart.name, drivers, sizes, found_sizes, bad, noted, stack, args)
        if args.json:
            report = {"figures": figures, "forbidden_imports": bad, "noted_imports": noted, "grpc": stack}
            args.json.write_text(json.dumps(report, indent=2))
    finally:
        for process in processes:
            stop(process)
        for point in reversed(unrelated):
            subprocess.run(["umount", "-l", str(point)], check=False, timeout=30)
        subprocess.run(["umount", "-R", "-l", str(root)], check=False, timeout=30)
        subprocess.run(["umount", "-l", os.path.realpath("/sbin")], check=False, timeout=30)
        if not os.environ.get("CFS_CSI_BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
    return 0


def print_table(
    figures: dict[str, dict[str, list[float]]],
    ours_name: str,
    chart_name: str,
    drivers: list[Driver],
    sizes: list[int],
    found_sizes: dict[int, list[int]],
    bad: list[str],
    noted: list[str],
    stack: str,
    args: argparse.Namespace,
) -> None:
    mine = figures[ours_name]
    other = figures[drivers[1].name] if len(drivers) > 1 else {}
    anchor_name = drivers[1].name if len(drivers) > 1 else "csi-driver-nfs (not run)"
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, key: str, higher: bool, source: dict[str, list[float]] | None = None) -> None:
        values = (source or mine).get(key, [])
        rows.append((label, summary(values), summary(other.get(key, [])), ratio(values, other.get(key, []), higher)))

    for size in sizes:
        seen = sorted(set(found_sizes[size]))
        label = f"{size} mounts" + ("" if seen == [size] else f" (table had {','.join(map(str, seen))})")
        for concurrency in (1, 8):
            row(f"pairs/s, c={concurrency}, {label}", f"m{size}_c{concurrency}_pairs_per_second", True)
        row(f"publish p50 ms, c=1, {label}", f"m{size}_c1_publish_p50_ms", False)
        for concurrency in (1, 8):
            row(f"driver CPU ms/pair, c={concurrency}, {label}", f"m{size}_c{concurrency}_cpu_ms_per_pair", False)
        row(f"reaped children CPU ms/pair, c=1, {label}", f"m{size}_c1_children_cpu_ms_per_pair", False)
    row("idle RSS MiB (--no-register)", "idle_rss_mib", False)
    rows.append(("idle RSS MiB (as the chart runs it)", summary(figures[chart_name].get("idle_rss_mib", [])), "", ""))
    row("RSS MiB after the load", "rss_after_load_mib", False)
    row("start to listening socket ms (--no-register)", "start_ms", False)
    rows.append(("start to socket ms (as the chart runs it)", summary(figures[chart_name].get("start_ms", [])), "", ""))
    row("start to first answered call ms (--no-register)", "first_answer_ms", False)
    rows.append(
        (
            "start to first answer ms (as the chart runs it)",
            summary(figures[chart_name].get("first_answer_ms", [])),
            "",
            "",
        )
    )
    rows.append(("forbidden modules loaded (as the chart runs it)", ", ".join(bad) or "none", "", ""))
    rows.append(("also loaded, of " + ", ".join(NOTED), ", ".join(noted) or "none", "", ""))
    rows.append(("gRPC server (as the chart runs it)", stack, "", ""))
    head = ("figure", ours_name, anchor_name, "ratio")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    print(f"\nnode plugin benchmark: {args.runs} runs x {args.pairs} pairs per phase, {args.starts} starts; "
          f"cfs-csi with --mounter={args.mounter}, NFSv{args.vers} volumes; median (min-max); "
          "ratio > 1: cfs-csi better")  # fmt: skip
    for line in [head, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
