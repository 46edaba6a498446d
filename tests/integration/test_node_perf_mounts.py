"""The node's cheaper mount-table reads (issue 15) against real mounts in a private namespace: the watch sees
every change, and an unpublish that finds mounts stacked at its target still takes all of them down."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from cfs_csi.client import CsiClient
from cfs_csi.mount.mountinfo import MountWatch, read_mount_table
from tests.conftest import Driver, pods_dir


def test_the_watch_sees_every_mount_and_unmount(mount_root: Path) -> None:
    watch = MountWatch()
    point = mount_root / "point"
    point.mkdir()
    try:
        assert watch.table().at(str(point)) is None
        for _ in range(3):
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(point)], check=True, timeout=10)
            assert watch.table().at(str(point)) is not None
            subprocess.run(["umount", str(point)], check=True, timeout=10)
            assert watch.table().at(str(point)) is None
        reads = watch.reads
        watch.table()
        assert watch.reads == reads  # nothing changed since: not read again
        assert watch.table().entries == read_mount_table().entries
    finally:
        watch.close()


async def test_unpublish_takes_down_mounts_stacked_on_its_target(
    client: CsiClient, driver: Driver, mount_root: Path
) -> None:
    volume = await client.create_volume("pvc-stacked", {"vers": "3"})
    target = pods_dir(mount_root) / "uid" / "volumes" / "pvc-stacked" / "mount"
    await client.publish(volume, str(target))
    for _ in range(2):  # as a racing second mount would leave them
        await asyncio.to_thread(subprocess.run, ["mount", "-t", "tmpfs", "tmpfs", str(target)], check=True, timeout=10)
    assert len([e for e in read_mount_table().entries if e.mount_point == str(target)]) == 3
    await client.unpublish(volume.volume_id, str(target))
    assert read_mount_table().at(str(target)) is None
    assert not target.exists()
    await client.publish(volume, str(target))  # and the target works again
    await client.unpublish(volume.volume_id, str(target))
    assert not target.exists()
