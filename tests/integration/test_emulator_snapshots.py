"""Snapshots and restore through the official SDK over real HTTP, against the emulator process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tencentcloud.cfs.v20190719 import cfs_client, models

from tests.integration.test_emulator import (  # noqa: F401 - no_proxy is an autouse fixture
    Running,
    code_of,
    eventually,
    mount_targets,
    no_proxy,
    start,
    wait_state,
)
from tests.integration.test_emulator_capacity import available


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Running]:
    running = start(tmp_path / "emulator", "--snapshot-delay", "0.3")
    try:
        yield running
    finally:
        running.stop()


def snapshot_list(client: cfs_client.CfsClient, **fields: object) -> models.DescribeCfsSnapshotsResponse:
    request = models.DescribeCfsSnapshotsRequest()
    for key, value in fields.items():
        setattr(request, key, value)
    return client.DescribeCfsSnapshots(request)


def status_of(client: cfs_client.CfsClient, snap_id: str) -> str | None:
    found = snapshot_list(client, SnapshotId=snap_id).Snapshots
    return str(found[0].Status) if found else None


def test_snapshot_then_restore_has_the_old_content(emu: Running) -> None:
    client = emu.client()
    fs_id, data = available(emu, client, "pvc-source")
    (data / "file.txt").write_text("old content")
    request = models.CreateCfsSnapshotRequest()
    request.FileSystemId, request.SnapshotName = fs_id, "snap-1"
    tag = models.TagInfo()
    tag.TagKey, tag.TagValue = "csi-snapshot", "snap-1"
    request.ResourceTags = [tag]
    snap_id = client.CreateCfsSnapshot(request).SnapshotId
    (data / "file.txt").write_text("new content")
    eventually(lambda: status_of(client, snap_id) == "available" or None, "the snapshot to become available")
    [info] = snapshot_list(client, FileSystemId=fs_id).Snapshots
    assert (info.SnapshotName, info.FileSystemId, info.FsName, info.Percent, info.RegionName) == (
        "snap-1", fs_id, "pvc-source", 100, "ap-guangzhou",
    )  # fmt: skip
    assert [(t.TagKey, t.TagValue) for t in info.Tags] == [("csi-snapshot", "snap-1")]

    create = models.CreateCfsFileSystemRequest()
    create.Zone, create.NetInterface, create.PGroupId = "ap-guangzhou-3", "VPC", "pgroupbasic"
    create.VpcId, create.SubnetId, create.FsName, create.SnapshotId = "vpc-oilua6pt", "subnet-rtwb42lu", "r", snap_id
    restored = client.CreateCfsFileSystem(create).FileSystemId
    wait_state(client, restored, "available")
    [target] = mount_targets(client, restored)
    assert (emu.exports.file_system_dir(target.IpAddress, target.FSID) / "file.txt").read_text() == "old content"

    delete = models.DeleteCfsSnapshotRequest()
    delete.SnapshotId = snap_id
    assert client.DeleteCfsSnapshot(delete).SnapshotId == snap_id
    eventually(lambda: status_of(client, snap_id) is None or None, "the snapshot to be gone")
    assert code_of(lambda: client.DeleteCfsSnapshot(delete)) == "ResourceNotFound.SnapshotNotFound"
    response = snapshot_list(client)
    assert (response.TotalCount, response.TotalSize, response.Snapshots) == (0, 0, [])
