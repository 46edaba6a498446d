"""Is this a mount point? asked of the kernel for one name (statx, issue 15) instead of by reading the whole mount
table: it must agree with the table for every kind of thing a target can be, including those that try to pass
for something else (a bind mount of the same file system, a symlink to a mount point, stacked mounts), and the
node must keep refusing what is not its own when the shortcut answers."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from cfs_csi.client import CsiClient
from cfs_csi.mount import mountpoint
from cfs_csi.mount.mountinfo import read_mount_table
from tests.conftest import Driver, pods_dir

pytestmark = pytest.mark.skipif(not mountpoint.supported(), reason="statx cannot tell mount roots on this kernel")


def mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, timeout=10)


def plain(d: Path) -> None:
    (d / "x").mkdir()


def tmpfs(d: Path) -> None:
    (d / "x").mkdir()
    mount("-t", "tmpfs", "tmpfs", str(d / "x"))


def same_fs_bind(d: Path) -> None:  # same st_dev as its parent: comparing devices would say "not mounted"
    (d / "x").mkdir()
    (d / "elsewhere").mkdir()
    mount("--bind", str(d / "elsewhere"), str(d / "x"))


def self_bind(d: Path) -> None:
    (d / "x").mkdir()
    mount("--bind", str(d / "x"), str(d / "x"))


def stacked(d: Path) -> None:
    tmpfs(d)
    mount("-t", "tmpfs", "tmpfs", str(d / "x"))


def symlink_to_mount(d: Path) -> None:
    (d / "m").mkdir()
    mount("-t", "tmpfs", "tmpfs", str(d / "m"))
    (d / "x").symlink_to(d / "m")


def a_file(d: Path) -> None:
    (d / "x").write_text("")


CASES: list[tuple[str, Callable[[Path], None], bool]] = [
    ("plain directory", plain, False),
    ("tmpfs mounted", tmpfs, True),
    ("bind mount of the same file system", same_fs_bind, True),
    ("directory bound onto itself", self_bind, True),
    ("two mounts stacked", stacked, True),
    ("symlink to a mount point", symlink_to_mount, False),
    ("regular file", a_file, False),
]


@pytest.mark.parametrize(("make", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_the_kernel_and_the_table_agree(mount_root: Path, make: Callable[[Path], None], expected: bool) -> None:
    make(mount_root)
    fd = os.open(mount_root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert mountpoint.is_mount_root(fd, "x") is expected
        assert (read_mount_table().at(str(mount_root / "x")) is not None) is expected
    finally:
        os.close(fd)


def test_a_missing_name_is_not_found(mount_root: Path) -> None:
    fd = os.open(mount_root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileNotFoundError):
            mountpoint.is_mount_root(fd, "missing")
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("name", "parts", "crosses"),
    [
        ("no mount on the way", ("a", "b", "c"), False),
        ("a mount on an inner component", ("m", "b", "c"), True),
        ("the last component is a mount", ("a", "m2"), True),
        ("a symlink to a mount on the way: the walk stops there", ("link", "b"), False),
        ("a missing component: the rest would be made on this file system", ("a", "missing", "c"), False),
    ],
)
def test_walk_crosses_mount(mount_root: Path, name: str, parts: tuple[str, ...], crosses: bool) -> None:
    (mount_root / "a" / "b" / "c").mkdir(parents=True)
    (mount_root / "m").mkdir()
    mount("-t", "tmpfs", "tmpfs", str(mount_root / "m"))
    (mount_root / "m" / "b" / "c").mkdir(parents=True)
    (mount_root / "a" / "m2").mkdir()
    mount("--bind", str(mount_root / "a" / "b"), str(mount_root / "a" / "m2"))
    (mount_root / "link").symlink_to(mount_root / "m")
    fd = os.open(mount_root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert mountpoint.walk_crosses_mount(fd, parts) is crosses
    finally:
        os.close(fd)


# -- through the node --------------------------------------------------------------------------------------------


async def answer(call: asyncio.Future[object] | object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_same_fs_bind_mount_at_the_target_is_not_taken_for_an_empty_directory(
    client: CsiClient, driver: Driver, mount_root: Path
) -> None:
    """Someone else's bind mount of the pods directory's own file system sits at the target: publish must see it
    (ALREADY_EXISTS, nothing stacked on it) although its device is the parent's."""
    volume = await client.create_volume("pvc-bind", {})
    target = pods_dir(mount_root) / "uid" / "volumes" / "kubernetes.io~csi" / "pv" / "mount"
    target.mkdir(parents=True)
    other = pods_dir(mount_root) / "other-data"
    other.mkdir()
    (other / "keep").write_text("theirs")
    await asyncio.to_thread(mount, "--bind", str(other), str(target))
    before = read_mount_table().entries
    assert await answer(client.publish(volume, str(target))) == grpc.StatusCode.ALREADY_EXISTS
    assert read_mount_table().entries == before
    assert (target / "keep").read_text() == "theirs"


async def test_a_target_swapped_for_a_symlink_to_a_mount_is_left_alone(
    client: CsiClient, driver: Driver, mount_root: Path
) -> None:
    """The target is a symlink to a mount point: neither publish nor unpublish may act through it."""
    volume = await client.create_volume("pvc-link", {})
    elsewhere = mount_root / "host-mount"
    elsewhere.mkdir()
    await asyncio.to_thread(mount, "-t", "tmpfs", "tmpfs", str(elsewhere))
    target = pods_dir(mount_root) / "uid2" / "volumes" / "kubernetes.io~csi" / "pv" / "mount"
    target.parent.mkdir(parents=True)
    target.symlink_to(elsewhere)
    before = read_mount_table().entries
    assert await answer(client.publish(volume, str(target))) == grpc.StatusCode.INVALID_ARGUMENT
    assert await answer(client.unpublish(volume.volume_id, str(target))) == grpc.StatusCode.INVALID_ARGUMENT
    assert read_mount_table().entries == before
    assert target.is_symlink()


async def test_a_mount_that_appears_after_publish_is_still_taken_down_in_order(
    client: CsiClient, driver: Driver, mount_root: Path
) -> None:
    """Between publish and unpublish another mount is stacked on the target (the check at unpublish asks the
    kernel, not a table read earlier): both go, and the directory with them."""
    volume = await client.create_volume("pvc-late", {})
    target = pods_dir(mount_root) / "uid3" / "volumes" / "kubernetes.io~csi" / "pv" / "mount"
    await client.publish(volume, str(target))
    await asyncio.to_thread(mount, "-t", "tmpfs", "tmpfs", str(target))
    await client.unpublish(volume.volume_id, str(target))
    assert read_mount_table().at(str(target)) is None
    assert not target.exists()
