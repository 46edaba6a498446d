"""The CFS API client and its SDK fallback against the emulator: the same answers and the same error codes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from cfs_csi.cloud.tencent.api import ApiError, CfsApi, CloudApi
from cfs_csi.cloud.tencent.credentials import StaticCredential
from cfs_csi.cloud.tencent.sdkapi import SdkApi
from tests.conftest import SECRET_ID, SECRET_KEY, Emulator

CREATE = {
    "Zone": "ap-guangzhou-3", "NetInterface": "VPC", "PGroupId": "pgroupbasic", "Protocol": "NFS",
    "StorageType": "SD", "VpcId": "vpc-oilua6pt", "SubnetId": "subnet-rtwb42lu", "FsName": "api-parity",
    "ClientToken": "api-parity-token",
}  # fmt: skip

Make = Callable[[str, StaticCredential], CloudApi]
CLIENTS: dict[str, Make] = {
    "direct": lambda endpoint, credential: CfsApi("http", endpoint, "ap-guangzhou", credential, 10),
    "sdk": lambda endpoint, credential: SdkApi("http", endpoint, "ap-guangzhou", credential, 10),
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
async def test_calls_and_errors(emulator: Emulator, client: str) -> None:
    endpoint = emulator.url.removeprefix("http://")
    api = CLIENTS[client](endpoint, StaticCredential(SECRET_ID, SECRET_KEY))
    try:
        created = await api.call("CreateCfsFileSystem", CREATE)
        again = await api.call("CreateCfsFileSystem", CREATE)  # same ClientToken while creating
        raise AssertionError(f"expected ClientTokenInUse, got {again}")
    except ApiError as exc:
        assert exc.code == "FailedOperation.ClientTokenInUse"
    listed = await api.call("DescribeCfsFileSystems", {"CreationToken": "api-parity"})
    assert [fs["FileSystemId"] for fs in listed["FileSystems"]] == [created["FileSystemId"]]
    with pytest.raises(ApiError) as gone:
        await api.call("DescribeMountTargets", {"FileSystemId": "cfs-nothere0"})
    assert (gone.value.action, gone.value.code) == ("DescribeMountTargets", "ResourceNotFound.FileSystemNotFound")
    await api.close()

    wrong = CLIENTS[client](endpoint, StaticCredential(SECRET_ID, "not-the-key"))
    with pytest.raises(ApiError) as denied:
        await wrong.call("DescribeCfsFileSystems", {})
    assert denied.value.code == "AuthFailure.SignatureFailure"
    await wrong.close()


async def test_nothing_listening_is_a_retryable_network_error(emulator: Emulator) -> None:
    api = CfsApi("http", "127.0.0.1:9", "ap-guangzhou", StaticCredential(SECRET_ID, SECRET_KEY), 2)
    with pytest.raises(ApiError) as caught:
        await api.call("DescribeCfsFileSystems", {})
    assert caught.value.code == "ClientNetworkError"


async def test_one_connection_carries_every_call(emulator: Emulator) -> None:
    api = CfsApi(
        "http", emulator.url.removeprefix("http://"), "ap-guangzhou", StaticCredential(SECRET_ID, SECRET_KEY), 10
    )
    for _ in range(5):
        await api.call("DescribeCfsFileSystems", {"Limit": 1})
    assert api.connections_opened == 1
    await api.close()


async def test_create_looks_up_its_name_not_the_whole_subnet(emulator: Emulator) -> None:
    """With 120 file systems in the subnet, creating one more describes by name: one page, not two (and no
    parsing of 120 others) before the create, whatever else the subnet holds."""
    from cfs_csi.cloud.base import FileSystemSpec
    from cfs_csi.cloud.tencent.backend import TencentConfig, TencentFileStorage
    from cfs_csi.volume.params import parse_parameters

    api = CfsApi(
        "http", emulator.url.removeprefix("http://"), "ap-guangzhou", StaticCredential(SECRET_ID, SECRET_KEY), 10
    )
    await asyncio.gather(*(api.call("CreateCfsFileSystem", {**CREATE, "FsName": f"x{i}", "ClientToken": f"t{i}"})
                           for i in range(120)))  # fmt: skip  # 120 connections at once: none refused
    config = TencentConfig(region="ap-guangzhou", endpoint=emulator.url.removeprefix("http://"), scheme="http",
                           cluster_id="cls-test", poll_interval=0.1)  # fmt: skip
    storage = TencentFileStorage(config, StaticCredential(SECRET_ID, SECRET_KEY))
    params = parse_parameters({"vpcid": CREATE["VpcId"], "subnetid": CREATE["SubnetId"], "zone": CREATE["Zone"]})
    emulator.set_faults(create_delay=0)  # available at once: no polls to count
    emulator.admin("DELETE", "requests")
    fs = await storage.ensure_file_system(FileSystemSpec(name="pvc-by-name", capacity_bytes=0, params=params))
    assert fs.ready and fs.name == "pvc-by-name"
    counts = emulator.admin("GET", "requests")
    assert isinstance(counts, dict)
    # The lookup by name and the first look at the new file system: one page each (two more if the lookup listed
    # the subnet, 121 file systems at 100 a page).
    assert counts["by_action"]["DescribeCfsFileSystems"] == {"ok": 2}, counts
    listed = await api.call("DescribeCfsFileSystems", {"CreationToken": "cls-test_pvc-by-name"})
    assert listed["TotalCount"] == 1
    await api.close()
