"""The controller over a real unix socket, against the local backend."""

from __future__ import annotations

import grpc
import pytest

from cfs_csi.client import CsiClient, mount_capability
from cfs_csi.csi import csi_pb2
from cfs_csi.volume.capacity import GIB
from tests.conftest import Driver
from tests.seed import SEED_PARAMS
from tests.seed import SEED_VOLUME_NAME as NAME


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    code: grpc.StatusCode = error.value.code()
    return code


async def test_create_returns_the_seed_context_and_is_idempotent(client: CsiClient, driver: Driver) -> None:
    volume = await client.create_volume(NAME, SEED_PARAMS, 10 * GIB)
    assert volume.volume_id.startswith("cfs-")
    assert volume.capacity_bytes == 10 * GIB
    context = dict(volume.volume_context)
    assert {k: context.pop(k) for k in ("host", "fsid")}["host"] == "127.0.0.1"
    assert context == SEED_PARAMS
    backing = driver.state_dir / "local" / "exports" / "127.0.0.1" / volume.volume_context["fsid"]
    assert backing.is_dir()

    again = await client.create_volume(NAME, SEED_PARAMS, 10 * GIB)
    assert again == volume
    # Keys are case-insensitive: the same class written differently is the same volume.
    again = await client.create_volume(NAME, {k.upper(): v for k, v in SEED_PARAMS.items()}, 10 * GIB)
    assert again.volume_id == volume.volume_id


async def test_same_name_different_capacity_or_parameters(client: CsiClient) -> None:
    await client.create_volume(NAME, SEED_PARAMS, 10 * GIB)
    assert await code_of(client.create_volume(NAME, SEED_PARAMS, 20 * GIB)) == grpc.StatusCode.ALREADY_EXISTS
    other = {**SEED_PARAMS, "storagetype": "HP"}
    assert await code_of(client.create_volume(NAME, other, 10 * GIB)) == grpc.StatusCode.ALREADY_EXISTS


async def test_capacity_is_rounded_up_to_gib(client: CsiClient) -> None:
    volume = await client.create_volume("pvc-small", {}, 5 * 1024**2)
    assert volume.capacity_bytes == GIB


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"subnetId2": "subnet-x"}, "subnetId2"),
        ({"storagetype": "SSD"}, "storagetype"),
        ({"resourcetags": "team:a,oops"}, "oops"),
    ],
)
async def test_bad_parameters_are_invalid_argument(client: CsiClient, params: dict[str, str], needle: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.create_volume("pvc-bad", params)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in (error.value.details() or "")
    listed = await client.controller.ListVolumes(csi_pb2.ListVolumesRequest())
    assert list(listed.entries) == []  # nothing was created


async def test_block_and_missing_fields(client: CsiClient) -> None:
    block = csi_pb2.VolumeCapability(
        block=csi_pb2.VolumeCapability.BlockVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER),
    )
    requests = [
        csi_pb2.CreateVolumeRequest(name="x", volume_capabilities=[block]),
        csi_pb2.CreateVolumeRequest(name="", volume_capabilities=[mount_capability()]),
        csi_pb2.CreateVolumeRequest(name="x"),
    ]
    for request in requests:
        assert await code_of(client.controller.CreateVolume(request)) == grpc.StatusCode.INVALID_ARGUMENT
    too_small = csi_pb2.CreateVolumeRequest(
        name="x", volume_capabilities=[mount_capability()], capacity_range=csi_pb2.CapacityRange(limit_bytes=1024)
    )
    assert await code_of(client.controller.CreateVolume(too_small)) == grpc.StatusCode.OUT_OF_RANGE


