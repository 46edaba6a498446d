"""Hostile requests to the node plugin (issue 11, findings 4-6), over real gRPC, with real bind mounts.

Whoever can name a target path names what a privileged process mounts over or removes. Each case below is a
request that once mounted over, unmounted or deleted something that was not the node's to touch. Each asserts
the exact answer AND that nothing else changed: the mount table, a decoy "host" directory (a stand-in for
``/etc``: paths, modes, content hashes, symlink targets) and the files the case names.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from cfs_csi.client import CsiClient
from cfs_csi.csi import csi_pb2
from tests.conftest import Driver, fake_command, pods_dir, start_driver

MODE = csi_pb2.VolumeCapability.AccessMode


@dataclass
class World:
    client: CsiClient
    driver: Driver
    pods: Path
    host: Path
    volume: csi_pb2.Volume
    other: csi_pb2.Volume


@dataclass
class Attempt:
    #: Makes the request (a gRPC call starts when it is made, so not before the "before" snapshot).
    call: Callable[[], Awaitable[object]]
    #: Files or directories (or symlinks) that must still be there afterwards, with their content if a file.
    keep: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[World], Awaitable[Attempt]]
    code: grpc.StatusCode
    message: str = ""


def mount_table() -> list[str]:
    """Every line of this namespace's mount table (the driver shares it): ids, paths, options, sources."""
    return sorted(Path("/proc/self/mountinfo").read_text().splitlines())


def listing(top: Path) -> dict[str, str]:
    """Every path below ``top`` with its type, mode and content hash (symlinks are listed, never followed)."""
    found: dict[str, str] = {}
    for directory, dirs, files in os.walk(top, followlinks=False):
        for name in dirs + files:
            path = Path(directory) / name
            st = path.lstat()
            relative = str(path.relative_to(top))
            if stat.S_ISLNK(st.st_mode):
                found[relative] = f"link -> {os.readlink(path)}"
            elif stat.S_ISDIR(st.st_mode):
                found[relative] = f"dir {st.st_mode:o}"
            else:
                found[relative] = f"file {st.st_mode:o} {hashlib.sha256(path.read_bytes()).hexdigest()}"
    return found


def snapshot(paths: list[Path]) -> dict[str, str]:
    """What each kept path is: a file's content, a link's target, or just that a directory is there."""
    seen = {}
    for path in paths:
        if path.is_symlink():
            seen[str(path)] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            seen[str(path)] = "dir"
        elif path.exists():
            seen[str(path)] = f"file {path.read_text()}"
        else:
            seen[str(path)] = "missing"
    return seen


