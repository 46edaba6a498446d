"""The node plugin registers itself with the kubelet, and answers liveness checks over HTTP.

The test acts as the kubelet: a real gRPC client on the real registration socket of a real ``cfs-csi serve``.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import grpc
import httpx
import pytest

from cfs_csi.driver.health import Reply, render, route, verdict
from cfs_csi.registration import pluginregistration_pb2 as reg
from cfs_csi.registration import pluginregistration_pb2_grpc as reg_grpc
from cfs_csi.registration.server import Action, FileId, Found, classify, decide
from tests.conftest import Driver, kubelet_dir, start_driver, stop_gracefully

DRIVER = "com.tencent.cloud.csi.cfs"
pytestmark = pytest.mark.mounts


def registration_socket(root: Path) -> Path:
    return kubelet_dir(root) / "plugins_registry" / f"{DRIVER}-reg.sock"


def wait_until(what: str, condition: object, timeout: float = 30) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def kubelet_call(path: Path) -> tuple[reg.PluginInfo, reg.RegistrationStatusResponse]:
    with grpc.insecure_channel(f"unix://{path}") as channel:
        stub = reg_grpc.RegistrationStub(channel)
        info = stub.GetInfo(reg.InfoRequest(), timeout=10)
        answer = stub.NotifyRegistrationStatus(reg.RegistrationStatus(plugin_registered=True), timeout=10)
    return info, answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def healthz(port: int) -> int:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code


def node(root: Path, *flags: str) -> Driver:
    return start_driver(root, "--component", "node", "--register", *flags, name="node")


def test_the_kubelet_gets_our_info_and_the_socket_comes_back_when_wiped(mount_root: Path) -> None:
    driver = node(mount_root, "--kubelet-registration-path", "/var/lib/kubelet/plugins/x/csi.sock")
    path = registration_socket(mount_root)
    try:
        wait_until("the registration socket", path.is_socket)
        info, answer = kubelet_call(path)
        assert (info.type, info.name, info.endpoint, list(info.supported_versions)) == (
            "CSIPlugin", DRIVER, "/var/lib/kubelet/plugins/x/csi.sock", ["1.0.0"],
        )  # fmt: skip
        assert answer == reg.RegistrationStatusResponse()
        assert "registered with the kubelet" in driver.log_text()
        with grpc.insecure_channel(f"unix://{path}") as channel:
            reg_grpc.RegistrationStub(channel).NotifyRegistrationStatus(
                reg.RegistrationStatus(plugin_registered=False, error="driver name taken"), timeout=10
            )
        assert "refused to register" in driver.log_text() and "driver name taken" in driver.log_text()
        # Nothing else in the directory is the kubelet's business: the socket is made under a hidden name.
        assert [p.name for p in path.parent.iterdir()] == [path.name]

        # The kubelet's directory is wiped (node re-provisioned, kubelet restarted on a fresh disk).
        os.unlink(path)
        path.parent.rmdir()
        wait_until("the registration socket made again", path.is_socket)
        info, _ = kubelet_call(path)
        assert info.name == DRIVER
    finally:
        stop_gracefully(driver)
    assert not path.exists()  # SIGTERM: the kubelet is told we are gone
    assert driver.process.returncode == 0


def test_the_endpoint_defaults_to_the_csi_socket_and_registration_can_be_turned_off(mount_root: Path) -> None:
    driver = node(mount_root)
    try:
        wait_until("the registration socket", registration_socket(mount_root).is_socket)
        info, _ = kubelet_call(registration_socket(mount_root))
        assert info.endpoint == str(driver.socket)
    finally:
        stop_gracefully(driver)
    driver = node(mount_root, "--no-register")
    try:
        assert list((kubelet_dir(mount_root) / "plugins_registry").iterdir()) == []  # the first run removed its own
        assert "registration" not in driver.log_text()
    finally:
        stop_gracefully(driver)


def test_a_kubelet_directory_as_deep_as_a_socket_path_allows(mount_root: Path) -> None:
    """The final path fits in a unix socket address (107 bytes); the hidden name it is made under would not."""
    deep = mount_root / ("d" * (107 - 1 - len(str(mount_root)) - len("/plugins_registry/") - len(f"{DRIVER}-reg.sock")))
    (deep / "pods").mkdir(parents=True)
    path = deep / "plugins_registry" / f"{DRIVER}-reg.sock"
    assert len(str(path)) == 107
    driver = node(mount_root, "--kubelet-dir", str(deep))
    try:
        wait_until("the registration socket", path.is_socket)
        assert kubelet_call(path)[0].name == DRIVER
    finally:
        stop_gracefully(driver)
    assert not path.exists()


def test_a_socket_someone_else_put_there_is_left_alone(mount_root: Path) -> None:
    driver = node(mount_root)
    path = registration_socket(mount_root)
    try:
        wait_until("the registration socket", path.is_socket)
        os.unlink(path)
        other = socket.socket(socket.AF_UNIX)  # another instance took the name over
        other.bind(str(path))
        other.listen()
        theirs = os.stat(path).st_ino
        wait_until("the plugin to notice", lambda: "we did not make: leaving it alone" in driver.log_text())
    finally:
        stop_gracefully(driver)
    assert path.is_socket() and os.stat(path).st_ino == theirs
    other.close()


def test_a_live_registration_socket_is_not_taken_over(mount_root: Path) -> None:
    path = registration_socket(mount_root)
    path.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen()
        with pytest.raises(RuntimeError, match="did not start"):
            node(mount_root)
    assert "another process is serving on" in (mount_root / "node.log").read_text()


def test_healthz_is_200_while_the_csi_socket_answers_probe_and_503_after(mount_root: Path) -> None:
    port = free_port()
    driver = node(mount_root, "--health-port", str(port))
    try:
        assert healthz(port) == 200
        assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404
        os.unlink(driver.socket)  # the CSI socket vanished: the kubelet cannot reach the plugin
        assert healthz(port) == 503
    finally:
        stop_gracefully(driver)


@pytest.mark.parametrize(
    ("observed", "found", "action"),
    [
        (None, Found.MISSING, Action.CREATE),
        (FileId(1, 2), Found.OURS, Action.NOTHING),
        (FileId(1, 3), Found.OTHER, Action.LEAVE),
        (FileId(9, 2), Found.OTHER, Action.LEAVE),  # same inode on another device is another file
    ],
)
def test_what_the_watcher_does_with_what_is_at_the_path(observed: FileId | None, found: Found, action: Action) -> None:
    assert classify(observed, FileId(1, 2)) is found
    assert decide(found) is action


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("GET /healthz HTTP/1.1\r\n", None),
        ("HEAD /healthz?x=1 HTTP/1.0\r\n", None),
        ("POST /healthz HTTP/1.1\r\n", 405),
        ("GET / HTTP/1.1\r\n", 404),
        ("GET /healthz\r\n", 400),
        ("", 400),
    ],
)
def test_health_routes(line: str, status: int | None) -> None:
    reply = route(line)
    assert (reply.status if reply else None) == status


def test_health_verdict_and_rendering() -> None:
    assert verdict([]) == Reply(200, "OK", "ok\n")
    assert verdict(["a", "b"]) == Reply(503, "Service Unavailable", "a; b\n")
    text = render(Reply(503, "Service Unavailable", "x\n"))
    assert text.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and text.endswith(b"\r\n\r\nx\n")
    assert b"Content-Length: 2\r\n" in text and render(Reply(200, "OK", "ok\n"), head_only=True).endswith(b"\r\n\r\n")


def test_healthz_fails_while_the_registration_socket_cannot_be_made_again(mount_root: Path) -> None:
    port = free_port()
    driver = node(mount_root, "--health-port", str(port))
    path = registration_socket(mount_root)
    try:
        wait_until("the registration socket", path.is_socket)
        assert healthz(port) == 200
        os.unlink(path)
        path.parent.rmdir()
        path.parent.write_text("not a directory")  # the socket cannot be made: the plugin is unreachable
        wait_until("/healthz failing", lambda: healthz(port) == 503)
        assert "cannot make registration socket" in driver.log_text()
        path.parent.unlink()
        wait_until("the registration socket made again", path.is_socket)
        assert healthz(port) == 200
    finally:
        stop_gracefully(driver)


def test_a_killed_plugins_socket_is_replaced_by_the_next_run(mount_root: Path) -> None:
    path = registration_socket(mount_root)
    first = node(mount_root)
    wait_until("the registration socket", path.is_socket)
    first.stop(signal.SIGKILL)
    assert path.is_socket()  # left behind, nobody serving it
    second = node(mount_root)
    try:
        wait_until("the registration socket served again", lambda: "serving kubelet registration" in second.log_text())
        assert kubelet_call(path)[0].name == DRIVER
    finally:
        stop_gracefully(second)


def test_the_controller_serves_healthz_too(mount_root: Path) -> None:
    port = free_port()
    driver = start_driver(
        mount_root, "--component", "controller", "--register", "--health-port", str(port), name="controller"
    )
    try:
        assert healthz(port) == 200
        assert not (kubelet_dir(mount_root) / "plugins_registry").exists()  # only a node registers
        os.unlink(driver.socket)
        assert healthz(port) == 503
    finally:
        stop_gracefully(driver)
