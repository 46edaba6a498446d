"""Clones (a volume from a volume) through the controller over gRPC: tencent against the CFS emulator, and local.

What the cloud holds is read through the official SDK (DescribeCfsSnapshots, DescribeCfsFileSystems), as a user
in the console would see it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cfs_csi.client import CsiClient, mount_capability
from cfs_csi.csi import csi_pb2
from cfs_csi.volume.capacity import GIB
from tests.conftest import CLOUD_ENV, Driver, Emulator, cloud_create, start_driver, tencent_driver_flags
from tests.integration.test_snapshots_expansion import PARAMS, code_of, data_dir, sdk_call, snapshot_identities

TEMPORARY_TAG = "cfs-csi/temporary-for"


@pytest.fixture
async def csi(tencent_driver: Driver) -> AsyncIterator[CsiClient]:
    async with CsiClient(tencent_driver.endpoint) as client:
        yield client


def clone_request(
    name: str, source_id: str, size: int = 0, params: dict[str, str] | None = None
) -> csi_pb2.CreateVolumeRequest:
    return csi_pb2.CreateVolumeRequest(
        name=name, volume_capabilities=[mount_capability()], parameters=PARAMS if params is None else params,
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        volume_content_source=csi_pb2.VolumeContentSource(
            volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id=source_id)
        ),
    )  # fmt: skip


async def create(csi: CsiClient, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.Volume:
    """CreateVolume, called again while it answers ABORTED (being taken or created), as the CO does."""
    for _ in range(100):
        try:
            answer: csi_pb2.CreateVolumeResponse = await csi.controller.CreateVolume(request)
            return answer.volume
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.ABORTED, exc.details()
    raise AssertionError("CreateVolume never finished")


def snapshots(emulator: Emulator) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = sdk_call(emulator, "DescribeCfsSnapshots", {"Limit": 100})["Snapshots"]
    return found


def temporary_for(emulator: Emulator, volume: str) -> list[str]:
    return [
        s["SnapshotId"]
        for s in snapshots(emulator)
        if {"TagKey": TEMPORARY_TAG, "TagValue": volume} in s["Tags"] and s["Status"] != "deleting"
    ]


def file_system_ids(emulator: Emulator) -> list[str]:
    return sorted(str(fs["FileSystemId"]) for fs in emulator.file_systems())


def tags_of(emulator: Emulator, fs_id: str) -> dict[str, str]:
    [fs] = sdk_call(emulator, "DescribeCfsFileSystems", {"FileSystemId": fs_id})["FileSystems"]
    return {t["TagKey"]: t["TagValue"] for t in fs["Tags"]}


async def test_a_clone_has_the_content_of_its_source_at_cloning_time(csi: CsiClient, emulator: Emulator) -> None:
    source = await csi.create_volume("pvc-clone-src", PARAMS, 20 * GIB)
    (data_dir(emulator, source) / "file").write_text("before")
    (data_dir(emulator, source) / "dir").mkdir()
    (data_dir(emulator, source) / "dir" / "nested").write_bytes(b"n" * 3000)

    clone = await create(csi, clone_request("pvc-clone", source.volume_id))
    assert clone.volume_id != source.volume_id
    assert clone.content_source.volume.volume_id == source.volume_id
    assert clone.capacity_bytes == 20 * GIB  # no size asked: the source's
    assert (data_dir(emulator, clone) / "file").read_text() == "before"
    assert (data_dir(emulator, clone) / "dir" / "nested").read_bytes() == b"n" * 3000
    # Later writes to either side stay on that side.
    (data_dir(emulator, source) / "file").write_text("after")
    (data_dir(emulator, clone) / "mine").write_text("clone only")
    assert (data_dir(emulator, clone) / "file").read_text() == "before"
    assert not (data_dir(emulator, source) / "mine").exists()
    # The temporary snapshot is gone, and the clone records its source for the cloud's user too.
    assert snapshots(emulator) == []
    assert tags_of(emulator, clone.volume_id)["cfs-csi/source-fs"] == source.volume_id

    again = await create(csi, clone_request("pvc-clone", source.volume_id))  # a retry: the same volume
    assert (again.volume_id, again.content_source.volume.volume_id) == (clone.volume_id, source.volume_id)
    assert snapshots(emulator) == []
    got = await csi.controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=clone.volume_id))
    assert got.volume.content_source.volume.volume_id == source.volume_id

    other = await csi.create_volume("pvc-other", PARAMS, 20 * GIB)
    assert await code_of(csi.controller.CreateVolume(clone_request("pvc-clone", other.volume_id))) == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    plain = csi_pb2.CreateVolumeRequest(
        name="pvc-clone", volume_capabilities=[mount_capability()], parameters=PARAMS,
        capacity_range=csi_pb2.CapacityRange(required_bytes=20 * GIB),
    )  # fmt: skip
    assert await code_of(csi.controller.CreateVolume(plain)) == grpc.StatusCode.ALREADY_EXISTS
    before = file_system_ids(emulator)
    small = clone_request("pvc-small", source.volume_id, 10 * GIB)
    assert await code_of(csi.controller.CreateVolume(small)) == grpc.StatusCode.OUT_OF_RANGE
    assert file_system_ids(emulator) == before and snapshots(emulator) == []

    for volume in (clone, other, source):
        await csi.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


async def test_the_class_parameters_apply_to_the_clone(csi: CsiClient, emulator: Emulator) -> None:
    """SD and HP are both CFS's General series, into which a General snapshot restores: an HP class clones an SD
    volume into an HP file system (a Turbo class would be refused: see tests/unit/test_clone_decisions.py)."""
    source = await csi.create_volume("pvc-sd", PARAMS, 10 * GIB)
    (data_dir(emulator, source) / "file").write_text("sd data")
    hp = {**PARAMS, "storagetype": "HP"}
    clone = await create(csi, clone_request("pvc-hp", source.volume_id, 12 * GIB, hp))
    [fs] = sdk_call(emulator, "DescribeCfsFileSystems", {"FileSystemId": clone.volume_id})["FileSystems"]
    assert (fs["StorageType"], clone.volume_context["storagetype"], clone.capacity_bytes) == ("HP", "HP", 12 * GIB)
    assert (data_dir(emulator, clone) / "file").read_text() == "sd data"


async def test_a_clone_failing_half_way_leaks_nothing(
    csi: CsiClient, emulator: Emulator, tencent_driver: Driver
) -> None:
    source = await csi.create_volume("pvc-src", PARAMS, 10 * GIB)
    emulator.admin("PUT", "faults", {"snapshot_delay": 0.2, "create_delay": 0.2})
    file_systems = file_system_ids(emulator)
    # 1. The clone's file system is created from the temporary snapshot, then the first look at its mount target
    #    fails for good (the source's, checked first, still answers).
    emulator.admin("PUT", "faults", {"snapshot_delay": 0.2, "create_delay": 0.2, "fail_action": "DescribeMountTargets",
                                     "fail_code": "UnauthorizedOperation", "fail_after": 1})  # fmt: skip
    assert await code_of(csi.controller.CreateVolume(clone_request("pvc-fails", source.volume_id))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    # 2. Creating the file system from the snapshot is refused for good: the snapshot taken for it goes.
    emulator.admin("PUT", "faults", {"snapshot_delay": 0.2, "fail_action": "CreateCfsFileSystem",
                                     "fail_code": "UnauthorizedOperation"})  # fmt: skip
    assert await code_of(csi.controller.CreateVolume(clone_request("pvc-fails-2", source.volume_id))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    emulator.admin("PUT", "faults", {"delete_delay": 0.0})
    assert file_system_ids(emulator) == file_systems
    assert snapshots(emulator) == []
    # Both failed after the step that mattered: a file system (1) and a snapshot (1, 2) were made and deleted.
    log = tencent_driver.log_text()
    assert "created for volume pvc-fails by a call that then failed" in log
    assert "of clone pvc-fails, which failed" in log and "of clone pvc-fails-2, which failed" in log


async def test_a_retry_after_a_crash_before_the_snapshot_is_deleted_cleans_up(
    csi: CsiClient, emulator: Emulator, tencent_driver: Driver, mount_root: Path
) -> None:
    source = await csi.create_volume("pvc-src", PARAMS, 10 * GIB)
    (data_dir(emulator, source) / "file").write_text("kept")
    # The clone is restored, but its temporary snapshot cannot be deleted yet (a retried error): the controller
    # answers ABORTED and keeps nothing in memory; then it dies.
    emulator.admin("PUT", "faults", {"fail_action": "DeleteCfsSnapshot", "fail_code": "ResourceInUse"})
    request = clone_request("pvc-crash", source.volume_id)
    assert await code_of(csi.controller.CreateVolume(request)) == grpc.StatusCode.ABORTED
    [left] = temporary_for(emulator, "pvc-crash")
    [made] = [fs for fs in emulator.file_systems() if fs["FileSystemId"] != source.volume_id]
    tencent_driver.stop(signal.SIGKILL)
    emulator.admin("PUT", "faults", {})
    restarted = start_driver(mount_root, *tencent_driver_flags(emulator), env=CLOUD_ENV, name="tencent-restarted")
    try:
        async with CsiClient(restarted.endpoint) as again:
            clone = await create(again, request)  # the CO's retry of the same CreateVolume
    finally:
        restarted.stop()
    assert clone.volume_id == made["FileSystemId"]  # found by name, not made twice
    assert (data_dir(emulator, clone) / "file").read_text() == "kept"
    assert temporary_for(emulator, "pvc-crash") == [] and left not in [s["SnapshotId"] for s in snapshots(emulator)]


async def test_delete_volume_deletes_a_temporary_snapshot_the_clone_left(csi: CsiClient, emulator: Emulator) -> None:
    """Refused for good (the credentials may not delete snapshots): the clone is complete, so it is returned; its
    snapshot is neither listed, restored nor deleted as a CSI snapshot, and DeleteVolume of the clone deletes it."""
    source = await csi.create_volume("pvc-src", PARAMS, 10 * GIB)
    emulator.admin("PUT", "faults", {"fail_action": "DeleteCfsSnapshot", "fail_code": "UnauthorizedOperation"})
    clone = await create(csi, clone_request("pvc-left", source.volume_id))
    [left] = temporary_for(emulator, "pvc-left")
    emulator.admin("PUT", "faults", {})
    assert list((await csi.controller.ListSnapshots(csi_pb2.ListSnapshotsRequest())).entries) == []
    delete = csi_pb2.DeleteSnapshotRequest(snapshot_id=left)
    assert await code_of(csi.controller.DeleteSnapshot(delete)) == grpc.StatusCode.FAILED_PRECONDITION
    restore = csi_pb2.CreateVolumeRequest(
        name="pvc-from-temporary", volume_capabilities=[mount_capability()], parameters=PARAMS,
        volume_content_source=csi_pb2.VolumeContentSource(
            snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=left)
        ),
    )  # fmt: skip
    assert await code_of(csi.controller.CreateVolume(restore)) == grpc.StatusCode.FAILED_PRECONDITION
    assert temporary_for(emulator, "pvc-left") == [left]
    await csi.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=clone.volume_id))
    assert temporary_for(emulator, "pvc-left") == []
    assert file_system_ids(emulator) == [source.volume_id]


async def test_foreign_and_shared_file_systems_are_not_cloned(csi: CsiClient, emulator: Emulator) -> None:
    foreign = cloud_create(emulator, "someone-elses")
    share = cloud_create(emulator, "cls-test_sharedCFS-gold")  # a shared class's: ours, but every claim's data
    other_cluster = sdk_call(emulator, "CreateCfsFileSystem", {
        "Zone": "ap-guangzhou-3", "NetInterface": "VPC", "PGroupId": "pgroupbasic", "Protocol": "NFS",
        "StorageType": "SD", "VpcId": PARAMS["vpcid"], "SubnetId": PARAMS["subnetid"], "FsName": "cls-other_pvc-x",
        "ResourceTags": [{"TagKey": "cfs-csi/volume", "TagValue": "pvc-x"},
                         {"TagKey": "cfs-csi/cluster", "TagValue": "cls-other"}],
    })["FileSystemId"]  # fmt: skip
    [target] = sdk_call(emulator, "DescribeMountTargets", {"FileSystemId": share})["MountTargets"]
    before_snapshots, before_fs = snapshot_identities(emulator), file_system_ids(emulator)
    for fs_id in (foreign, share, other_cluster):
        code = await code_of(csi.controller.CreateVolume(clone_request(f"pvc-steal-{fs_id}", fs_id)))
        assert code == grpc.StatusCode.FAILED_PRECONDITION, fs_id
    directory = f"{target['FSID']}:default-data-pvc-1"
    assert await code_of(csi.controller.CreateVolume(clone_request("pvc-dir", directory))) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    for missing in ("cfs-nothere1", "not-an-id", "/etc/passwd"):
        assert await code_of(csi.controller.CreateVolume(clone_request("pvc-nothing", missing))) == (
            grpc.StatusCode.NOT_FOUND
        )
    assert snapshot_identities(emulator) == before_snapshots
    assert file_system_ids(emulator) == before_fs


# -- local backend -------------------------------------------------------------------------------------------------


@pytest.fixture
async def local(driver: Driver) -> AsyncIterator[CsiClient]:
    async with CsiClient(driver.endpoint) as client:
        yield client


def local_dir(driver: Driver, volume: csi_pb2.Volume) -> Path:
    return driver.state_dir / "local" / "exports" / "127.0.0.1" / volume.volume_context["fsid"]


async def test_a_local_clone_is_a_copy_that_follows_no_link(local: CsiClient, driver: Driver, tmp_path: Path) -> None:
    source = await local.create_volume("pvc-local-src", {}, 10 * GIB)
    secret = tmp_path / "outside"
    secret.write_text("not the volume's")
    (local_dir(driver, source) / "file").write_text("before")
    os.symlink(secret, local_dir(driver, source) / "link")  # planted by a pod: copied as a link, never followed
    clone = await create(local, clone_request("pvc-local-clone", source.volume_id, params={}))
    assert clone.content_source.volume.volume_id == source.volume_id
    copied = local_dir(driver, clone)
    assert (copied / "file").read_text() == "before"
    assert os.readlink(copied / "link") == str(secret) and (copied / "link").is_symlink()
    (local_dir(driver, source) / "file").write_text("after")
    assert (copied / "file").read_text() == "before"
    small = clone_request("pvc-local-small", source.volume_id, 5 * GIB, params={})
    assert await code_of(local.controller.CreateVolume(small)) == grpc.StatusCode.OUT_OF_RANGE
    missing = clone_request("pvc-local-none", "cfs-nothere1", params={})
    assert await code_of(local.controller.CreateVolume(missing)) == grpc.StatusCode.NOT_FOUND
    await local.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=source.volume_id))
    # Its source gone, the clone keeps its data.
    assert (copied / "file").read_text() == "before"
