"""Expansion, snapshots and restores through the controller over gRPC, against the CFS emulator (issue 16)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from cfs_csi.client import CsiClient, mount_capability
from cfs_csi.csi import csi_pb2
from cfs_csi.volume.capacity import GIB
from cfs_csi.volume.exports import ExportRoot
from tests.conftest import SECRET_ID, SECRET_KEY, Driver, Emulator, cloud_create

PARAMS = {"vpcid": "vpc-oilua6pt", "subnetid": "subnet-rtwb42lu", "zone": "ap-guangzhou-3"}


@pytest.fixture
async def csi(tencent_driver: Driver) -> AsyncIterator[CsiClient]:
    async with CsiClient(tencent_driver.endpoint) as client:
        yield client


def sdk_call(emulator: Emulator, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """One CFS action through the official SDK, as a user in the console would."""
    from tencentcloud.common.common_client import CommonClient
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    profile = ClientProfile(httpProfile=HttpProfile(endpoint=emulator.url.removeprefix("http://"), protocol="http"))
    client = CommonClient("cfs", "2019-07-19", Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)
    answer: dict[str, Any] = client.call_json(action, params)["Response"]
    return answer


def data_dir(emulator: Emulator, volume: csi_pb2.Volume) -> Any:
    return ExportRoot(emulator.export_root).file_system_dir(
        volume.volume_context["host"], volume.volume_context["fsid"]
    )


def snapshot_identities(emulator: Emulator) -> str:
    """What a deletion or a retagging would change (not progress or status, which move on their own)."""
    keys = ("SnapshotId", "FileSystemId", "SnapshotName", "Tags")
    snapshots = sdk_call(emulator, "DescribeCfsSnapshots", {})["Snapshots"]
    return json.dumps(sorted(({k: s.get(k) for k in keys} for s in snapshots), key=str), sort_keys=True)


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    code: grpc.StatusCode = error.value.code()
    return code


def expand(volume_id: str, size: int) -> csi_pb2.ControllerExpandVolumeRequest:
    return csi_pb2.ControllerExpandVolumeRequest(
        volume_id=volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=size)
    )


async def test_grow_a_standard_volume_raises_its_size_limit(csi: CsiClient, emulator: Emulator) -> None:
    volume = await csi.create_volume("pvc-grow", PARAMS, 10 * GIB)
    answer = await csi.controller.ControllerExpandVolume(expand(volume.volume_id, 25 * GIB))
    assert (answer.capacity_bytes, answer.node_expansion_required) == (25 * GIB, False)
    [fs] = sdk_call(emulator, "DescribeCfsFileSystems", {"FileSystemId": volume.volume_id})["FileSystems"]
    assert fs["SizeLimit"] == 25
    got = await csi.controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id))
    assert got.volume.capacity_bytes == 25 * GIB
    # Smaller than now: nothing shrinks.
    answer = await csi.controller.ControllerExpandVolume(expand(volume.volume_id, 12 * GIB))
    assert answer.capacity_bytes == 25 * GIB
    assert await code_of(csi.controller.ControllerExpandVolume(expand("cfs-nothere", 20 * GIB))) == (
        grpc.StatusCode.NOT_FOUND
    )


async def test_grow_a_shared_volume_sets_its_directory_quota(csi: CsiClient, emulator: Emulator) -> None:
    fs_id = cloud_create(emulator, "cls-test_sharedCFS-gold")  # the vendor operator's share: ours by its name
    [target] = sdk_call(emulator, "DescribeMountTargets", {"FileSystemId": fs_id})["MountTargets"]
    directory = "default-data-pvc-1"
    (ExportRoot(emulator.export_root).file_system_dir(target["IpAddress"], target["FSID"]) / directory).mkdir()
    (
        ExportRoot(emulator.export_root).file_system_dir(target["IpAddress"], target["FSID"]) / directory / "f"
    ).write_bytes(b"x" * 4096)
    answer = await csi.controller.ControllerExpandVolume(expand(f"{target['FSID']}:{directory}", 3 * GIB))
    # The 10 GiB minimum; the node records the new quota (NodeExpandVolume) for its stats.
    assert (answer.capacity_bytes, answer.node_expansion_required) == (10 * GIB, True)
    answer = await csi.controller.ControllerExpandVolume(expand(f"{target['FSID']}:{directory}", 20 * GIB + 1))
    assert answer.capacity_bytes == 21 * GIB
    quotas = sdk_call(emulator, "DescribeUserQuota", {"FileSystemId": fs_id})["UserQuotaInfo"]
    assert [(q["DirectoryPath"], q["CapacityHardLimit"]) for q in quotas] == [(f"/cfs/{directory}", 21)]
    # A snapshot of a directory of the share is not a CFS feature: refused before any cloud call.
    request = csi_pb2.CreateSnapshotRequest(name="snap-shared", source_volume_id=f"{target['FSID']}:{directory}")
    assert await code_of(csi.controller.CreateSnapshot(request)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_grow_a_bound_shared_volume_and_see_it_in_the_quota_and_the_node_stats(
    csi: CsiClient, emulator: Emulator, tencent_driver: Driver
) -> None:
    """Issue 16: a bound shared volume grows through the controller; the quota and NodeGetVolumeStats show it."""
    fs_id = cloud_create(emulator, "cls-test_sharedCFS-silver")
    [mount_target] = sdk_call(emulator, "DescribeMountTargets", {"FileSystemId": fs_id})["MountTargets"]
    host, fsid, directory = mount_target["IpAddress"], mount_target["FSID"], "default-data-pvc-9"
    (ExportRoot(emulator.export_root).file_system_dir(host, fsid) / directory).mkdir()
    # What the sub-directory provisioner did when the claim was bound: a 10 GiB quota, recorded in the PV.
    sdk_call(emulator, "SetUserQuota", {"FileSystemId": fs_id, "UserType": "Dir",
                                        "DirectoryPath": f"/cfs/{directory}", "CapacityHardLimit": 10})  # fmt: skip
    volume = csi_pb2.Volume(
        volume_id=f"{fsid}:{directory}",
        volume_context={"host": host, "fsid": fsid, "path": directory, "vers": "3", "quotaBytes": str(10 * GIB)},
    )
    pod_target = tencent_driver.pods / "uid-grow" / "volumes" / "kubernetes.io~csi" / "pv-grow" / "mount"
    await csi.publish(volume, str(pod_target))
    (pod_target / "data").write_bytes(b"d" * 5 * 1024**2)
    stats = await csi.stats(volume.volume_id, str(pod_target))
    got = {u.unit: u for u in stats.usage}[csi_pb2.VolumeUsage.BYTES]
    assert (got.total, got.used >= 5 * 1024**2) == (10 * GIB, True), stats

    answer = await csi.controller.ControllerExpandVolume(expand(volume.volume_id, 25 * GIB))
    assert (answer.capacity_bytes, answer.node_expansion_required) == (25 * GIB, True)
    quotas = sdk_call(emulator, "DescribeUserQuota", {"FileSystemId": fs_id})["UserQuotaInfo"]
    assert [(q["DirectoryPath"], q["CapacityHardLimit"]) for q in quotas] == [(f"/cfs/{directory}", 25)]
    # The kubelet then calls NodeExpandVolume with the PV's new capacity (the controller's answer).
    grown = await csi.node.NodeExpandVolume(
        csi_pb2.NodeExpandVolumeRequest(
            volume_id=volume.volume_id, volume_path=str(pod_target),
            capacity_range=csi_pb2.CapacityRange(required_bytes=answer.capacity_bytes),
        )
    )  # fmt: skip
    assert grown.capacity_bytes == 25 * GIB
    stats = await csi.stats(volume.volume_id, str(pod_target))
    got = {u.unit: u for u in stats.usage}[csi_pb2.VolumeUsage.BYTES]
    assert (got.total, got.used >= 5 * 1024**2) == (25 * GIB, True), stats
    await csi.unpublish(volume.volume_id, str(pod_target))


async def test_snapshot_change_restore_gives_the_old_content(csi: CsiClient, emulator: Emulator) -> None:
    volume = await csi.create_volume("pvc-source", PARAMS, 10 * GIB)
    (data_dir(emulator, volume) / "file").write_text("before")
    taken = await csi.controller.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(name="snapshot-1", source_volume_id=volume.volume_id)
    )
    snapshot = taken.snapshot
    assert snapshot.ready_to_use and snapshot.source_volume_id == volume.volume_id
    assert snapshot.size_bytes == 10 * GIB
    again = await csi.controller.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(name="snapshot-1", source_volume_id=volume.volume_id)
    )
    assert again.snapshot.snapshot_id == snapshot.snapshot_id  # found again by name
    (data_dir(emulator, volume) / "file").write_text("after")

    source = csi_pb2.VolumeContentSource(
        snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id)
    )
    request = csi_pb2.CreateVolumeRequest(
        name="pvc-restored", volume_capabilities=[mount_capability()], parameters=PARAMS,
        capacity_range=csi_pb2.CapacityRange(required_bytes=10 * GIB), volume_content_source=source,
    )  # fmt: skip
    restored = None
    for _ in range(100):  # ABORTED while the restored file system is being created: retried, as the CO does
        try:
            restored = (await csi.controller.CreateVolume(request)).volume
            break
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.ABORTED, exc.details()
    assert restored is not None
    assert restored.content_source.snapshot.snapshot_id == snapshot.snapshot_id
    assert (data_dir(emulator, restored) / "file").read_text() == "before"
    assert (data_dir(emulator, volume) / "file").read_text() == "after"

    listed = await csi.controller.ListSnapshots(csi_pb2.ListSnapshotsRequest(source_volume_id=volume.volume_id))
    assert [e.snapshot.snapshot_id for e in listed.entries] == [snapshot.snapshot_id]
    await csi.controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id))
    listed = await csi.controller.ListSnapshots(csi_pb2.ListSnapshotsRequest())
    assert list(listed.entries) == []
    missing = csi_pb2.CreateVolumeRequest(
        name="pvc-from-nothing", volume_capabilities=[mount_capability()], parameters=PARAMS,
        volume_content_source=source,
    )  # fmt: skip
    assert await code_of(csi.controller.CreateVolume(missing)) == grpc.StatusCode.NOT_FOUND


async def test_foreign_snapshots_are_neither_deleted_nor_restored(csi: CsiClient, emulator: Emulator) -> None:
    volume = await csi.create_volume("pvc-mine", PARAMS, 10 * GIB)
    foreign_fs = cloud_create(emulator, "someone-elses")
    # A snapshot taken in the console of our own volume, and one of someone else's file system: neither ours.
    of_ours = sdk_call(emulator, "CreateCfsSnapshot", {"FileSystemId": volume.volume_id, "SnapshotName": "manual"})
    of_theirs = sdk_call(emulator, "CreateCfsSnapshot", {"FileSystemId": foreign_fs, "SnapshotName": "theirs"})
    before = snapshot_identities(emulator)
    file_systems = sorted(str(fs["FileSystemId"]) for fs in emulator.file_systems())
    for snapshot_id in (of_ours["SnapshotId"], of_theirs["SnapshotId"]):
        delete = csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot_id)
        assert await code_of(csi.controller.DeleteSnapshot(delete)) == grpc.StatusCode.FAILED_PRECONDITION
        source = csi_pb2.VolumeContentSource(
            snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snapshot_id)
        )
        restore = csi_pb2.CreateVolumeRequest(
            name=f"pvc-steal-{snapshot_id}", volume_capabilities=[mount_capability()], parameters=PARAMS,
            volume_content_source=source,
        )  # fmt: skip
        # Refused whatever its state: ownership is judged before readiness.
        assert await code_of(csi.controller.CreateVolume(restore)) == grpc.StatusCode.FAILED_PRECONDITION
    # Nothing changed: the snapshots are as they were, no file system was created.
    assert snapshot_identities(emulator) == before
    assert sorted(str(fs["FileSystemId"]) for fs in emulator.file_systems()) == file_systems
    # Snapshotting someone else's file system is refused too (a restore would hand over its data).
    request = csi_pb2.CreateSnapshotRequest(name="snap-theirs", source_volume_id=foreign_fs)
    assert await code_of(csi.controller.CreateSnapshot(request)) == grpc.StatusCode.FAILED_PRECONDITION
    listed = await csi.controller.ListSnapshots(csi_pb2.ListSnapshotsRequest())
    assert list(listed.entries) == []  # foreign snapshots are not listed as ours


async def test_a_restore_failing_half_way_leaks_nothing(csi: CsiClient, emulator: Emulator) -> None:
    volume = await csi.create_volume("pvc-src", PARAMS, 10 * GIB)
    snapshot = (
        await csi.controller.CreateSnapshot(
            csi_pb2.CreateSnapshotRequest(name="snap-src", source_volume_id=volume.volume_id)
        )
    ).snapshot
    file_systems = sorted(str(fs["FileSystemId"]) for fs in emulator.file_systems())
    # The restored file system is created, then the first look at its mount target fails for good.
    emulator.admin(
        "PUT",
        "faults",
        {"create_delay": 0.1, "fail_action": "DescribeMountTargets", "fail_code": "UnauthorizedOperation"},
    )
    source = csi_pb2.VolumeContentSource(
        snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id)
    )
    request = csi_pb2.CreateVolumeRequest(
        name="pvc-restore-fails", volume_capabilities=[mount_capability()], parameters=PARAMS,
        volume_content_source=source,
    )  # fmt: skip
    code = grpc.StatusCode.ABORTED
    for _ in range(100):
        code = await code_of(csi.controller.CreateVolume(request))
        if code != grpc.StatusCode.ABORTED:
            break
    assert code == grpc.StatusCode.PERMISSION_DENIED
    emulator.admin("PUT", "faults", {"fail_action": "", "fail_code": ""})
    for _ in range(100):  # the discarded file system may still be deleting
        if sorted(str(fs["FileSystemId"]) for fs in emulator.file_systems()) == file_systems:
            break
        await asyncio.sleep(0.1)
    assert sorted(str(fs["FileSystemId"]) for fs in emulator.file_systems()) == file_systems
    # And a snapshot whose first description fails for good is not left behind either.
    emulator.admin(
        "PUT", "faults", {"fail_action": "DescribeCfsSnapshots", "fail_code": "UnauthorizedOperation", "fail_after": 1}
    )
    request2 = csi_pb2.CreateSnapshotRequest(name="snap-fails", source_volume_id=volume.volume_id)
    assert await code_of(csi.controller.CreateSnapshot(request2)) == grpc.StatusCode.PERMISSION_DENIED
    emulator.admin("PUT", "faults", {"fail_action": "", "fail_code": "", "fail_after": 0})
    ids = sorted(s["SnapshotId"] for s in sdk_call(emulator, "DescribeCfsSnapshots", {})["Snapshots"])
    assert ids == [snapshot.snapshot_id]
