"""Hostile requests to the controller, against the real driver process (issue 11, findings 7-11).

Each case goes over real gRPC to ``cfs-csi serve``: the tencent backend talks to the CFS emulator over real
HTTP, the local backend keeps its files under the test's tmpfs. Each case asserts the exact gRPC code AND what
the cloud holds before and after (the emulator's file-system list and its request count, or the local
backend's files): a refused request must not have touched the cloud at all, a refused deletion must leave the
file system, and a failure after a creation must leave exactly one file system per name after the retries.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cfs_csi.client import CsiClient, mount_capability
from cfs_csi.cloud.base import FileSystemSpec
from cfs_csi.cloud.local import LocalFileStorage
from cfs_csi.cloud.tencent.backend import TencentConfig, TencentFileStorage
from cfs_csi.csi import csi_pb2
from cfs_csi.volume.capacity import GIB, INT64_MAX, TIB
from cfs_csi.volume.params import parse_parameters
from tests.conftest import (
    CLOUD_ENV,
    SECRET_ID,
    SECRET_KEY,
    Driver,
    Emulator,
    start_driver,
    start_emulator,
    stop_gracefully,
    tencent_driver_flags,
)
from tests.seed import SEED_PARAMS as SEED

CLUSTER = "cls-test"  # tencent_driver_flags' --cluster-id
PV = f"pvc-{uuid.UUID(int=0x0123456789ABCDEF0123456789ABCDEF)}"
HUGE_NAME = "n" * 1_000_000


def request(name: str, params: dict[str, str] = SEED, size: int = 10 * GIB) -> csi_pb2.CreateVolumeRequest:
    return csi_pb2.CreateVolumeRequest(
        name=name, parameters=params, volume_capabilities=[mount_capability()],
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
    )  # fmt: skip


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    return error.value


def cloud_state(emulator: Emulator) -> list[tuple[str, str, str]]:
    return sorted((str(fs["FileSystemId"]), str(fs["FsName"]), str(fs["LifeCycleState"]))
                  for fs in emulator.file_systems())  # fmt: skip


def requests_served(emulator: Emulator) -> int:
    stats = emulator.admin("GET", "requests")
    assert isinstance(stats, dict)
    return int(stats["total"])


def local_state(driver: Driver) -> dict[str, str]:
    """Every path under the local backend's directory, with a hash of each file's content."""
    root = driver.state_dir / "local"
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(root.rglob("*"))
    }


def sdk_create(emulator: Emulator, fs_name: str, tags: dict[str, str]) -> str:
    """A file system made outside this driver (the console, the vendor's driver), with the given tags."""
    from tencentcloud.cfs.v20190719 import cfs_client, models
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    profile = ClientProfile(httpProfile=HttpProfile(endpoint=emulator.url.removeprefix("http://"), protocol="http"))
    client = cfs_client.CfsClient(Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)
    create = models.CreateCfsFileSystemRequest()
    create.from_json_string(json.dumps({
        "Zone": "ap-guangzhou-3", "NetInterface": "VPC", "PGroupId": "pgroupbasic", "Protocol": "NFS",
        "StorageType": "SD", "VpcId": SEED["vpcid"], "SubnetId": SEED["subnetid"], "FsName": fs_name,
        "ResourceTags": [{"TagKey": k, "TagValue": v} for k, v in tags.items()],
    }))  # fmt: skip
    return str(client.CreateCfsFileSystem(create).FileSystemId)


async def operator_share(emulator: Emulator, storage_class: str) -> str:
    """The shared file system exactly as the operator makes it: ``ensure_file_system`` of ``sharedCFS-<class>``."""
    from tencentcloud.common.credential import Credential

    config = TencentConfig(region="ap-guangzhou", default_zone="ap-guangzhou-3", cluster_id=CLUSTER,
                           endpoint=emulator.url.removeprefix("http://"), scheme="http", poll_interval=0.1)  # fmt: skip
    storage = TencentFileStorage(config, Credential(SECRET_ID, SECRET_KEY))
    params = storage.with_defaults(parse_parameters({k: v for k, v in SEED.items() if k != "pgroupid"}))
    fs = await storage.ensure_file_system(FileSystemSpec(name=f"sharedCFS-{storage_class}", capacity_bytes=0,
                                                         params=params))  # fmt: skip
    return fs.id


@pytest.fixture
def cloud(mount_root: Path) -> Iterator[Emulator]:
    running = start_emulator(mount_root, "--create-delay", "0", name="hostile-emulator")
    try:
        yield running
    finally:
        running.stop()


async def tencent(mount_root: Path, emulator: Emulator, *flags: str, name: str = "hostile") -> Driver:
    return start_driver(mount_root, *tencent_driver_flags(emulator), "--cloud-timeout", "1",
                        "--cloud-poll-interval", "0.1", *flags, env=CLOUD_ENV, name=name)  # fmt: skip


# -- CreateVolume: refused before any cloud call, on both backends ------------------------------------------

REFUSED_CREATES = [
    ("capacity int64 max", request("pvc-big", size=INT64_MAX), grpc.StatusCode.OUT_OF_RANGE, "160 TiB"),
    ("capacity 7Ei", request("pvc-big", size=7 * 1024**6), grpc.StatusCode.OUT_OF_RANGE, "160 TiB"),
    ("capacity past Standard's 160 TiB", request("pvc-big", size=160 * TIB + GIB), grpc.StatusCode.OUT_OF_RANGE,
     "160 TiB"),
    ("capacity past High-Performance's 32 TiB", request("pvc-big", {**SEED, "storagetype": "HP"}, 33 * TIB),
     grpc.StatusCode.OUT_OF_RANGE, "32 TiB"),
    ("reserved tag cfs-csi/cluster", request("pvc-tag", {**SEED, "resourcetags": "cfs-csi/cluster:other"}),
     grpc.StatusCode.INVALID_ARGUMENT, "reserves"),
    ("reserved tag cfs-csi/volume", request("pvc-tag", {**SEED, "resourcetags": "team:a,cfs-csi/volume:x"}),
     grpc.StatusCode.INVALID_ARGUMENT, "reserves"),
    ("reserved tag in upper case", request("pvc-tag", {**SEED, "resourcetags": "CFS-CSI/capacity-bytes:1"}),
     grpc.StatusCode.INVALID_ARGUMENT, "reserves"),
    ("control character in a tag", request("pvc-tag", {**SEED, "resourcetags": "team:a\x07"}),
     grpc.StatusCode.INVALID_ARGUMENT, "malformed tag"),
    ("300-character name", request("pvc-" + "x" * 296), grpc.StatusCode.INVALID_ARGUMENT, "300 characters"),
    ("1 MB name", request(HUGE_NAME), grpc.StatusCode.INVALID_ARGUMENT, "1000000 characters"),
    ("NUL in the name", request("pvc-a\x00b"), grpc.StatusCode.INVALID_ARGUMENT, "'\\x00' at position 5"),
    ("newline in the name", request("pvc-a\nb"), grpc.StatusCode.INVALID_ARGUMENT, "'\\n' at position 5"),
    ("slash in the name", request("pvc/../x"), grpc.StatusCode.INVALID_ARGUMENT, "'/' at position 3"),
    ("1 MB parameter value", request("pvc-p", {**SEED, "zone": "z" * 1_000_000}), grpc.StatusCode.INVALID_ARGUMENT,
     "'zone'"),
    ("1 MB parameter key", request("pvc-p", {**SEED, "k" * 1_000_000: "v"}), grpc.StatusCode.INVALID_ARGUMENT,
     "unknown StorageClass parameter"),
    ("the shared naming", request("sharedCFS-gold"), grpc.StatusCode.INVALID_ARGUMENT, "reserved"),
    ("the shared naming in another case", request("SHAREDcfs-gold"), grpc.StatusCode.INVALID_ARGUMENT, "reserved"),
]  # fmt: skip


async def test_refused_creates_never_reach_the_cloud(mount_root: Path, cloud: Emulator) -> None:
    """One driver per backend serves the whole table (processes are slow to start; the cases are independent)."""
    local = start_driver(mount_root, name="hostile-local")
    remote = await tencent(mount_root, cloud)
    try:
        for case, create, code, needle in REFUSED_CREATES:
            cloud_before, served_before, local_before = cloud_state(cloud), requests_served(cloud), local_state(local)
            for driver in (local, remote):
                async with CsiClient(driver.endpoint) as csi:
                    error = await rpc_error(csi.controller.CreateVolume(create, timeout=10))
                details = error.details() or ""
                assert (error.code(), needle in details) == (code, True), (case, driver.endpoint, details[:300])
                assert len(details) < 2100, case
                if "name" in case:
                    assert details.startswith("volume name") and "parameter" not in details, case
            assert cloud_state(cloud) == cloud_before == [], case
            assert requests_served(cloud) == served_before, case  # not one API call
            assert local_state(local) == local_before, case
    finally:
        stop_gracefully(local)
        stop_gracefully(remote)
    for driver in (local, remote):
        log = driver.log_text()
        assert not re.search(r"(.)\1{299}", log)  # long values are cut in every log line
        assert len(log) < 200_000


# -- DeleteVolume: only a proven dedicated volume of this cluster is deleted -------------------------------

FOREIGN = [
    ("untagged, made in the console", "my-data", {"team": "storage"}, "no cfs-csi/ tags"),
    ("vendor driver's volume (named after the PV)", f"{CLUSTER}_{PV}", {}, "--delete-vendor-volumes"),
    ("vendor driver's share", f"{CLUSTER}_sharedCFS-old", {}, "shared StorageClass"),
    ("another cluster's volume", f"cls-other_{PV}",
     {"cfs-csi/volume": PV, "cfs-csi/cluster": "cls-other"}, "cluster 'cls-other'"),
    ("our tags, but they name another volume", f"{CLUSTER}_pvc-victim",
     {"cfs-csi/volume": "pvc-other", "cfs-csi/cluster": CLUSTER}, "would be named"),
]  # fmt: skip


async def test_delete_refuses_what_is_not_a_dedicated_volume_of_ours(mount_root: Path, cloud: Emulator) -> None:
    victims = [(sdk_create(cloud, fs_name, tags), case, needle) for case, fs_name, tags, needle in FOREIGN]
    victims.append((await operator_share(cloud, "gold"), "shared class, made as the operator does", "shared"))
    driver = await tencent(mount_root, cloud)
    try:
        async with CsiClient(driver.endpoint) as csi:
            ours = (await csi.create_volume("pvc-ours", SEED)).volume_id
            before = cloud_state(cloud)
            for victim, case, needle in victims:
                error = await rpc_error(csi.delete_volume(victim))
                details = error.details() or ""
                assert (error.code(), needle in details, victim in details) == (
                    grpc.StatusCode.FAILED_PRECONDITION, True, True
                ), (case, details)  # fmt: skip
                assert cloud_state(cloud) == before, case  # it stays, untouched
            listed = await csi.controller.ListVolumes(csi_pb2.ListVolumesRequest())
            assert [entry.volume.volume_id for entry in listed.entries] == [ours]  # only dedicated volumes
            await csi.delete_volume(ours)
            assert cloud_state(cloud) == [fs for fs in before if fs[0] != ours]
    finally:
        stop_gracefully(driver)


async def test_create_never_adopts_a_file_system_it_cannot_prove_ours(mount_root: Path, cloud: Emulator) -> None:
    untagged = sdk_create(cloud, f"{CLUSTER}_pvc-taken", {})
    other = sdk_create(cloud, f"{CLUSTER}_pvc-tagged", {"cfs-csi/volume": "pvc-tagged", "cfs-csi/cluster": "cls-x"})
    vendor_share = sdk_create(cloud, f"{CLUSTER}_sharedCFS-old", {})
    driver = await tencent(mount_root, cloud)
    try:
        before = cloud_state(cloud)
        async with CsiClient(driver.endpoint) as csi:
            for name, victim in (("pvc-taken", untagged), ("pvc-tagged", other)):
                error = await rpc_error(csi.create_volume(name, SEED))
                assert error.code() == grpc.StatusCode.ALREADY_EXISTS and victim in (error.details() or "")
        assert cloud_state(cloud) == before  # nothing adopted, nothing created
        assert await operator_share(cloud, "old") == vendor_share  # the operator still adopts the vendor's share
        assert cloud_state(cloud) == before
    finally:
        stop_gracefully(driver)


async def test_vendor_volumes_are_deleted_only_when_the_admin_says_so(mount_root: Path, cloud: Emulator) -> None:
    vendor = sdk_create(cloud, f"{CLUSTER}_{PV}", {})
    console = sdk_create(cloud, "pvc-made-by-hand", {})
    driver = await tencent(mount_root, cloud, "--delete-vendor-volumes", name="vendor")
    try:
        async with CsiClient(driver.endpoint) as csi:
            error = await rpc_error(csi.delete_volume(console))  # untagged, not the vendor's naming
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            await csi.delete_volume(vendor)
        assert [fs[0] for fs in cloud_state(cloud)] == [console]
    finally:
        stop_gracefully(driver)


async def test_malformed_volume_ids_are_answered_without_the_cloud(mount_root: Path, cloud: Emulator) -> None:
    driver = await tencent(mount_root, cloud)
    try:
        async with CsiClient(driver.endpoint) as csi:
            served = requests_served(cloud)
            for volume_id in ("../cfs-abc", "cfs-ABC", "cfs-a b", "x" * 1_000_000):
                await csi.delete_volume(volume_id)  # no such file system: already gone
                error = await rpc_error(csi.controller.ControllerGetVolume(
                    csi_pb2.ControllerGetVolumeRequest(volume_id=volume_id)
                ))  # fmt: skip
                assert error.code() == grpc.StatusCode.NOT_FOUND and len(error.details() or "") < 200
            assert requests_served(cloud) == served
    finally:
        stop_gracefully(driver)
    assert "x" * 300 not in driver.log_text()


async def test_local_backend_refuses_to_delete_a_shared_class_file_system(mount_root: Path) -> None:
    state = mount_root / "local-shared-state"
    share = await LocalFileStorage(state / "local").ensure_file_system(  # as the operator does on this backend
        FileSystemSpec(name="sharedCFS-gold", capacity_bytes=0, params=parse_parameters({}))
    )
    driver = start_driver(mount_root, "--state-dir", str(state), name="local-shared")
    try:
        before = local_state(driver)
        async with CsiClient(driver.endpoint) as csi:
            error = await rpc_error(csi.delete_volume(share.id))
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "shared" in (error.details() or "")
            listed = await csi.controller.ListVolumes(csi_pb2.ListVolumesRequest())
            assert list(listed.entries) == []
        assert local_state(driver) == before
    finally:
        stop_gracefully(driver)


# -- Nothing stored can break a read ----------------------------------------------------------------------


async def test_a_bad_capacity_tag_does_not_break_list_volumes(mount_root: Path, cloud: Emulator) -> None:
    for name, capacity in (("pvc-huge", "99999999999999999999"), ("pvc-super", "\u00b3")):
        tags = {"cfs-csi/volume": name, "cfs-csi/cluster": CLUSTER, "cfs-csi/capacity-bytes": capacity}
        sdk_create(cloud, f"{CLUSTER}_{name}", tags)
    driver = await tencent(mount_root, cloud)
    try:
        async with CsiClient(driver.endpoint) as csi:
            listed = await csi.controller.ListVolumes(csi_pb2.ListVolumesRequest())
            assert sorted(entry.volume.capacity_bytes for entry in listed.entries) == [0, 0]  # 0: unknown
            for entry in listed.entries:
                got = await csi.controller.ControllerGetVolume(
                    csi_pb2.ControllerGetVolumeRequest(volume_id=entry.volume.volume_id)
                )
                assert got.volume.capacity_bytes == 0
    finally:
        stop_gracefully(driver)


async def test_bad_local_records_do_not_break_list_volumes(mount_root: Path) -> None:
    state = mount_root / "local-bad-state"
    records = state / "local" / "filesystems"
    good = await LocalFileStorage(state / "local").ensure_file_system(
        FileSystemSpec(name="pvc-good", capacity_bytes=GIB, params=parse_parameters({}))
    )
    template = json.loads((records / f"{good.id}.json").read_text())
    (records / "cfs-huge.json").write_text(json.dumps({**template, "id": "cfs-huge", "name": "pvc-huge",
                                                        "capacity_bytes": 2**64}))  # fmt: skip
    (records / "cfs-broken.json").write_text("{not json")
    driver = start_driver(mount_root, "--state-dir", str(state), name="local-bad")
    try:
        async with CsiClient(driver.endpoint) as csi:
            listed = await csi.controller.ListVolumes(csi_pb2.ListVolumesRequest())
        assert {(e.volume.volume_id, e.volume.capacity_bytes) for e in listed.entries} == {
            ("cfs-huge", 0), (good.id, GIB)
        }  # fmt: skip
        assert len(listed.entries) == 2
    finally:
        stop_gracefully(driver)
    assert "cfs-broken.json" in driver.log_text()


# -- Nothing created leaks, whatever fails after the creation (finding 11) ---------------------------------

#: (the step after CreateCfsFileSystem, how many of its requests pass first). DescribeCfsFileSystems is also
#: the lookup by name before the creation, so its first request passes.
STEPS = [("DescribeCfsFileSystems", 1), ("DescribeMountTargets", 0)]
#: Errors after which no retry may come (the file system must be deleted in the call), then ones the
#: provisioner retries (it must stay, and the retry must find it).
FINAL = [("UnauthorizedOperation", grpc.StatusCode.PERMISSION_DENIED),
         ("InvalidParameterValue", grpc.StatusCode.INVALID_ARGUMENT)]  # fmt: skip
RETRIED = [("InternalError", grpc.StatusCode.UNAVAILABLE), ("RequestLimitExceeded", grpc.StatusCode.UNAVAILABLE)]


@pytest.mark.parametrize(("step", "passing"), STEPS, ids=[s[0] for s in STEPS])
async def test_a_failure_after_the_creation_never_leaks_a_file_system(
    mount_root: Path, cloud: Emulator, step: str, passing: int
) -> None:
    driver = await tencent(mount_root, cloud)
    names = ["pvc-lost"]
    try:
        async with CsiClient(driver.endpoint) as csi:
            # The creation itself acts but its answer is lost, every time until the deadline.
            cloud.admin("PUT", "faults", {"timeout_rate": 1.0, "timeout_delay": 2, "actions": ["CreateCfsFileSystem"]})
            error = await rpc_error(csi.controller.CreateVolume(request("pvc-lost"), timeout=4))
            assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED), error.details()
            assert [fs[1] for fs in cloud_state(cloud)] == [f"{CLUSTER}_pvc-lost"]  # kept for the retry
            for index, (code, expected) in enumerate(FINAL):
                name = f"pvc-final-{index}"
                cloud.admin("PUT", "faults", {"fail_action": step, "fail_code": code, "fail_after": passing})
                error = await rpc_error(csi.controller.CreateVolume(request(name), timeout=5))
                assert error.code() == expected, error.details()
                assert [fs[1] for fs in cloud_state(cloud)] == [f"{CLUSTER}_pvc-lost"]  # deleted: no retry may come
                names.append(name)
            for index, (code, expected) in enumerate(RETRIED):
                name = f"pvc-retried-{index}"
                cloud.admin("PUT", "faults", {"fail_action": step, "fail_code": code, "fail_after": passing})
                error = await rpc_error(csi.controller.CreateVolume(request(name), timeout=4))
                assert error.code() == expected, error.details()
                assert [fs[1] for fs in cloud_state(cloud)].count(f"{CLUSTER}_{name}") == 1  # kept for the retry
                names.append(name)
            cloud.admin("PUT", "faults", {})
            volumes = {name: await csi.create_volume(name, SEED, 10 * GIB) for name in names}  # the retries
            held = cloud_state(cloud)
            assert sorted(fs[1] for fs in held) == sorted(f"{CLUSTER}_{name}" for name in names)  # one per name
            assert sorted(fs[0] for fs in held) == sorted(v.volume_id for v in volumes.values())
            for volume in volumes.values():
                await csi.delete_volume(volume.volume_id)
        assert cloud_state(cloud) == []
    finally:
        stop_gracefully(driver)


async def test_local_backend_removes_a_half_created_file_system(mount_root: Path) -> None:
    driver = start_driver(mount_root, name="local-leak")
    blocker = driver.state_dir / "local" / "exports" / "127.0.0.1"
    try:
        async with CsiClient(driver.endpoint) as csi:
            blocker.parent.mkdir(parents=True, exist_ok=True)
            blocker.write_text("not a directory")  # the data directory cannot be made after the record
            # The socket accepts before the backend is built (node start-up, 430c1d0): one answered call first.
            await csi.controller.ListVolumes(csi_pb2.ListVolumesRequest())
            before = local_state(driver)
            error = await rpc_error(csi.create_volume("pvc-half", SEED))
            assert error.code() == grpc.StatusCode.INTERNAL
            assert local_state(driver) == before  # no record, no directory left
            blocker.unlink()
            volume = await csi.create_volume("pvc-half", SEED)
            assert len(list((driver.state_dir / "local" / "filesystems").glob("*.json"))) == 1
            await csi.delete_volume(volume.volume_id)
            assert list((driver.state_dir / "local" / "filesystems").iterdir()) == []
    finally:
        stop_gracefully(driver)