async def answer(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def publish(world: World, target: str, volume: csi_pb2.Volume | None = None) -> Awaitable[object]:
    return world.client.publish(volume or world.volume, target)


# -- the cases ---------------------------------------------------------------------------------------------------


async def unpublish_regular_file(world: World) -> Attempt:
    victim = world.pods / "pod-file" / "vol_data.json"
    victim.parent.mkdir()
    victim.write_text('{"the kubelet": "wrote this"}')
    return Attempt(lambda: world.client.unpublish(world.volume.volume_id, str(victim)), [victim])


async def unpublish_never_published_directory(world: World) -> Attempt:
    empty = world.pods / "pod-empty" / "volumes" / "kubernetes.io~csi" / "pv" / "mount"
    empty.mkdir(parents=True)
    return Attempt(lambda: world.client.unpublish(world.volume.volume_id, str(empty)), [empty])


async def unpublish_other_volumes_target(world: World) -> Attempt:
    target = world.pods / "pod-other" / "mount"
    await publish(world, str(target), world.other)
    (target / "data").write_text("the other tenant's")
    return Attempt(lambda: world.client.unpublish(world.volume.volume_id, str(target)), [target, target / "data"])


async def unpublish_root(world: World) -> Attempt:
    return Attempt(lambda: world.client.unpublish(world.volume.volume_id, "/"))


async def unpublish_pods_directory(world: World) -> Attempt:
    return Attempt(lambda: world.client.unpublish(world.volume.volume_id, str(world.pods)), [world.pods])


async def unpublish_climbing_out(world: World) -> Attempt:
    climbing = f"{world.pods}/../../{world.host.name}/emptydir"
    return Attempt(lambda: world.client.unpublish(world.volume.volume_id, climbing), [world.host / "emptydir"])


async def unpublish_symlink_to_covered_directory(world: World) -> Attempt:
    link = world.pods / "pod-link" / "mount"
    link.parent.mkdir()
    link.symlink_to(world.host / "covered")
    return Attempt(lambda: world.client.unpublish(world.volume.volume_id, str(link)), [link])


async def unpublish_through_symlinked_component(world: World) -> Attempt:
    (world.pods / "pod-hop").mkdir()
    (world.pods / "pod-hop" / "volumes").symlink_to(world.host)
    target = world.pods / "pod-hop" / "volumes" / "emptydir"
    return Attempt(lambda: world.client.unpublish(world.volume.volume_id, str(target)), [world.host / "emptydir"])


async def unpublish_nul(world: World) -> Attempt:
    return Attempt(lambda: world.client.unpublish(world.volume.volume_id, f"{world.pods}/pod\x00/mount"))


async def publish_outside_kubelet_dir(world: World) -> Attempt:
    return Attempt(lambda: publish(world, str(world.host / "sub")), [world.host / "sub" / "conf"])


async def publish_onto_symlink_to_outside(world: World) -> Attempt:
    link = world.pods / "pod-sym" / "mount"
    link.parent.mkdir()
    link.symlink_to(world.host)
    return Attempt(lambda: publish(world, str(link)), [link, world.host / "passwd"])


async def publish_through_symlinked_component(world: World) -> Attempt:
    (world.pods / "pod-mid").mkdir()
    (world.pods / "pod-mid" / "volumes").symlink_to(world.host)
    target = world.pods / "pod-mid" / "volumes" / "kubernetes.io~csi" / "mount"
    return Attempt(lambda: publish(world, str(target)), [world.pods / "pod-mid" / "volumes"])


async def publish_nul(world: World) -> Attempt:
    return Attempt(lambda: publish(world, f"{world.pods}/pod-nul/mo\x00unt"))


async def publish_5000_characters(world: World) -> Attempt:
    deep = str(world.pods) + ("/" + "d" * 99) * 50
    return Attempt(lambda: publish(world, deep))


async def publish_long_component(world: World) -> Attempt:
    return Attempt(lambda: publish(world, str(world.pods / "pod-long" / ("x" * 256))))


async def publish_without_access_type(world: World) -> Attempt:
    request = csi_pb2.NodePublishVolumeRequest(
        volume_id=world.volume.volume_id,
        target_path=str(world.pods / "pod-cap" / "mount"),
        volume_capability=csi_pb2.VolumeCapability(
            access_mode=csi_pb2.VolumeCapability.AccessMode(mode=MODE.SINGLE_NODE_WRITER)
        ),
        volume_context=world.volume.volume_context,
    )
    return Attempt(lambda: world.client.node.NodePublishVolume(request))


async def stats_of_root(world: World) -> Attempt:
    return Attempt(lambda: world.client.stats(world.volume.volume_id, "/"))


INVALID, NOT_FOUND, OK = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OK

CASES = [
    Case("unpublish a regular file", unpublish_regular_file, INVALID, "not a directory"),
    Case("unpublish a directory that was never published", unpublish_never_published_directory, OK),
    Case("unpublish another volume's target", unpublish_other_volumes_target, NOT_FOUND, "holds volume"),
    Case("unpublish /", unpublish_root, INVALID, "not below the kubelet's pods directory"),
    Case("unpublish the pods directory itself", unpublish_pods_directory, INVALID, "not below"),
    Case("unpublish a path that climbs out with ..", unpublish_climbing_out, INVALID, "'..'"),
    Case("unpublish a symlink to a mount outside", unpublish_symlink_to_covered_directory, INVALID, "symbolic link"),
    Case("unpublish through a symlinked component", unpublish_through_symlinked_component, INVALID, "symbolic link"),
    Case("unpublish a path with a NUL byte", unpublish_nul, INVALID, "NUL"),
    Case("publish outside the kubelet dir", publish_outside_kubelet_dir, INVALID, "not below"),
    Case("publish onto a symlink to a directory outside", publish_onto_symlink_to_outside, INVALID, "symbolic link"),
    Case("publish through a symlinked component", publish_through_symlinked_component, INVALID, "symbolic link"),
    Case("publish a path with a NUL byte", publish_nul, INVALID, "NUL"),
    Case("publish a 5000-character path", publish_5000_characters, INVALID, "the limit is 4095"),
    Case("publish a component longer than 255 bytes", publish_long_component, INVALID, "longer than 255"),
    Case(
        "publish a capability without access type",
        publish_without_access_type,
        INVALID,
        "access_type (mount or block) is required",
    ),
    Case("stats of / (a mount outside the kubelet dir)", stats_of_root, NOT_FOUND),
]


@pytest.fixture
async def world(mount_root: Path) -> AsyncIterator[World]:
    host = mount_root / "host"
    (host / "sub").mkdir(parents=True)
    (host / "emptydir").mkdir()
    (host / "covered").mkdir()
    (host / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (host / "sub" / "conf").write_text("setting=1\n")
    # A mount point on the "host", as /etc or /var/lib/docker can be: nothing may unmount or cover it.
    mount = ["mount", "-t", "tmpfs", "hostfs", str(host / "covered")]
    await asyncio.to_thread(subprocess.run, mount, check=True, timeout=10)
    (host / "covered" / "inside").write_text("host data")
    driver = start_driver(mount_root)
    try:
        async with CsiClient(driver.endpoint) as client:
            volume = await client.create_volume("pvc-mine", {})
            other = await client.create_volume("pvc-theirs", {})
            yield World(client, driver, pods_dir(mount_root), host, volume, other)
    finally:
        driver.stop()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_hostile_request_changes_nothing(world: World, case: Case) -> None:
    attempt = await case.setup(world)
    mounts, host, kept = mount_table(), listing(world.host), snapshot(attempt.keep)
    assert "missing" not in kept.values()

    code, details = await answer(attempt.call())

    assert (code, case.message in details) == (case.code, True), f"{code.name}: {details}"
    assert mount_table() == mounts
    assert listing(world.host) == host
    assert snapshot(attempt.keep) == kept
    assert world.driver.process.poll() is None


# -- a mount helper that does not mount where it was told ---------------------------------------------------------

NFS_CONTEXT = {"host": "10.0.33.133", "fsid": "bz8eisu7", "vers": "3"}


def nfs_driver(mount_root: Path, script: str) -> Driver:
    """The node plugin with ``--mounter nfs`` and a stand-in ``mount`` (no kernel NFS client here)."""
    bin_dir = mount_root / "bin"
    fake_command(bin_dir, "mount", script)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return start_driver(mount_root, "--mounter", "nfs", "--component", "node", env=env, name="nfs")


async def test_a_mount_that_lands_elsewhere_is_refused(mount_root: Path) -> None:
    """mount.nfs turns its mount point back into a path (realpath); if the target is swapped for a symlink in
    that moment, the mount lands elsewhere. The node sees that nothing is mounted at the target, says so, and
    records no publication; the log names where the mount went."""
    real_mount = shutil.which("mount")
    decoy = mount_root / "host-dir"
    decoy.mkdir()
    script = (
        'for last; do :; done\npath=$(readlink -f "$last")\n'
        f'mv "$path" "$path.moved" && ln -s {decoy} "$path"\nexec {real_mount} -t tmpfs tmpfs "$path"\n'
    )
    driver = nfs_driver(mount_root, script)
    target = driver.pods / "pod" / "mount"
    try:
        async with CsiClient(driver.endpoint) as csi:
            volume = csi_pb2.Volume(volume_id="cfs-swapped", volume_context=NFS_CONTEXT)
            code, details = await answer(csi.publish(volume, str(target)))
            assert (code, details) == (
                grpc.StatusCode.INTERNAL,
                f"the mount did not show at {target} as asked; rolled back",
            )
            assert (await answer(csi.stats(volume.volume_id, str(target))))[0] == grpc.StatusCode.NOT_FOUND
        assert f"new mounts elsewhere: ['{decoy}']" in driver.log_text()
    finally:
        driver.stop()


async def test_a_writable_mount_where_read_only_was_asked_is_rolled_back(mount_root: Path) -> None:
    real_mount = shutil.which("mount")
    driver = nfs_driver(mount_root, f'for last; do :; done\nexec {real_mount} -t tmpfs tmpfs "$last"\n')
    target = driver.pods / "pod" / "mount"
    try:
        mounts = mount_table()
        async with CsiClient(driver.endpoint) as csi:
            volume = csi_pb2.Volume(volume_id="cfs-rw", volume_context=NFS_CONTEXT)
            code, _ = await answer(csi.publish(volume, str(target), readonly=True))
        assert code == grpc.StatusCode.INTERNAL
        assert mount_table() == mounts
        assert not target.exists()  # created by this call, removed again
    finally:
        driver.stop()
