"""Shared fixtures: a private tmpfs to mount in, and a real driver process on a real unix socket."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def in_private_mount_namespace() -> bool:
    """scripts/test.sh runs pytest under ``unshare -m --propagation private`` and says so in the environment."""
    return os.geteuid() == 0 and os.environ.get("CFS_CSI_MOUNT_NS") == "private"


@pytest.fixture
def mount_root() -> Iterator[Path]:
    """A fresh tmpfs, so every bind mount below it shows in mountinfo and nothing leaks onto the host."""
    if not in_private_mount_namespace():
        pytest.fail("mount tests need root in a private mount namespace: run them through scripts/test.sh")
    root = Path(tempfile.mkdtemp(prefix="cfs-csi-test-"))
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root)], check=True, timeout=10)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-R", "-l", str(root)], check=False, timeout=30)
        root.rmdir()


@dataclass
class Driver:
    """A ``cfs-csi serve`` process."""

    process: subprocess.Popen[bytes]
    endpoint: str
    socket: Path
    state_dir: Path
    log: Path
    #: ``<kubelet dir>/pods``: the only place where this node plugin publishes.
    pods: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def kubelet_dir(root: Path) -> Path:
    """The kubelet directory of the drivers started below ``root`` (its ``pods/`` exists, as on a node)."""
    return root / "kubelet"


def pods_dir(root: Path) -> Path:
    """Where targets go: the node plugin refuses any path outside ``<kubelet dir>/pods``."""
    pods = kubelet_dir(root) / "pods"
    pods.mkdir(parents=True, exist_ok=True)
    return pods


def start_driver(
    root: Path, *extra: str, env: dict[str, str] | None = None, name: str = "driver", wait: bool = True
) -> Driver:
    sock = root / f"{name}.sock"
    state = root / f"{name}-state"
    log = root / f"{name}.log"
    pods = pods_dir(root)
    if _nfs_mounter(extra) and not any(arg.startswith("--nfs-mount-helper") for arg in extra):
        # These tests stand a `mount` in for mount(8) on PATH; a host's real mount.nfs must not bypass it.
        extra = (*extra, "--nfs-mount-helper=none")
    argv = [
        sys.executable, "-m", "cfs_csi", "--log-level", "DEBUG", "serve",
        "--endpoint", f"unix://{sock}", "--node-id", "test-node", "--state-dir", str(state),
        "--kubelet-dir", str(pods.parent), "--no-register", *extra,  # several drivers may share a root: pass --register
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    driver = Driver(process, f"unix://{sock}", sock, state, log, pods)
    if wait:
        deadline = time.monotonic() + 30
        while not _accepts(sock):
            if process.poll() is not None or time.monotonic() > deadline:
                driver.stop(signal.SIGKILL)
                raise RuntimeError(f"driver did not start:\n{driver.log_text()}")
            time.sleep(0.05)
    return driver


def _nfs_mounter(extra: tuple[str, ...]) -> bool:
    return "--mounter=nfs" in extra or any(pair == ("--mounter", "nfs") for pair in itertools.pairwise(extra))


def _accepts(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


@pytest.fixture
def driver(mount_root: Path) -> Iterator[Driver]:
    running = start_driver(mount_root)
    try:
        yield running
    finally:
        stop_gracefully(running)


def stop_gracefully(driver: Driver) -> None:
    """SIGTERM (the plugin drains), then SIGKILL if it does not exit in time."""
    try:
        driver.stop(timeout=15)
    except subprocess.TimeoutExpired:
        driver.stop(signal.SIGKILL)


def deep(root: Path, levels: int) -> None:
    """``levels`` nested directories below ``root`` (made through handles: the path is longer than PATH_MAX)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def promtool() -> Path | None:
    """promtool, built once; None where it cannot be built (then only prometheus_client's parser validates)."""
    from cfs_csi.devcluster import tools

    try:
        return tools.ensure(["promtool"])["promtool"]
    except tools.BuildError:
        return None


