"""The whole driver with ``--backend tencent`` against the CFS emulator, over real HTTP and real mounts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cfs_csi.client import CsiClient, mount_capability
from cfs_csi.csi import csi_pb2
from cfs_csi.volume.capacity import GIB
from tests.conftest import CLOUD_ENV, Driver, Emulator, pods_dir, start_driver, tencent_driver_flags
from tests.seed import SEED_PARAMS as SEED
from tests.seed import SEED_VOLUME_NAME as NAME


@pytest.fixture
async def client(tencent_driver: Driver) -> AsyncIterator[CsiClient]:
    async with CsiClient(tencent_driver.endpoint) as csi:
        yield csi


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    return error.value


def create_request(name: str, params: dict[str, str], size: int = 10 * GIB) -> csi_pb2.CreateVolumeRequest:
    return csi_pb2.CreateVolumeRequest(
        name=name, parameters=params, volume_capabilities=[mount_capability()],
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
    )  # fmt: skip


async def test_full_lifecycle_through_the_cloud_api(client: CsiClient, emulator: Emulator, mount_root: Path) -> None:
    volume = await client.create_volume(NAME, SEED, 10 * GIB)
    [fs] = emulator.file_systems()
    assert volume.volume_id == fs["FileSystemId"]
    assert fs["FsName"] == f"cls-test_{NAME}"
    context = dict(volume.volume_context)
    host, fsid = context.pop("host"), context.pop("fsid")
    assert context == SEED and host.startswith("127.") and fsid
    assert volume.capacity_bytes == 10 * GIB

    target = pods_dir(mount_root) / "p1" / "mount"
    await client.publish(volume, str(target))
    (target / "data.txt").write_text("stored in CFS")
    assert (emulator.export_root / host / fsid / "data.txt").read_text() == "stored in CFS"
    stats = await client.stats(volume.volume_id, str(target))
    assert stats.usage[0].total > 0 and not stats.volume_condition.abnormal
    await client.unpublish(volume.volume_id, str(target))
    assert not target.exists()

    assert await client.create_volume(NAME, SEED, 10 * GIB) == volume  # idempotent, still one file system
    assert len(emulator.file_systems()) == 1
    await client.delete_volume(volume.volume_id)
    assert emulator.file_systems() == []
    await client.delete_volume(volume.volume_id)  # already gone: OK


async def test_conflicts_and_lookups(client: CsiClient, emulator: Emulator) -> None:
    volume = await client.create_volume(NAME, SEED, 10 * GIB)
    error = await rpc_error(client.create_volume(NAME, SEED, 20 * GIB))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    error = await rpc_error(client.create_volume(NAME, {**SEED, "storagetype": "HP"}, 10 * GIB))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    got = await client.controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id))
    assert got.volume.volume_id == volume.volume_id and dict(got.volume.volume_context) == dict(volume.volume_context)
    listed = await client.controller.ListVolumes(csi_pb2.ListVolumesRequest())
    assert [entry.volume.volume_id for entry in listed.entries] == [volume.volume_id]
    missing = csi_pb2.ValidateVolumeCapabilitiesRequest(
        volume_id="cfs-00000000", volume_capabilities=[mount_capability()]
    )
    assert (await rpc_error(client.controller.ValidateVolumeCapabilities(missing))).code() == grpc.StatusCode.NOT_FOUND
    assert len(emulator.file_systems()) == 1


async def test_zone_defaults_to_the_controllers_zone(client: CsiClient, emulator: Emulator) -> None:
    params = {k: v for k, v in SEED.items() if k != "zone"}
    volume = await client.create_volume("pvc-zone", params)
    assert volume.volume_context["zone"] == "ap-guangzhou-3"
    assert (await client.create_volume("pvc-zone", params)).volume_id == volume.volume_id


async def test_long_names_are_shortened_and_found_again(client: CsiClient, emulator: Emulator) -> None:
    name = "pvc-" + "x" * 124
    volume = await client.create_volume(name, SEED)
    [fs] = emulator.file_systems()
    assert len(str(fs["FsName"]).encode()) <= 64
    assert (await client.create_volume(name, SEED)).volume_id == volume.volume_id


async def test_a_slow_creation_never_holds_the_call_past_its_deadline(
    client: CsiClient, emulator: Emulator, mount_root: Path
) -> None:
    emulator.set_faults(create_delay=4.0)
    error = await rpc_error(client.controller.CreateVolume(create_request("pvc-slow", SEED), timeout=3))
    assert error.code() == grpc.StatusCode.ABORTED  # answered before the deadline, retryable
    assert len(emulator.file_systems()) == 1
    for _ in range(30):  # the provisioner's retries
        try:
            volume = (await client.controller.CreateVolume(create_request("pvc-slow", SEED), timeout=3)).volume
            break
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.ABORTED
    assert volume.volume_context["host"]
    assert len(emulator.file_systems()) == 1


async def test_stuck_creation_is_retryable_and_never_duplicated(client: CsiClient, emulator: Emulator) -> None:
    emulator.set_faults(stuck_rate=1.0)
    for _ in range(3):
        error = await rpc_error(client.controller.CreateVolume(create_request("pvc-stuck", SEED), timeout=3))
        assert error.code() == grpc.StatusCode.ABORTED
    assert len(emulator.file_systems()) == 1


async def test_create_failed_is_cleaned_up_and_named(client: CsiClient, emulator: Emulator) -> None:
    emulator.set_faults(create_failed_rate=1.0)
    error = await rpc_error(client.create_volume("pvc-fail", SEED))
    assert "create_failed" in (error.details() or "")
    assert emulator.file_systems() == []  # nothing leaked
    emulator.set_faults(create_failed_rate=0.0)
    volume = await client.create_volume("pvc-fail", SEED)
    assert [fs["FileSystemId"] for fs in emulator.file_systems()] == [volume.volume_id]


async def test_delete_while_creating_is_retryable(client: CsiClient, emulator: Emulator) -> None:
    emulator.set_faults(create_delay=3.0)
    await rpc_error(client.controller.CreateVolume(create_request("pvc-del", SEED), timeout=2))
    [fs] = emulator.file_systems()
    error = await rpc_error(client.delete_volume(str(fs["FileSystemId"])))
    assert error.code() == grpc.StatusCode.ABORTED


BAD_REQUESTS = [
    ("no vpc", {k: v for k, v in SEED.items() if k != "vpcid"}, grpc.StatusCode.INVALID_ARGUMENT, "vpcid"),
    ("unknown key", {**SEED, "subnet": "subnet-x"}, grpc.StatusCode.INVALID_ARGUMENT, "'subnet'"),
    ("bad storage type", {**SEED, "storagetype": "XL"}, grpc.StatusCode.INVALID_ARGUMENT, "storagetype"),
    ("bad tags", {**SEED, "resourcetags": "a"}, grpc.StatusCode.INVALID_ARGUMENT, "malformed tag"),
]


@pytest.mark.parametrize(("case", "params", "code", "needle"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
async def test_bad_storage_class_parameters(
    client: CsiClient, emulator: Emulator, case: str, params: dict[str, str], code: grpc.StatusCode, needle: str
) -> None:
    error = await rpc_error(client.create_volume("pvc-bad", params))
    assert error.code() == code and needle in (error.details() or "")
    assert emulator.file_systems() == []


CLOUD_FAULTS = [
    ("throttled beyond the deadline", {"throttle_rate": 1.0}, grpc.StatusCode.UNAVAILABLE, "RequestLimitExceeded"),
    ("server errors beyond the deadline", {"error_rate": 1.0}, grpc.StatusCode.UNAVAILABLE, "ServerNetworkError"),
]


@pytest.mark.parametrize(("case", "faults", "code", "needle"), CLOUD_FAULTS, ids=[c[0] for c in CLOUD_FAULTS])
async def test_cloud_faults_map_to_csi_codes(
    client: CsiClient, emulator: Emulator, case: str, faults: dict[str, float], code: grpc.StatusCode, needle: str
) -> None:
    emulator.set_faults(**faults)
    error = await rpc_error(client.controller.CreateVolume(create_request("pvc-f", SEED), timeout=4))
    assert error.code() == code and needle in (error.details() or "")


async def test_wrong_credentials_are_unauthenticated_and_never_logged(emulator: Emulator, mount_root: Path) -> None:
    env = {**CLOUD_ENV, "TENCENTCLOUD_API_SECRET_KEY": "wrong-key-VALUE-123\n"}
    driver = start_driver(mount_root, *tencent_driver_flags(emulator), env=env, name="badcreds")
    try:
        async with CsiClient(driver.endpoint) as csi:
            error = await rpc_error(csi.create_volume(NAME, SEED))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "credentials" in (error.details() or "")
            probe = await csi.identity.Probe(csi_pb2.ProbeRequest())
            assert not probe.ready.value
    finally:
        driver.stop()
    log = driver.log_text()
    assert "wrong-key-VALUE-123" not in log and CLOUD_ENV["TENCENTCLOUD_API_SECRET_KEY"] not in log


@pytest.mark.parametrize(("flags", "ready"), [([], False), (["--no-probe-cloud"], True)])
async def test_probe_reports_a_cloud_outage_unless_told_not_to(
    emulator: Emulator, mount_root: Path, flags: list[str], ready: bool
) -> None:
    """The chart runs the controller with --no-probe-cloud: there Probe feeds the liveness check, and restarting
    the controller cannot fix the cloud."""
    driver = start_driver(mount_root, *tencent_driver_flags(emulator), *flags, env=CLOUD_ENV, name="probe")
    try:
        emulator.set_faults(error_rate=1.0)
        async with CsiClient(driver.endpoint) as csi:
            probe = await csi.identity.Probe(csi_pb2.ProbeRequest(), timeout=20)
            assert probe.ready.value is ready
            error = await rpc_error(csi.controller.CreateVolume(create_request("pvc-outage", SEED), timeout=4))
            assert error.code() == grpc.StatusCode.UNAVAILABLE  # the outage is real either way
    finally:
        driver.stop()


def test_missing_credentials_or_region_stop_the_controller_with_a_clear_error(
    emulator: Emulator, mount_root: Path
) -> None:
    flags = tencent_driver_flags(emulator)
    driver = start_driver(mount_root, *flags, "--metadata-url", "http://127.0.0.1:9/", env={
        "TENCENTCLOUD_API_SECRET_ID": "", "TENCENTCLOUD_SECRET_ID": "",
    }, name="nocreds", wait=False)  # fmt: skip
    assert driver.process.wait(60) == 2
    assert "no cloud credentials" in driver.log_text() and "Traceback" not in driver.log_text()

    without_region = [f for f in flags if f not in ("--region", "ap-guangzhou")]
    driver = start_driver(mount_root, *without_region, "--metadata-url", "http://127.0.0.1:9/", env=CLOUD_ENV,
                          name="noregion", wait=False)  # fmt: skip
    assert driver.process.wait(60) == 2
    assert "--region" in driver.log_text()


async def test_an_expired_client_token_resumes_the_same_file_system(mount_root: Path) -> None:
    """The token is forgotten after its TTL; the lookup by name still finds the first file system."""
    from tests.conftest import start_emulator

    emulator = start_emulator(mount_root, "--create-delay", "3", "--client-token-ttl", "0.5", name="ttl")
    driver = start_driver(mount_root, *tencent_driver_flags(emulator), env=CLOUD_ENV, name="ttl-driver")
    try:
        async with CsiClient(driver.endpoint) as csi:
            first = await rpc_error(csi.controller.CreateVolume(create_request("pvc-ttl", SEED), timeout=2))
            assert first.code() == grpc.StatusCode.ABORTED
            await asyncio.sleep(1)  # the ClientToken has expired; the file system is still creating
            for _ in range(30):
                try:
                    await csi.controller.CreateVolume(create_request("pvc-ttl", SEED), timeout=3)
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.ABORTED
        assert len(emulator.file_systems()) == 1
    finally:
        driver.stop()
        emulator.stop()


async def test_cloud_rejections_name_the_parameter(client: CsiClient, emulator: Emulator) -> None:
    """A zone of another region passes our syntax check; the cloud's refusal comes back as INVALID_ARGUMENT."""
    error = await rpc_error(client.create_volume("pvc-zone2", {**SEED, "zone": "ap-shanghai-2"}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Zone" in (error.details() or "") and "StorageClass" in (error.details() or "")
    assert emulator.file_systems() == []
