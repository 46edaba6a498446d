"""Nothing leaked, nothing twice: CreateVolume/DeleteVolume cycles through a faulty cloud and a crashing controller.

The emulator throttles 20% of requests, fails 5% with server errors and answers 5% only after the driver's
request timeout (having acted: the answer is lost). Meanwhile the controller is killed with SIGKILL and
restarted at random moments. The test behaves like the external-provisioner: it retries every retryable
answer. Afterwards the emulator must hold exactly the file systems of the volumes that still exist, once each.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from cfs_csi.client import CsiClient, mount_capability
from cfs_csi.csi import csi_pb2
from tests.conftest import CLOUD_ENV, Driver, start_driver, start_emulator, tencent_driver_flags

T = TypeVar("T")

CYCLES = 200
CONCURRENCY = 8
KEEP_EVERY = 5  # every fifth volume is kept, the others are deleted again
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.CANCELLED}  # fmt: skip
PARAMS = {"vpcid": "vpc-oilua6pt", "subnetid": "subnet-rtwb42lu", "zone": "ap-guangzhou-3", "pgroupid": "pgroupbasic"}


class Controller:
    """The controller process, killed and restarted on the same socket and state."""

    def __init__(self, root: Path, flags: list[str]) -> None:
        self.root, self.flags = root, flags
        self.kills = 0
        self.driver = self._start()

    def _start(self) -> Driver:
        return start_driver(self.root, *self.flags, env=CLOUD_ENV, name="faulty")

    def kill_and_restart(self) -> None:
        self.driver.stop(signal.SIGKILL)
        self.kills += 1
        self.driver = self._start()


async def until_ok(call: Callable[[], Awaitable[T]], counter: Counter[str]) -> T:
    for _ in range(400):
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE:
                raise
            counter[exc.code().name] += 1
            await asyncio.sleep(0.1)
    raise AssertionError("no success after 400 retries")


async def test_cycles_with_faults_and_crashes_leave_exactly_the_live_volumes(
    mount_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = start_emulator(
        mount_root, "--seed", "1126", "--create-delay", "0.2", "--throttle-rate", "0.2", "--error-rate", "0.05",
        "--timeout-rate", "0.05", "--timeout-delay", "3",
    )  # fmt: skip
    flags = [*tencent_driver_flags(emulator), "--cloud-timeout", "1", "--cloud-poll-interval", "0.2"]
    controller = Controller(mount_root, flags)
    rng = random.Random(20261126)
    retries: Counter[str] = Counter()
    kept: dict[str, str] = {}
    deleted: list[str] = []
    done = asyncio.Event()

    async def killer() -> None:
        while not done.is_set():
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            if not done.is_set():
                await asyncio.to_thread(controller.kill_and_restart)

    async def cycle(client: CsiClient, index: int) -> None:
        name = f"pvc-fault-{index:03d}"
        request = csi_pb2.CreateVolumeRequest(name=name, parameters=PARAMS, volume_capabilities=[mount_capability()])
        response = await until_ok(lambda: client.controller.CreateVolume(request, timeout=10), retries)
        volume_id = response.volume.volume_id
        if index % KEEP_EVERY == 0:
            kept[name] = volume_id
            return
        delete = csi_pb2.DeleteVolumeRequest(volume_id=volume_id)
        await until_ok(lambda: client.controller.DeleteVolume(delete, timeout=10), retries)
        deleted.append(volume_id)

    async def worker(client: CsiClient, indices: list[int]) -> None:
        for index in indices:
            await cycle(client, index)

    try:
        async with CsiClient(controller.driver.endpoint) as client:
            kill_task = asyncio.ensure_future(killer())
            await asyncio.gather(*(worker(client, list(range(w, CYCLES, CONCURRENCY))) for w in range(CONCURRENCY)))
            done.set()
            await kill_task
        remaining = emulator.file_systems()
        requests = emulator.admin("GET", "requests")
    finally:
        controller.driver.stop(signal.SIGKILL)
        emulator.stop()

    names = Counter(str(fs["FsName"]) for fs in remaining)
    with capsys.disabled():
        print(
            f"\nfault test: {CYCLES} cycles, {controller.kills} controller kills, retried answers {dict(retries)}, "
            f"kept {len(kept)}, deleted {len(deleted)}, file systems left {len(remaining)}, "
            f"duplicated names {sum(1 for c in names.values() if c > 1)}, emulator requests {requests}"
        )
    assert sorted(str(fs["FileSystemId"]) for fs in remaining) == sorted(kept.values())
    assert names == Counter(f"cls-test_{name}" for name in kept)
    assert controller.kills >= 3
