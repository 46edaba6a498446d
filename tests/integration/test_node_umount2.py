"""Unmounting with ``umount2(2)`` (issue 15): exactly the mount at the target's name, and a call blocked in the
kernel costs other volumes nothing, answers within its deadline and keeps its target locked until it returns.

The bind mounter unmounts with the system call. A real kernel hang: the target's parent directory is on a
:mod:`tests.faultyfs` file system whose directory hangs, so the lookup of the target's name inside ``umount2``
waits on the FUSE server (as the lookup below a hard NFS mount whose server stopped does).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import grpc
import pytest

from cfs_csi.client import CsiClient
from cfs_csi.csi import csi_pb2
from cfs_csi.mount.errors import MountError
from cfs_csi.mount.mountinfo import read_mount_table
from cfs_csi.mount.targets import TargetRef
from cfs_csi.mount.umount2 import MNT_DETACH, MNT_FORCE, Unmounts
from tests import faultyfs
from tests.conftest import pods_dir, stop_gracefully
from tests.integration.test_node_faults import (
    code_of,
    node_driver,
    start_fs,
    target,
    volume,
    wait_for,
)


def mount_points() -> list[str]:
    return [entry.mount_point for entry in read_mount_table().entries]


def tmpfs(path: Path, name: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", name, str(path)], check=True, timeout=10)


def ref_of(path: Path) -> TargetRef:
    return TargetRef(os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), path.name, str(path))


async def unmount_once(path: Path, flags: int = 0) -> None:
    ref = ref_of(path)
    try:
        await Unmounts().unmount(ref, flags, 10)
    finally:
        ref.close()


# -- exactly the mount at that name ------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [0, MNT_FORCE, MNT_DETACH])
async def test_stacked_mounts_come_off_one_at_a_time(mount_root: Path, flags: int) -> None:
    path = mount_root / "t"
    path.mkdir()
    tmpfs(path, "lower")
    tmpfs(path, "upper")
    await unmount_once(path, flags)
    assert mount_points().count(str(path)) == 1
    assert [e.source for e in read_mount_table().entries if e.mount_point == str(path)] == ["lower"]
    await unmount_once(path, flags)
    assert str(path) not in mount_points()
    await unmount_once(path, flags)  # nothing mounted any more: done, not an error


async def test_another_bind_mount_of_the_same_file_system_stays(mount_root: Path) -> None:
    source, first, second = mount_root / "src", mount_root / "a", mount_root / "b"
    for directory in (source, first, second):
        directory.mkdir()
    tmpfs(source, "shared")
    for point in (first, second):
        subprocess.run(["mount", "--bind", str(source), str(point)], check=True, timeout=10)  # noqa: ASYNC221
    await unmount_once(first)
    points = mount_points()
    assert str(first) not in points and str(second) in points and str(source) in points


async def test_a_symlink_swapped_in_at_the_name_is_not_followed(mount_root: Path) -> None:
    """The target's name is now a symlink to another mount point: nothing is unmounted (umount(8) as root would
    have followed it), and the call says "not mounted" (done), as the mount table would."""
    path, elsewhere = mount_root / "t", mount_root / "elsewhere"
    path.mkdir()
    elsewhere.mkdir()
    tmpfs(elsewhere, "other")
    ref = ref_of(path)
    try:
        path.rmdir()
        path.symlink_to(elsewhere)
        await Unmounts().unmount(ref, 0, 10)
        await Unmounts().unmount(ref, MNT_DETACH, 10)
    finally:
        ref.close()
    assert str(elsewhere) in mount_points()


async def test_a_busy_mount_fails_in_umounts_words(mount_root: Path) -> None:
    path = mount_root / "t"
    path.mkdir()
    tmpfs(path, "busy")
    held = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(MountError) as error:
            await unmount_once(path)
    finally:
        os.close(held)
    assert error.value.message == f"umount {path} failed: Device or resource busy"
    assert str(path) in mount_points()


# -- a hung unmount ------------------------------------------------------------------------------------------------


async def test_a_hung_unmount_answers_in_time_keeps_its_target_locked_and_blocks_no_other_volume(
    mount_root: Path,
) -> None:
    exported = start_fs(mount_root, ["vol0", "vol1"])
    parents = pods_dir(mount_root) / "uid" / "fuse"
    parents.mkdir(parents=True)
    hanging = faultyfs.start(str(parents), str(mount_root / "parents.sock"), ["hung"])
    driver = node_driver(mount_root)
    stuck, healthy = parents / "hung", target(mount_root, "vol1")
    try:
        async with CsiClient(driver.endpoint) as csi:
            await csi.publish(volume("vol0"), str(stuck))
            await csi.publish(volume("vol1"), str(healthy))
            assert str(stuck) in mount_points() and str(healthy) in mount_points()
            hanging.set("hung", "hang")
            request = csi_pb2.NodeUnpublishVolumeRequest(volume_id="cfs-vol0", target_path=str(stuck))
            call = csi.node.NodeUnpublishVolume(request, timeout=6)
            await wait_for(lambda: hanging.held("hung") > 0, "the unmount to wait on the server")
            # Meanwhile another volume unpublishes as usual.
            await csi.unpublish("cfs-vol1", str(healthy))
            assert str(healthy) not in mount_points() and not healthy.exists()
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await call
            assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "did not return within" in (error.value.details() or ""), error.value.details()  # ours
            # Every step still waits in the kernel: the target stays locked.
            retry = csi.node.NodeUnpublishVolume(request, timeout=5)
            assert await code_of(retry) == grpc.StatusCode.ABORTED
            assert str(stuck) in mount_points()
            hanging.set("hung", "ok")
            answer = grpc.StatusCode.ABORTED
            for _ in range(100):
                answer = await code_of(csi.node.NodeUnpublishVolume(request, timeout=10))
                if answer != grpc.StatusCode.ABORTED:
                    break
                await asyncio.sleep(0.1)
            # (The retry may still fail to remove the directory: faultyfs has no rmdir. The mount is what counts.)
            assert answer != grpc.StatusCode.ABORTED
            await wait_for(lambda: str(stuck) not in mount_points(), "the released unmount")
    finally:
        hanging.set("hung", "ok")
        stop_gracefully(driver)
        hanging.stop()
        exported.stop()
