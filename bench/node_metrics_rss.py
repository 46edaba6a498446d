"""Idle RSS of the node plugin with and without ``--metrics-port``, interleaved, several runs; prints medians.

Each run starts ``serve --component=node`` (bind mounter, no registration, health port on), waits until
``/healthz`` answers 200 (the node serves; its CSI socket accepts from the first milliseconds, before the
imports), scrapes ``/metrics`` once when it is on (so the exposition code is loaded too), waits ``--settle``
seconds and reads ``VmRSS``. Runs alternate off/on so that drift on a shared machine hits both alike. Also
prints which modules the metrics added (one run of each, ``sys.modules`` at exit) and whether a refused module
(ssl, _ssl, _hashlib) or prometheus_client's package ``__init__`` was loaded.

    python bench/node_metrics_rss.py --runs 9
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

MODULES_PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('MODULES', ' '.join(sorted(n for n, m in sys.modules.items() if m is not None)),"
    " flush=True))\n"
    "sys.argv[0] = 'cfs_csi'\n"
    "runpy.run_module('cfs_csi', run_name='__main__')\n"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def argv(root: Path, name: str, metrics: bool) -> list[str]:
    words = ["serve", "--component=node", "--endpoint", f"unix://{root}/{name}.sock", "--state-dir",
             f"{root}/{name}-state", "--kubelet-dir", f"{root}/kubelet", "--no-register",
             "--health-port", str(free_port())]  # fmt: skip
    if metrics:
        words += ["--metrics-port", str(free_port())]
    return words


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_serving(process: subprocess.Popen[str] | subprocess.Popen[bytes], words: list[str]) -> None:
    """Until ``/healthz`` answers 200: the node has built every service and serves (the CSI socket accepts from
    the first milliseconds, before the imports)."""
    port = words[words.index("--health-port") + 1]
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the node did not start ({' '.join(words)})")
        time.sleep(0.02)


def one_run(root: Path, name: str, metrics: bool, settle: float) -> float:
    words = argv(root, name, metrics)
    process = subprocess.Popen([sys.executable, "-m", "cfs_csi", *words], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_serving(process, words)
        if metrics:
            port = words[words.index("--metrics-port") + 1]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                response.read()
        time.sleep(settle)
        return rss_kib(process.pid) / 1024
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def modules(root: Path, name: str, metrics: bool) -> set[str]:
    words = argv(root, name, metrics)
    process = subprocess.Popen([sys.executable, "-c", MODULES_PROBE, *words], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    wait_serving(process, words)
    if metrics:
        port = words[words.index("--metrics-port") + 1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            response.read()
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    line = next(line for line in out.splitlines() if line.startswith("MODULES "))
    return set(line.split()[1:])


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} MiB (min {min(values):.1f}, max {max(values):.1f}, n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds idle before reading VmRSS")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (the node plugin checks its mount namespace)", file=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="cfs-csi-rss-"))
    (root / "kubelet" / "pods").mkdir(parents=True)
    results: dict[bool, list[float]] = {False: [], True: []}
    for run in range(args.runs):
        for metrics in (False, True) if run % 2 == 0 else (True, False):
            results[metrics].append(one_run(root, f"n{run}{int(metrics)}", metrics, args.settle))
    off, on = results[False], results[True]
    print(f"idle RSS, metrics off: {summary(off)}")
    print(f"idle RSS, metrics on:  {summary(on)}")
    print(f"difference of medians: {statistics.median(on) - statistics.median(off):+.1f} MiB")
    without, with_metrics = modules(root, "m0", False), modules(root, "m1", True)
    added = sorted(with_metrics - without)
    print(f"modules added by metrics ({len(added)}): {' '.join(added)}")
    refused = [name for name in ("ssl", "_ssl", "_hashlib", "http.server", "prometheus_client") if name in with_metrics]
    print(f"refused/heavy modules loaded with metrics on: {refused or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