async def test_delete_is_idempotent_and_removes_data(client: CsiClient, driver: Driver) -> None:
    volume = await client.create_volume(NAME, SEED_PARAMS)
    backing = driver.state_dir / "local" / "exports" / "127.0.0.1" / volume.volume_context["fsid"]
    (backing / "file").write_text("data")
    await client.delete_volume(volume.volume_id)
    assert not backing.exists()
    await client.delete_volume(volume.volume_id)
    await client.delete_volume("cfs-neverexisted")
    assert await code_of(client.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest())) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_validate_volume_capabilities(client: CsiClient) -> None:
    volume = await client.create_volume(NAME, SEED_PARAMS)
    modes = csi_pb2.VolumeCapability.AccessMode
    for mode in (modes.SINGLE_NODE_WRITER, modes.MULTI_NODE_READER_ONLY, modes.MULTI_NODE_MULTI_WRITER):
        response = await client.controller.ValidateVolumeCapabilities(
            csi_pb2.ValidateVolumeCapabilitiesRequest(
                volume_id=volume.volume_id, volume_capabilities=[mount_capability(mode)]
            )
        )
        assert response.HasField("confirmed"), response.message
    block = csi_pb2.VolumeCapability(
        block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=csi_pb2.VolumeCapability.AccessMode(mode=1)
    )
    response = await client.controller.ValidateVolumeCapabilities(
        csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id=volume.volume_id, volume_capabilities=[block])
    )
    assert not response.HasField("confirmed") and "block" in response.message
    missing = csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id="cfs-nope", volume_capabilities=[mount_capability()])
    assert await code_of(client.controller.ValidateVolumeCapabilities(missing)) == grpc.StatusCode.NOT_FOUND


async def test_list_volumes_pages_by_token(client: CsiClient) -> None:
    ids = sorted([(await client.create_volume(f"pvc-{i}", {})).volume_id for i in range(5)])
    seen: list[str] = []
    token = ""
    while True:
        page = await client.controller.ListVolumes(csi_pb2.ListVolumesRequest(max_entries=2, starting_token=token))
        seen += [entry.volume.volume_id for entry in page.entries]
        assert all(not entry.status.volume_condition.abnormal for entry in page.entries)
        token = page.next_token
        if not token:
            break
        await client.delete_volume(token)  # deleting the last listed volume must not break the next page
    assert seen == ids
    bad = csi_pb2.ListVolumesRequest(starting_token="garbage")
    assert await code_of(client.controller.ListVolumes(bad)) == grpc.StatusCode.ABORTED


async def test_controller_get_volume(client: CsiClient) -> None:
    volume = await client.create_volume(NAME, SEED_PARAMS)
    got = await client.controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id))
    assert got.volume == volume and not got.status.volume_condition.abnormal
    missing = csi_pb2.ControllerGetVolumeRequest(volume_id="cfs-nope")
    assert await code_of(client.controller.ControllerGetVolume(missing)) == grpc.StatusCode.NOT_FOUND


async def test_unimplemented_rpcs_say_so(client: CsiClient) -> None:
    request = csi_pb2.ControllerPublishVolumeRequest(volume_id="cfs-1", node_id="n")
    assert await code_of(client.controller.ControllerPublishVolume(request)) == grpc.StatusCode.UNIMPLEMENTED


async def test_volumes_survive_a_controller_restart(mount_root: object) -> None:
    from pathlib import Path

    from tests.conftest import start_driver

    root = Path(str(mount_root))
    first = start_driver(root, name="restart")
    async with CsiClient(first.endpoint) as csi:
        volume = await csi.create_volume(NAME, SEED_PARAMS)
    first.stop()
    second = start_driver(root, name="restart")
    try:
        async with CsiClient(second.endpoint) as csi:
            assert await csi.create_volume(NAME, SEED_PARAMS) == volume
    finally:
        second.stop()


async def test_secrets_never_reach_the_log(client: CsiClient, driver: Driver) -> None:
    request = csi_pb2.CreateVolumeRequest(
        name=NAME, volume_capabilities=[mount_capability()], parameters=SEED_PARAMS,
        secrets={"secretKey": "S3CR3T-VALUE"},
    )  # fmt: skip
    await client.controller.CreateVolume(request)
    await client.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="cfs-x", secrets={"k": "S3CR3T-VALUE"}))
    log = driver.log_text()
    assert "CreateVolume request" in log and "S3CR3T-VALUE" not in log
