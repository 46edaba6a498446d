"""The emulator as a real process, spoken to by the official Tencent Cloud SDK over real HTTP.

Every test starts ``python -m cfs_csi.emulator --listen 127.0.0.1:0`` in its own directory and reads the
address from the first line of stdout. Waits poll with generous deadlines; no test asserts a duration.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from tencentcloud.cfs.v20190719 import cfs_client, cfs_client_async, models
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from cfs_csi.volume.exports import ExportRoot

SECRET_ID = "AKIDemulatorintegration000000000000"
SECRET_KEY = "emulator-integration-secret-key-0000"
REGION = "ap-guangzhou"
DEADLINE = 30.0
T = TypeVar("T")


@dataclass
class Running:
    process: subprocess.Popen[str]
    url: str
    root: Path

    @property
    def endpoint(self) -> str:
        return self.url.removeprefix("http://")

    @property
    def exports(self) -> ExportRoot:
        return ExportRoot(self.root / "exports")

    def profile(self, timeout: int = 10) -> ClientProfile:
        return ClientProfile(httpProfile=HttpProfile(endpoint=self.endpoint, protocol="http", reqTimeout=timeout))

    def client(self, secret_id: str = SECRET_ID, key: str = SECRET_KEY, timeout: int = 10) -> cfs_client.CfsClient:
        return cfs_client.CfsClient(Credential(secret_id, key), REGION, self.profile(timeout))

    def admin(self, method: str, path: str, body: object | None = None, status: int = 200) -> Any:
        response = httpx.request(method, f"{self.url}/admin/{path}", json=body, timeout=10)
        assert response.status_code == status, response.text
        return response.json()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(15)


def start(root: Path, *flags: str, env: dict[str, str] | None = None) -> Running:
    root.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "cfs_csi.emulator", "--listen", "127.0.0.1:0", "--state", str(root / "state.db"),
        "--export-root", str(root / "exports"), "--create-delay", "0.3", "--delete-delay", "0.2", *flags,
    ]  # fmt: skip
    environment = {
        **os.environ,
        "TENCENTCLOUD_API_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_API_SECRET_KEY": SECRET_KEY + "\n",  # a trailing newline must not matter
        **(env or {}),
    }
    with (root / "emulator.log").open("a") as log:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True, env=environment, cwd=root)
    assert process.stdout is not None
    first = process.stdout.readline().strip()  # "" if it exits first: never blocks forever
    prefix = "cfs-emulator listening on "
    if not first.startswith(prefix):
        process.kill()
        process.wait()
        raise RuntimeError(f"emulator did not start: {first!r}\n{(root / 'emulator.log').read_text()}")
    return Running(process, first.removeprefix(prefix), root)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK honours HTTP(S)_PROXY; loopback must never go through one."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Running]:
    running = start(tmp_path / "emulator")
    try:
        yield running
    finally:
        running.stop()


def create_request(name: str = "pvc-test", token: str | None = None, **extra: Any) -> models.CreateCfsFileSystemRequest:
    request = models.CreateCfsFileSystemRequest()
    request.Zone = "ap-guangzhou-3"
    request.NetInterface = "VPC"
    request.PGroupId = "pgroupbasic"
    request.Protocol = "NFS"
    request.StorageType = "SD"
    request.VpcId = "vpc-oilua6pt"
    request.SubnetId = "subnet-rtwb42lu"
    request.FsName = name
    tag = models.TagInfo()
    tag.TagKey, tag.TagValue = "csi-volume", name
    request.ResourceTags = [tag]
    if token is not None:
        request.ClientToken = token
    for key, value in extra.items():
        setattr(request, key, value)
    return request


def describe(client: cfs_client.CfsClient, **fields: Any) -> models.DescribeCfsFileSystemsResponse:
    request = models.DescribeCfsFileSystemsRequest()
    for key, value in fields.items():
        setattr(request, key, value)
    return client.DescribeCfsFileSystems(request)


def mount_targets(client: cfs_client.CfsClient, fs_id: str) -> list[models.MountInfo]:
    request = models.DescribeMountTargetsRequest()
    request.FileSystemId = fs_id
    response = client.DescribeMountTargets(request)
    assert response.NumberOfMountTargets == len(response.MountTargets)
    return list(response.MountTargets)


def delete(client: cfs_client.CfsClient, fs_id: str) -> None:
    request = models.DeleteCfsFileSystemRequest()
    request.FileSystemId = fs_id
    client.DeleteCfsFileSystem(request)


def eventually(probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + DEADLINE
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def state_of(client: cfs_client.CfsClient, fs_id: str) -> str | None:
    found = describe(client, FileSystemId=fs_id).FileSystems
    return found[0].LifeCycleState if found else None


def wait_state(client: cfs_client.CfsClient, fs_id: str, state: str) -> None:
    eventually(lambda: True if state_of(client, fs_id) == state else None, f"{fs_id} to be {state}")


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(TencentCloudSDKException) as error:
        call()
    return str(error.value.get_code())


# -- life cycle ----------------------------------------------------------------------------------------------


def test_create_becomes_available_with_a_loopback_mount_target_and_data(emulator: Running) -> None:
    client = emulator.client()
    created = client.CreateCfsFileSystem(create_request("pvc-one"))
    assert created.FileSystemId.startswith("cfs-") and len(created.FileSystemId) == 12
    assert (created.LifeCycleState, created.FsName, created.CreationToken) == ("creating", "pvc-one", "pvc-one")
    assert created.RequestId
    assert mount_targets(client, created.FileSystemId) == []  # none while creating

    wait_state(client, created.FileSystemId, "available")
    [info] = describe(client, FileSystemId=created.FileSystemId).FileSystems
    assert (info.Zone, info.StorageType, info.Protocol, info.FsName) == ("ap-guangzhou-3", "SD", "NFS", "pvc-one")
    assert info.PGroup.PGroupId == "pgroupbasic"
    assert [(t.TagKey, t.TagValue) for t in info.Tags] == [("csi-volume", "pvc-one")]

    [target] = mount_targets(client, created.FileSystemId)
    assert target.IpAddress.startswith("127.16.") and len(target.FSID) == 8
    assert (target.VpcId, target.SubnetId, target.LifeCycleState) == ("vpc-oilua6pt", "subnet-rtwb42lu", "available")
    assert emulator.exports.file_system_dir(target.IpAddress, target.FSID).is_dir()


def test_delete_removes_the_file_system_and_its_data(emulator: Running) -> None:
    client = emulator.client()
    fs_id = client.CreateCfsFileSystem(create_request()).FileSystemId
    assert code_of(lambda: delete(client, fs_id)) == "InvalidParameterValue.InvalidFsStatus"  # still creating
    wait_state(client, fs_id, "available")
    [target] = mount_targets(client, fs_id)
    data = emulator.exports.file_system_dir(target.IpAddress, target.FSID)
    (data / "file.txt").write_text("payload")
    delete(client, fs_id)
    eventually(lambda: True if not data.exists() else None, "the data directory to go")  # no further call needed
    assert describe(client, FileSystemId=fs_id).TotalCount == 0
    assert code_of(lambda: delete(client, fs_id)) == "ResourceNotFound.FileSystemNotFound"
    assert code_of(lambda: mount_targets(client, fs_id)) == "ResourceNotFound.FileSystemNotFound"
    snapshot = emulator.admin("GET", "filesystems")
    assert (snapshot["TotalCount"], snapshot["DeletedCount"]) == (1, 1)
    assert snapshot["FileSystems"][0]["LifeCycleState"] == "deleted"


def test_paging_across_more_than_twenty(emulator: Running) -> None:
    client = emulator.client()
    ids = [client.CreateCfsFileSystem(create_request(f"pvc-{i}")).FileSystemId for i in range(23)]
    default_page = describe(client)
    assert default_page.TotalCount == 23 and len(default_page.FileSystems) == 10
    pages = [describe(client, Offset=offset, Limit=20) for offset in (0, 20, 40)]
    assert [len(p.FileSystems) for p in pages] == [20, 3, 0]
    assert [fs.FileSystemId for p in pages for fs in p.FileSystems] == ids
    assert code_of(lambda: describe(client, Limit=101)) == "InvalidParameterValue"
    assert describe(client, FileSystemId="cfs-00000000").TotalCount == 0
    assert describe(client, VpcId="vpc-oilua6pt", Limit=100).TotalCount == 23


def test_duplicate_names_are_allowed(emulator: Running) -> None:
    client = emulator.client()
    first = client.CreateCfsFileSystem(create_request("same-name")).FileSystemId
    second = client.CreateCfsFileSystem(create_request("same-name")).FileSystemId
    assert first != second
    assert describe(client, CreationToken="same-name").TotalCount == 2


def test_client_token_in_use_then_idempotent(emulator: Running) -> None:
    client = emulator.client()
    emulator.admin("PUT", "faults", {"create_delay": 3600})  # stays creating: no race with the clock
    creating = client.CreateCfsFileSystem(create_request("slow", token="token-slow")).FileSystemId
    assert code_of(lambda: client.CreateCfsFileSystem(create_request("slow", token="token-slow"))) == (
        "FailedOperation.ClientTokenInUse"
    )
    emulator.admin("PUT", "faults", {})  # back to the start-up configuration (--create-delay 0.3)
    fs_id = client.CreateCfsFileSystem(create_request("quick", token="token-quick")).FileSystemId
    wait_state(client, fs_id, "available")
    again = client.CreateCfsFileSystem(create_request("quick", token="token-quick"))
    assert (again.FileSystemId, again.LifeCycleState) == (fs_id, "available")
    assert describe(client).TotalCount == 2
    assert state_of(client, creating) == "creating"
    assert code_of(lambda: client.CreateCfsFileSystem(create_request(token="t" * 65))) == (
        "InvalidParameterValue.ClientTokenLimitExceeded"
    )
    assert code_of(lambda: client.CreateCfsFileSystem(create_request("n" * 65))) == (
        "InvalidParameterValue.FsNameLimitExceeded"
    )


def test_creation_failures_and_stuck_creations(emulator: Running) -> None:
    client = emulator.client()
    emulator.admin("PUT", "faults", {"create_failed_rate": 1.0})
    failed = client.CreateCfsFileSystem(create_request("fails")).FileSystemId
    wait_state(client, failed, "create_failed")
    assert mount_targets(client, failed) == []
    delete(client, failed)
    emulator.admin("PUT", "faults", {"stuck_rate": 1.0})
    stuck = client.CreateCfsFileSystem(create_request("stuck")).FileSystemId
    row = next(fs for fs in emulator.admin("GET", "filesystems")["FileSystems"] if fs["FileSystemId"] == stuck)
    assert (row["Outcome"], row["LifeCycleState"]) == ("stuck", "creating")


# -- authentication and common errors ---------------------------------------------------------------------------


def test_wrong_credentials(emulator: Running) -> None:
    wrong_key = emulator.client(key="not-the-secret-key")
    assert code_of(lambda: describe(wrong_key)) == "AuthFailure.SignatureFailure"
    wrong_id = emulator.client(secret_id="AKIDsomeoneelse")
    assert code_of(lambda: describe(wrong_id)) == "AuthFailure.SecretIdNotFound"


def test_unknown_action_version_and_region(emulator: Running) -> None:
    common = CommonClient("cfs", "2019-07-19", Credential(SECRET_ID, SECRET_KEY), REGION, emulator.profile())
    assert code_of(lambda: common.call_json("DescribeCfsFileSystemz", {})) == "InvalidAction"
    assert common.call_json("DescribeCfsFileSystems", {"Limit": 1})["Response"]["TotalCount"] == 0
    old = CommonClient("cfs", "2017-03-12", Credential(SECRET_ID, SECRET_KEY), REGION, emulator.profile())
    assert code_of(lambda: old.call_json("DescribeCfsFileSystems", {})) == "NoSuchVersion"
    shanghai = cfs_client.CfsClient(Credential(SECRET_ID, SECRET_KEY), "ap-shanghai", emulator.profile())
    assert code_of(lambda: describe(shanghai)) == "UnsupportedRegion"
    assert code_of(lambda: common.call_json("DescribeCfsFileSystems", {"Size": 1})) == "UnknownParameter"


# -- faults ----------------------------------------------------------------------------------------------------


def test_throttling(emulator: Running) -> None:
    client = emulator.client()
    emulator.admin("DELETE", "requests")
    emulator.admin("PUT", "faults", {"throttle_rate": 1.0, "actions": ["CreateCfsFileSystem"]})
    assert code_of(lambda: client.CreateCfsFileSystem(create_request())) == "RequestLimitExceeded"
    assert describe(client).TotalCount == 0  # not throttled, and nothing was created
    counts = emulator.admin("GET", "requests")
    assert counts["by_action"]["CreateCfsFileSystem"] == {"RequestLimitExceeded": 1}
    assert counts["by_action"]["DescribeCfsFileSystems"] == {"ok": 1}
    assert emulator.admin("GET", "faults")["throttle_rate"] == 1.0


def test_server_errors_surface_as_network_errors(emulator: Running) -> None:
    client = emulator.client()
    emulator.admin("PUT", "faults", {"error_rate": 1.0})
    assert code_of(lambda: describe(client)) == "ServerNetworkError"
    emulator.admin("PUT", "faults", {"error_rate": 1.0, "error_status": 503})
    assert code_of(lambda: describe(client)) == "ServerNetworkError"
    emulator.admin("PUT", "faults", {})
    assert describe(client).TotalCount == 0
    assert emulator.admin("GET", "requests")["by_outcome"] == {"http_502": 1, "http_503": 1, "ok": 1}


def test_a_lost_answer_still_acted(emulator: Running) -> None:
    """``timeout``: the cloud creates the file system, the client times out; the driver must find it later."""
    emulator.admin("PUT", "faults", {"timeout_rate": 1.0, "timeout_delay": 5, "actions": ["CreateCfsFileSystem"]})
    impatient = emulator.client(timeout=1)
    code = code_of(lambda: impatient.CreateCfsFileSystem(create_request("lost-answer")))
    assert code == "ClientNetworkError"
    [found] = describe(emulator.client(), CreationToken="lost-answer").FileSystems
    assert found.FsName == "lost-answer"


def test_admin_faults_are_validated(emulator: Running) -> None:
    before = emulator.admin("GET", "faults")
    assert before["create_delay"] == 0.3  # from the flags
    error = emulator.admin("PUT", "faults", {"throttle_rate": 2}, status=400)
    assert "throttle_rate" in error["error"]
    emulator.admin("PUT", "faults", {"nonsense": 1}, status=400)
    assert emulator.admin("GET", "faults") == before
    emulator.admin("GET", "nothing-here", status=404)


# -- process -----------------------------------------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path) -> None:
    first = start(tmp_path / "node")
    try:
        client = first.client()
        fs_id = client.CreateCfsFileSystem(create_request("durable", token="durable-token")).FileSystemId
        wait_state(client, fs_id, "available")
        [before] = mount_targets(client, fs_id)
    finally:
        assert first.stop() == 0
    second = start(tmp_path / "node")
    try:
        client = second.client()
        assert state_of(client, fs_id) == "available"
        [after] = mount_targets(client, fs_id)
        assert (after.IpAddress, after.FSID) == (before.IpAddress, before.FSID)
        assert second.exports.file_system_dir(after.IpAddress, after.FSID).is_dir()
        assert client.CreateCfsFileSystem(create_request("durable", token="durable-token")).FileSystemId == fs_id
    finally:
        assert second.stop() == 0


def test_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    result = subprocess.run(
        [sys.executable, "-m", "cfs_csi.emulator", "--state", str(tmp_path / "s.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no credentials" in result.stderr and result.stdout == ""


async def test_the_async_client(emulator: Running) -> None:
    async with cfs_client_async.CfsClient(Credential(SECRET_ID, SECRET_KEY), REGION, emulator.profile()) as client:

        async def states(fs_id: str) -> list[str]:
            request = models.DescribeCfsFileSystemsRequest()
            request.FileSystemId = fs_id
            return [fs.LifeCycleState for fs in (await client.DescribeCfsFileSystems(request)).FileSystems]

        async def wait_for(fs_id: str, wanted: list[str]) -> None:
            deadline = time.monotonic() + DEADLINE
            while await states(fs_id) != wanted:
                assert time.monotonic() < deadline, f"{fs_id} never reached {wanted}"
                await asyncio.sleep(0.05)

        created = await client.CreateCfsFileSystem(create_request("async"))
        assert created.LifeCycleState == "creating"
        await wait_for(created.FileSystemId, ["available"])
        targets = models.DescribeMountTargetsRequest()
        targets.FileSystemId = created.FileSystemId
        assert (await client.DescribeMountTargets(targets)).NumberOfMountTargets == 1
        removal = models.DeleteCfsFileSystemRequest()
        removal.FileSystemId = created.FileSystemId
        await client.DeleteCfsFileSystem(removal)
        await wait_for(created.FileSystemId, [])
        with pytest.raises(TencentCloudSDKException) as error:
            await client.DeleteCfsFileSystem(removal)
        assert error.value.get_code() == "ResourceNotFound.FileSystemNotFound"


def test_raw_http_edges(emulator: Running) -> None:
    """What no SDK sends: a huge declared body, other methods and paths. Answers stay well-formed."""
    host, port = emulator.endpoint.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("POST", "/")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(20 * 1024 * 1024))
        connection.endheaders()  # the body is never sent: the emulator must not wait for it
        response = connection.getresponse()
        assert (response.status, response.getheader("Content-Type")) == (200, "application/json")
        assert json.loads(response.read())["Response"]["Error"]["Code"] == "RequestSizeLimitExceeded"
    finally:
        connection.close()
    assert httpx.get(f"{emulator.url}/", timeout=10).status_code == 405
    assert httpx.post(f"{emulator.url}/v2/", content=b"{}", timeout=10).status_code == 404
    unsigned = httpx.post(f"{emulator.url}/", content=b"{}", headers={"X-TC-Action": "DescribeCfsFileSystems"})
    assert unsigned.headers["content-type"] == "application/json"
    assert unsigned.json()["Response"]["Error"]["Code"] == "AuthFailure.InvalidAuthorization"
