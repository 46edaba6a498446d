"""``cfs-csi dev-cluster up`` as a user runs it: SIGTERM (not only Ctrl-C) stops everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry))
    return found


def test_sigterm_while_starting_stops_what_had_started(go_tools: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    up = subprocess.Popen([sys.executable, "-m", "cfs_csi", "dev-cluster", "up", "--dir", str(root)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            Path(f"/proc/{pid}/comm").read_text().strip() == "kube-apiserver" for pid in _mentioning(str(root))
        ):
            time.sleep(0.05)
        assert up.poll() is None, "dev-cluster up ended before the API server started"
        up.send_signal(signal.SIGTERM)  # the API server is starting: not yet ready, so start() is still running
        assert up.wait(90) == 130
    finally:
        if up.poll() is None:
            up.kill()
    assert up.stdout is not None
    output = up.stdout.read()
    assert "stopped while starting" in output and "HTTP/1.1 500" not in output  # no readiness-poll noise
    assert _mentioning(str(root)) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_tears_the_control_plane_down(go_tools: dict[str, Path], tmp_path: Path, sig: int) -> None:
    root = tmp_path / "cluster"
    up = subprocess.Popen([sys.executable, "-m", "cfs_csi", "dev-cluster", "up", "--dir", str(root)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert up.stdout is not None
    printed = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            printed.append(line)
            if line.startswith("export KUBECONFIG="):
                break
        assert printed and printed[-1].startswith("export KUBECONFIG="), "".join(printed)
        running = _mentioning(str(root))
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in running}
        assert {"etcd", "kube-apiserver"} <= names and any(n.startswith("kube-controller") for n in names), names
        up.send_signal(sig)
        assert up.wait(90) == 0, up.stdout.read()
    finally:
        if up.poll() is None:
            up.kill()
    assert _mentioning(str(root)) == []  # nothing it started is left running