def fake_command(directory: Path, name: str, script: str) -> Path:
    """Put an executable ``name`` in ``directory`` (prepended to PATH by the caller).

    Only for what this machine cannot run for real: the kernel NFS client, or a server that hangs.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


# -- the CFS emulator ------------------------------------------------------------------------------------------

SECRET_ID = "AKIDcfscsitest0000000000000000000000"
SECRET_KEY = "cfs-csi-test-secret-key-000000000"
CLOUD_ENV = {"TENCENTCLOUD_API_SECRET_ID": SECRET_ID, "TENCENTCLOUD_API_SECRET_KEY": SECRET_KEY}


@dataclass
class Emulator:
    """A ``cfs-csi emulator`` process serving the CFS API over HTTP on loopback."""

    process: subprocess.Popen[str]
    url: str
    export_root: Path

    def admin(self, method: str, path: str, body: object | None = None) -> object:
        import httpx

        response = httpx.request(method, f"{self.url}/admin/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def file_systems(self) -> list[dict[str, object]]:
        """Every file system the emulator holds (not deleted)."""
        rows = self.admin("GET", "filesystems")
        listed = rows["FileSystems"] if isinstance(rows, dict) else rows
        return [fs for fs in listed if fs.get("LifeCycleState") != "deleted"]

    def set_faults(self, **faults: float) -> None:
        self.admin("PUT", "faults", faults)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


def start_emulator(root: Path, *flags: str, name: str = "emulator") -> Emulator:
    export_root = root / "exports"
    argv = [
        sys.executable, "-m", "cfs_csi.emulator", "--listen", "127.0.0.1:0", "--state", str(root / f"{name}.db"),
        "--export-root", str(export_root), "--create-delay", "0.3", *flags,
    ]  # fmt: skip
    log = (root / f"{name}.log").open("w")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, **CLOUD_ENV})
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    if "http://" not in first:
        process.kill()
        raise RuntimeError(f"emulator did not start: {first!r}\n{(root / f'{name}.log').read_text()}")
    return Emulator(process, first[first.index("http://") :].rstrip("/"), export_root)


def tencent_driver_flags(emulator: Emulator) -> list[str]:
    return [
        "--backend", "tencent", "--cfs-endpoint", emulator.url, "--region", "ap-guangzhou",
        "--zone", "ap-guangzhou-3", "--cluster-id", "cls-test", "--mounter", "bind",
        "--export-root", str(emulator.export_root),
    ]  # fmt: skip


@pytest.fixture
def emulator(mount_root: Path) -> Iterator[Emulator]:
    running = start_emulator(mount_root)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def tencent_driver(mount_root: Path, emulator: Emulator) -> Iterator[Driver]:
    running = start_driver(mount_root, *tencent_driver_flags(emulator), env=CLOUD_ENV, name="tencent")
    try:
        yield running
    finally:
        stop_gracefully(running)


def cloud_create(emulator: Emulator, fs_name: str, wait: bool = True) -> str:
    """Create a file system directly through the official SDK (as a user would in the console)."""
    import json
    import time as _time

    from tencentcloud.cfs.v20190719 import cfs_client, models
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    profile = ClientProfile(httpProfile=HttpProfile(endpoint=emulator.url.removeprefix("http://"), protocol="http"))
    client = cfs_client.CfsClient(Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)
    request = models.CreateCfsFileSystemRequest()
    request.from_json_string(json.dumps({
        "Zone": "ap-guangzhou-3", "NetInterface": "VPC", "PGroupId": "pgroupbasic", "Protocol": "NFS",
        "StorageType": "SD", "VpcId": "vpc-oilua6pt", "SubnetId": "subnet-rtwb42lu", "FsName": fs_name,
    }))  # fmt: skip
    fs_id: str = client.CreateCfsFileSystem(request).FileSystemId
    while wait and not any(fs["FileSystemId"] == fs_id and fs["LifeCycleState"] == "available"
                           for fs in emulator.file_systems()):  # fmt: skip
        _time.sleep(0.2)
    return fs_id


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """The lines ``process`` prints up to and including the first that starts with ``marker``; AssertionError
    with what it printed if it ends or ``timeout`` passes first."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(marker):
            return lines
    raise AssertionError(f"no line starting {marker!r}:\n" + "\n".join(lines))
