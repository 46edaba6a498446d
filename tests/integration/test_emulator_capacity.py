"""Directory quotas and the size limit through the official SDK over real HTTP, against the emulator process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.cfs.v20190719 import cfs_client, models

from tests.integration.test_emulator import (  # noqa: F401 - no_proxy is an autouse fixture
    Running,
    code_of,
    create_request,
    mount_targets,
    no_proxy,
    start,
    wait_state,
)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Running]:
    running = start(tmp_path / "emulator", "--snapshot-delay", "0.3")
    try:
        yield running
    finally:
        running.stop()


def available(cloud: Running, client: cfs_client.CfsClient, name: str, **extra: Any) -> tuple[str, Any]:
    fs_id = client.CreateCfsFileSystem(create_request(name, **extra)).FileSystemId
    wait_state(client, fs_id, "available")
    [target] = mount_targets(client, fs_id)
    return fs_id, cloud.exports.file_system_dir(target.IpAddress, target.FSID)


def set_quota(client: cfs_client.CfsClient, fs_id: str, path: str, gib: int | None, files: int | None = None) -> str:
    request = models.SetUserQuotaRequest()
    request.FileSystemId, request.UserType, request.DirectoryPath = fs_id, "Dir", path
    request.CapacityHardLimit, request.FileHardLimit = gib, files
    return str(client.SetUserQuota(request).UserId)


def quotas(client: cfs_client.CfsClient, fs_id: str) -> list[models.UserQuota]:
    request = models.DescribeUserQuotaRequest()
    request.FileSystemId = fs_id
    response = client.DescribeUserQuota(request)
    assert response.TotalCount == len(response.UserQuotaInfo)
    return list(response.UserQuotaInfo)


def test_directory_quota_through_the_sdk(cloud: Running) -> None:
    client = cloud.client()
    fs_id, data = available(cloud, client, "pvc-quota")
    (data / "claims" / "pvc-1").mkdir(parents=True)
    (data / "claims" / "pvc-1" / "file").write_bytes(b"q" * 4096)
    assert code_of(lambda: set_quota(client, fs_id, "/cfs/claims/pvc-1", gib=5)) == (
        "InvalidParameterValue.QuotaCapLimitError"
    )
    set_quota(client, fs_id, "/cfs/claims/pvc-1", gib=10, files=1000)
    assert code_of(lambda: set_quota(client, fs_id, "/cfs/claims", gib=10)) == (
        "InvalidParameterValue.ProjectQuotasDirNested"
    )
    [quota] = quotas(client, fs_id)
    assert (quota.UserType, quota.DirectoryPath, quota.CapacityHardLimit, quota.FileHardLimit) == (
        "Dir", "/cfs/claims/pvc-1", 10, 1000,
    )  # fmt: skip
    assert (quota.CapacityUsed, quota.FileUsed, quota.Status, quota.FileSystemId) == (1, 1, "available", fs_id)
    set_quota(client, fs_id, "/cfs/claims/pvc-1", gib=20, files=1000)  # expansion
    assert quotas(client, fs_id)[0].CapacityHardLimit == 20
    request = models.DeleteUserQuotaRequest()
    request.FileSystemId, request.UserType, request.DirectoryPath = fs_id, "Dir", "/cfs/claims/pvc-1"
    client.DeleteUserQuota(request)
    client.DeleteUserQuota(request)
    assert quotas(client, fs_id) == []
    request.FileSystemId = "cfs-zzzzzzzz"
    assert code_of(lambda: client.DeleteUserQuota(request)) == "ResourceNotFound.FileSystemNotFound"


def test_size_limit_through_the_sdk(cloud: Running) -> None:
    client = cloud.client()
    fs_id, _ = available(cloud, client, "pvc-limit")
    request = models.UpdateCfsFileSystemSizeLimitRequest()
    request.FileSystemId, request.FsLimit = fs_id, 200
    client.UpdateCfsFileSystemSizeLimit(request)
    describe = models.DescribeCfsFileSystemsRequest()
    describe.FileSystemId = fs_id
    [info] = client.DescribeCfsFileSystems(describe).FileSystems
    assert (info.SizeLimit, info.Capacity) == (200, 200)
    request.FsLimit = -5
    assert code_of(lambda: client.UpdateCfsFileSystemSizeLimit(request)) == "InvalidParameterValue.InvalidFsSizeLimit"
    turbo_id, _ = available(cloud, client, "pvc-turbo", StorageType="TP", Capacity=20480)
    request.FileSystemId, request.FsLimit = turbo_id, 30000
    assert code_of(lambda: client.UpdateCfsFileSystemSizeLimit(request)) == "UnsupportedOperation"
