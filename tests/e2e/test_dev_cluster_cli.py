"""``cfs-csi dev-cluster up`` as a user runs it: a stop signal stops everything; product mode installs the chart."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cfs_csi.devcluster import images, node
from tests.conftest import read_until

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
    try:
        read_until(up, "export KUBECONFIG=", timeout=180)
        running = _mentioning(str(root))
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in running}
        assert {"etcd", "kube-apiserver"} <= names and any(n.startswith("kube-controller") for n in names), names
        up.send_signal(sig)
        assert up.wait(90) == 0, up.stdout.read()
    finally:
        if up.poll() is None:
            up.kill()
    assert _mentioning(str(root)) == []  # nothing it started is left running


def test_product_mode_installs_the_chart_and_its_printed_examples_bind_in_both_modes(
    go_tools: dict[str, Path], tmp_path: Path
) -> None:
    try:
        node.check_requirements()
    except node.NodeUnavailable as exc:
        pytest.skip(f"no real node on this machine: {exc}")
    if reasons := images.check_prerequisites():
        pytest.skip("images cannot be built here: " + "; ".join(reasons))
    root = Path(tempfile.mkdtemp(prefix="cfs-dc-"))  # short: containerd's socket paths are limited to 104 bytes
    up = subprocess.Popen([sys.executable, "-m", "cfs_csi", "dev-cluster", "up", "--product", "--dir", str(root)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        printed = read_until(up, "(Ctrl-C or SIGTERM stops the chart, the node", timeout=900)
        commands = [line.strip() for line in printed if line.startswith("  ") and " apply -f " in line]
        # one example per mode and the snapshot class, with the kubectl built at the server's version
        assert len(commands) == 3, printed
        for command in commands:
            words = shlex.split(command)
            assert Path(words[0]).name == "kubectl"
            result = subprocess.run(words, capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, result.stderr
        kubectl = shlex.split(commands[0])[:2]  # the binary and --kubeconfig

        def phases() -> dict[str, str]:
            out = subprocess.run([*kubectl, "get", "pvc", "-n", "default", "-o", "json"], capture_output=True,
                                 text=True, timeout=60, check=True).stdout  # fmt: skip
            return {i["metadata"]["name"]: i["status"].get("phase", "") for i in json.loads(out)["items"]}

        deadline = time.monotonic() + 300
        while phases() != {"cfs-normal": "Bound", "cfs-share-1": "Bound"} and time.monotonic() < deadline:
            time.sleep(2)
        assert phases() == {"cfs-normal": "Bound", "cfs-share-1": "Bound"}
        up.send_signal(signal.SIGTERM)
        assert up.wait(300) == 0
    finally:
        if up.poll() is None:
            up.kill()
    assert _mentioning(str(root)) == []  # the chart's pods, the node and the control plane are all gone
    shutil.rmtree(root, ignore_errors=True)  # --dir is the user's: up leaves it, with the logs
