"""Per-call log lines of a real controller (grpclib server, tencent backend, the CFS emulator): at INFO one line
per decision, with the cloud's share of its time; the whole request only at DEBUG, with its secrets cleared."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cfs_csi.client import CsiClient
from cfs_csi.cloud.tencent.backend import TencentConfig, TencentFileStorage
from cfs_csi.cloud.tencent.credentials import StaticCredential
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.controller import ControllerServicer
from cfs_csi.driver.grpcserve import GrpcServer
from cfs_csi.driver.interceptor import intercept
from tests.conftest import SECRET_ID, SECRET_KEY, start_emulator
from tests.seed import SEED_PARAMS

SECRET = "S3CR3T-interceptor-logs"


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[str]:
    emulator = start_emulator(tmp_path, "--create-delay", "0")
    config = TencentConfig(
        region="ap-guangzhou", default_zone="ap-guangzhou-3", endpoint=emulator.url.removeprefix("http://"),
        scheme="http", cluster_id="cls-logs", poll_interval=0.1,
    )  # fmt: skip
    storage = TencentFileStorage(config, StaticCredential(SECRET_ID, SECRET_KEY))
    server = GrpcServer()
    server.add(csi_pb2.DESCRIPTOR.services_by_name["Controller"], ControllerServicer(storage), intercept)
    await server.start(str(tmp_path / "csi.sock"))
    try:
        yield f"unix://{tmp_path / 'csi.sock'}"
    finally:
        await server.stop(None)
        emulator.stop()


def rpc_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cfs_csi.rpc" and r.levelno == level]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_one_info_line_per_decision_with_the_clouds_time(
    endpoint: str, caplog: pytest.LogCaptureFixture, level: int
) -> None:
    caplog.set_level(level)
    async with CsiClient(endpoint) as client:
        volume = await client.create_volume("pvc-logs", SEED_PARAMS, secrets={"secretKey": SECRET})
        await client.controller.ListVolumes(csi_pb2.ListVolumesRequest())
        await client.delete_volume(volume.volume_id, secrets={"secretKey": SECRET})
    info = rpc_lines(caplog, logging.INFO)
    assert len(info) == 2, info  # the read (ListVolumes) has none
    created = re.fullmatch(
        r"CreateVolume pvc-logs: volume (cfs-\w+), (\d+) bytes in ([\d.]+) ms \(cloud ([\d.]+) ms in (\d+) calls\)",
        info[0],
    )
    assert created is not None, info[0]
    assert created.group(1) == volume.volume_id and int(created.group(2)) == volume.capacity_bytes
    assert float(created.group(4)) <= float(created.group(3)) and int(created.group(5)) >= 2
    assert re.fullmatch(
        rf"DeleteVolume {volume.volume_id}: done in [\d.]+ ms \(cloud [\d.]+ ms in \d+ calls\)", info[1]
    )
    everything = [r.getMessage() for r in caplog.records]
    assert not any(SECRET in line for line in everything)
    debug = rpc_lines(caplog, logging.DEBUG)
    if level == logging.DEBUG:
        requests = [line for line in debug if line.startswith("CreateVolume request: ")]
        assert len(requests) == 1 and 'name: "pvc-logs"' in requests[0] and "secretKey" not in requests[0]
        assert any(line.startswith("ListVolumes done in ") for line in debug)
    else:
        assert debug == []


async def test_hostile_subjects_stay_on_one_short_line(endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    hostile = "cfs-x\n2026-11-30 INFO cfs_csi.rpc: CreateVolume pvc-fake: volume cfs-fake" + "y" * 5000
    async with CsiClient(endpoint) as client:
        await client.delete_volume(hostile)  # no file system has such an id: answered "already gone"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.create_volume("bad name\nwith a newline", SEED_PARAMS)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    lines = [r.getMessage() for r in caplog.records if r.name == "cfs_csi.rpc"]
    assert len(lines) == 2 and all("\n" not in line and len(line) < 2000 for line in lines), lines
    assert lines[0].startswith("DeleteVolume 'cfs-x\\n2026-11-30 INFO") and lines[0].endswith(" ms")
    assert f"[{len(hostile)} characters]" in lines[0]
    assert lines[1].startswith("CreateVolume failed after ") and " on 'bad name\\nwith a newline': " in lines[1]
    assert "INVALID_ARGUMENT" in lines[1]
