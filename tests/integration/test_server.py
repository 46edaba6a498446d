"""Start-up and shut-down of the real server process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from google.protobuf import wrappers_pb2

from cfs_csi import DRIVER_NAME
from cfs_csi.client import CsiClient
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.published import Publication, PublishedVolumes
from tests.conftest import Driver, fake_command, pods_dir, start_driver


async def test_identity(client: CsiClient) -> None:
    info = await client.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest())
    assert info.name == DRIVER_NAME and info.vendor_version
    caps = await client.identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest())
    assert [c.WhichOneof("type") for c in caps.capabilities] == ["service", "volume_expansion"]
    assert caps.capabilities[0].service.type == csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE
    assert caps.capabilities[1].volume_expansion.type == csi_pb2.PluginCapability.VolumeExpansion.ONLINE
    probe = await client.identity.Probe(csi_pb2.ProbeRequest())
    assert probe.ready == wrappers_pb2.BoolValue(value=True)


async def test_node_only_plugin_does_not_claim_a_controller(mount_root: Path) -> None:
    driver = start_driver(mount_root, "--component", "node", name="nodeonly")
    try:
        async with CsiClient(driver.endpoint) as csi:
            caps = await csi.identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest())
            assert list(caps.capabilities) == []
    finally:
        driver.stop()


def test_stale_socket_is_replaced(mount_root: Path) -> None:
    stale = mount_root / "stale.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))
    listener.close()  # the file stays, nobody listens: what a crashed plugin leaves behind
    driver = start_driver(mount_root, name="stale")
    try:
        assert driver.process.poll() is None
    finally:
        assert driver.stop() == 0


def test_a_live_socket_or_a_regular_file_is_not_replaced(driver: Driver, mount_root: Path) -> None:
    second = start_driver(mount_root, name="driver", wait=False)
    assert second.process.wait(30) != 0
    (mount_root / "file.sock").write_text("not a socket")
    third = start_driver(mount_root, name="file", wait=False)
    assert third.process.wait(30) != 0
    assert "not a socket" in third.log_text()
    assert (mount_root / "file.sock").read_text() == "not a socket"


async def test_sigterm_drains_in_flight_calls_and_removes_the_socket(mount_root: Path) -> None:
    bin_dir, real_mount = mount_root / "bin", shutil.which("mount")
    fake_command(bin_dir, "mount", f'sleep 2\nfor last; do :; done\nexec {real_mount} -t tmpfs tmpfs "$last"\n')
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    driver = start_driver(mount_root, "--mounter", "nfs", "--component", "node", env=env, name="drain")
    async with CsiClient(driver.endpoint) as csi:
        volume = csi_pb2.Volume(volume_id="cfs-d", volume_context={"host": "10.0.0.1", "fsid": "abc"})
        call = asyncio.ensure_future(csi.publish(volume, str(pods_dir(mount_root) / "drain-target")))
        await asyncio.sleep(0.7)
        driver.process.send_signal(signal.SIGTERM)
        await call  # completes normally although the server is stopping
    assert await asyncio.to_thread(driver.process.wait, 30) == 0
    assert not driver.socket.exists()


def test_bad_endpoint_is_a_clear_error(mount_root: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "cfs_csi", "serve", "--endpoint", "tcp://127.0.0.1:1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "unix socket" in result.stderr
    assert "Traceback" not in result.stderr


# -- the socket is bound before the rest is loaded (issue 15) -------------------------------------------------------


async def test_a_call_waiting_in_the_backlog_is_answered_after_the_records_are_reconciled(mount_root: Path) -> None:
    """The socket accepts connections from the first milliseconds, but no call is answered before start-up has
    reconciled the publication records: a record of volume A at a target that is gone is dropped first, so an
    unpublish of volume B there is OK (answered before the reconcile, it would be NOT_FOUND: "holds volume A")."""
    state = mount_root / "early-state"
    target = str(pods_dir(mount_root) / "gone-pod" / "volumes" / "kubernetes.io~csi" / "pv" / "mount")
    PublishedVolumes(state / "node").record(Publication(volume_id="cfs-a", target_path=target, source="h:/a"))
    driver = start_driver(mount_root, "--component", "node", name="early", wait=False)
    try:
        while not driver.socket.exists():  # connect the moment the socket is there
            assert driver.process.poll() is None, driver.log_text()
            await asyncio.sleep(0.001)
        async with CsiClient(driver.endpoint) as csi:
            await csi.unpublish("cfs-b", target)
        assert "no longer exists; dropping its publication record" in driver.log_text()
    finally:
        assert driver.stop() == 0


def test_sigterm_while_starting_stops_cleanly(mount_root: Path) -> None:
    driver = start_driver(mount_root, "--component", "node", name="short", wait=False)
    while not driver.socket.exists():
        assert driver.process.poll() is None, driver.log_text()
        time.sleep(0.001)
    assert driver.stop() == 0
    assert not driver.socket.exists()


def test_a_start_up_failure_after_the_bind_removes_the_socket(mount_root: Path) -> None:
    not_a_dir = mount_root / "state-file"
    not_a_dir.write_text("x")
    driver = start_driver(mount_root, "--component", "node", "--state-dir", str(not_a_dir), name="fails", wait=False)
    assert driver.process.wait(30) == 2
    assert "cfs-csi: error:" in driver.log_text()
    assert not driver.socket.exists()
