"""The node plugin when the file server hangs, fails, dies or changes under it (issue 12).

The server is :mod:`tests.faultyfs`, a FUSE file system whose directories can be made to hang, fail with ESTALE
or EIO, be exported anew, or die, on command. It is mounted at ``<export root>/<host>``, so each of its
directories is a volume's export and the plugin's bind mount of it at a target inherits its behaviour: what the
kubelet's target shows is the misbehaving file system. Where the ``mount``/``umount`` command itself must
misbehave, a stand-in on PATH wraps the real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from cfs_csi.client import CsiClient
from cfs_csi.csi import csi_pb2
from cfs_csi.mount.mountinfo import read_mount_table
from tests import faultyfs
from tests.conftest import Driver, pods_dir, start_driver, stop_gracefully

HOST = "10.9.0.1"


def volume(name: str) -> csi_pb2.Volume:
    return csi_pb2.Volume(volume_id=f"cfs-{name}", volume_context={"host": HOST, "fsid": name, "vers": "3"})


def exports(root: Path) -> Path:
    return root / "exports"


def start_fs(root: Path, names: list[str]) -> faultyfs.Running:
    return faultyfs.start(str(exports(root) / HOST), str(root / "faultyfs.sock"), names)


def node_driver(root: Path, *flags: str, env: dict[str, str] | None = None, name: str = "node") -> Driver:
    return start_driver(
        root, "--component", "node", "--mounter", "bind", "--export-root", str(exports(root)), *flags,
        env=env, name=name,
    )  # fmt: skip


def target(root: Path, name: str) -> Path:
    return pods_dir(root) / "uid" / "volumes" / "kubernetes.io~csi" / name / "mount"


def mounts_at(path: Path) -> int:
    return sum(1 for entry in read_mount_table().entries if entry.mount_point == str(path))


@pytest.fixture
def fs_names() -> list[str]:
    return ["vol0"]


@pytest.fixture
def faulty(mount_root: Path, fs_names: list[str]) -> Iterator[faultyfs.Running]:
    running = start_fs(mount_root, fs_names)
    try:
        yield running
    finally:
        running.stop()


def _usage(stats: csi_pb2.NodeGetVolumeStatsResponse) -> dict[int, csi_pb2.VolumeUsage]:
    return {usage.unit: usage for usage in stats.usage}


# -- 1. stats: a hung volume costs the others nothing ------------------------------------------------------------

HUNG = [f"hung{i}" for i in range(20)]
HEALTHY = [f"ok{i}" for i in range(20)]


@pytest.mark.parametrize("fs_names", [HUNG + HEALTHY])
async def test_hung_volumes_do_not_slow_the_stats_of_healthy_ones(mount_root: Path, faulty: faultyfs.Running) -> None:
    driver = node_driver(mount_root, "--stats-timeout", "1")
    try:
        async with CsiClient(driver.endpoint) as csi:
            await asyncio.gather(*(csi.publish(volume(name), str(target(mount_root, name))) for name in HUNG + HEALTHY))
            for name in HUNG:
                faulty.set(name, "hang")
            for _ in range(3):  # the kubelet polls again and again
                hung = await asyncio.gather(*(csi.stats(f"cfs-{n}", str(target(mount_root, n))) for n in HUNG))
                assert all(answer.volume_condition.abnormal for answer in hung)
                assert all("statvfs" in answer.volume_condition.message for answer in hung)
            # One probe per hung path is outstanding, however often it was asked.
            assert [faulty.held(name) for name in HUNG] == [1] * len(HUNG)
            healthy = await asyncio.gather(*(csi.stats(f"cfs-{n}", str(target(mount_root, n))) for n in HEALTHY))
            for answer in healthy:
                assert not answer.volume_condition.abnormal, answer.volume_condition.message
                assert _usage(answer)[csi_pb2.VolumeUsage.BYTES].total == 1000 * 4096
                assert _usage(answer)[csi_pb2.VolumeUsage.INODES].used == 7
            for name in HUNG:  # the server answers again: so do the stats
                faulty.set(name, "ok")
            answer = await _stats_until_normal(csi, HUNG[0], mount_root)
            assert _usage(answer)[csi_pb2.VolumeUsage.BYTES].used == 250 * 4096
    finally:
        stop_gracefully(driver)


async def _stats_until_normal(csi: CsiClient, name: str, root: Path) -> csi_pb2.NodeGetVolumeStatsResponse:
    """Stats of ``name`` once its released probe has ended (it answers abnormal while the old one still runs)."""
    for _ in range(200):
        answer = await csi.stats(f"cfs-{name}", str(target(root, name)))
        if not answer.volume_condition.abnormal:
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"stats of {name} stay abnormal: {answer.volume_condition.message}")
