"""Shared volumes' stats against their directory quota, and NodeExpandVolume, over real gRPC with real bind mounts
(issue 16): total = the quota, used = what is below the target; hostile trees inside one volume break nothing else.

The node runs the bind mounter over ``<root>/exports``: a volume ``host:/<fsid>/<path>`` is the directory
``exports/<host>/<fsid>/<path>``, so one "share" directory holds several claims' directories, as on CFS.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cfs_csi.client import CsiClient, mount_capability
from cfs_csi.csi import csi_pb2
from cfs_csi.mount.usage import QUOTA_ATTRIBUTE
from cfs_csi.volume.quota import GIB
from tests import faultyfs
from tests.conftest import Driver, deep, pods_dir, start_driver, stop_gracefully

HOST = "10.9.0.2"
SHARE = "sharefsid"
MIB = 1024**2
BYTES, INODES = csi_pb2.VolumeUsage.BYTES, csi_pb2.VolumeUsage.INODES


def exports(root: Path) -> Path:
    return root / "exports"


def node_driver(root: Path, name: str = "node") -> Driver:
    return start_driver(
        root, "--component", "node", "--mounter", "bind", "--export-root", str(exports(root)), name=name
    )  # fmt: skip


def shared(root: Path, directory: str, quota: int | None, share: str = SHARE) -> csi_pb2.Volume:
    """A shared volume as the sub-directory provisioner writes its PV (its directory made on the "share")."""
    (exports(root) / HOST / share / directory).mkdir(parents=True, exist_ok=True)
    context = {"host": HOST, "fsid": share, "path": directory, "vers": "3"}
    if quota is not None:
        context[QUOTA_ATTRIBUTE] = str(quota)
    return csi_pb2.Volume(volume_id=f"{share}:{directory}", volume_context=context)


def target(root: Path, name: str) -> Path:
    return pods_dir(root) / f"uid-{name}" / "volumes" / "kubernetes.io~csi" / name / "mount"


def usage(answer: csi_pb2.NodeGetVolumeStatsResponse) -> dict[int, csi_pb2.VolumeUsage]:
    return {u.unit: u for u in answer.usage}


def expand(volume_id: str, path: Path | str, required: int = 0, limit: int = 0) -> csi_pb2.NodeExpandVolumeRequest:
    return csi_pb2.NodeExpandVolumeRequest(
        volume_id=volume_id, volume_path=str(path),
        capacity_range=csi_pb2.CapacityRange(required_bytes=required, limit_bytes=limit),
    )  # fmt: skip


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    code: grpc.StatusCode = error.value.code()
    return code


@pytest.fixture
async def csi(mount_root: Path) -> AsyncIterator[CsiClient]:
    driver = node_driver(mount_root)
    try:
        async with CsiClient(driver.endpoint) as client:
            yield client
    finally:
        stop_gracefully(driver)


async def test_stats_report_the_quota_and_what_is_used_below_the_target(csi: CsiClient, mount_root: Path) -> None:
    volume = shared(mount_root, "default-data-pvc-1", 10 * GIB)
    shared(mount_root, "default-data-pvc-2", 10 * GIB)  # another claim's directory on the same share
    (exports(mount_root) / HOST / SHARE / "default-data-pvc-2" / "big").write_bytes(b"n" * 40 * MIB)
    await csi.publish(volume, str(target(mount_root, "a")))
    written = 3 * MIB + 5
    (target(mount_root, "a") / "data").write_bytes(b"x" * written)
    answer = await csi.stats(volume.volume_id, str(target(mount_root, "a")))
    assert not answer.volume_condition.abnormal and "quota" in answer.volume_condition.message
    fs = os.statvfs(target(mount_root, "a"))
    got = usage(answer)
    assert got[BYTES].total == 10 * GIB
    assert written <= got[BYTES].used < written + MIB  # this claim's bytes, not the neighbour's 40 MiB
    assert got[BYTES].available == min(10 * GIB - got[BYTES].used, fs.f_bavail * fs.f_frsize)
    assert got[INODES].used == 2  # the directory and its file
    assert got[INODES].total == fs.f_files
    # A shared volume published without a quota (the class's quotas are off) and a dedicated volume: the whole
    # file system's figures, as before quotas.
    await csi.publish(neighbour_without := shared(mount_root, "default-data-pvc-3", None), str(target(mount_root, "b")))
    dedicated = csi_pb2.Volume(volume_id="cfs-dedicated", volume_context={"host": HOST, "fsid": "dedicated"})
    (exports(mount_root) / HOST / "dedicated").mkdir()
    await csi.publish(dedicated, str(target(mount_root, "c")))
    for vol, name in ((neighbour_without, "b"), (dedicated, "c")):
        answer = await csi.stats(vol.volume_id, str(target(mount_root, name)))
        assert usage(answer)[BYTES].total == fs.f_blocks * fs.f_frsize
        assert answer.volume_condition.message == "mounted"


async def test_node_expand_raises_the_quota_of_every_publication_here(csi: CsiClient, mount_root: Path) -> None:
    volume = shared(mount_root, "default-data-pvc-1", 10 * GIB)
    first, second, third = (target(mount_root, name) for name in ("a", "b", "c"))
    await csi.publish(volume, str(first))
    await csi.publish(volume, str(second))
    answer = await csi.node.NodeExpandVolume(expand(volume.volume_id, first, 20 * GIB))
    assert answer.capacity_bytes == 20 * GIB
    for path in (first, second):  # every publication of the volume on this node
        assert usage(await csi.stats(volume.volume_id, str(path)))[BYTES].total == 20 * GIB
    # Repeated: the same answer. Smaller than recorded: the recorded quota stays. No size: as recorded.
    for required in (20 * GIB, 15 * GIB, 0):
        answer = await csi.node.NodeExpandVolume(expand(volume.volume_id, second, required))
        assert answer.capacity_bytes == 20 * GIB
    assert usage(await csi.stats(volume.volume_id, str(first)))[BYTES].total == 20 * GIB
    # A new pod on this node publishes the volume with its PV's attributes (the quota at creation): the larger
    # quota this node was told of stands.
    await csi.publish(volume, str(third))
    assert usage(await csi.stats(volume.volume_id, str(third)))[BYTES].total == 20 * GIB
    # Limits: as the controller answers.
    code = await code_of(csi.node.NodeExpandVolume(expand(volume.volume_id, first, 30 * GIB + 1, 30 * GIB)))
    assert code == grpc.StatusCode.OUT_OF_RANGE


async def test_node_expand_answers_as_the_spec_asks(csi: CsiClient, mount_root: Path) -> None:
    volume = shared(mount_root, "default-data-pvc-1", 10 * GIB)
    other = shared(mount_root, "default-data-pvc-2", 10 * GIB)
    await csi.publish(volume, str(target(mount_root, "a")))
    cases = [
        (expand("", target(mount_root, "a"), 20 * GIB), grpc.StatusCode.INVALID_ARGUMENT),
        (expand(volume.volume_id, "", 20 * GIB), grpc.StatusCode.INVALID_ARGUMENT),
        (expand(volume.volume_id, "some/path", 20 * GIB), grpc.StatusCode.NOT_FOUND),
        (expand(volume.volume_id, "/etc", 20 * GIB), grpc.StatusCode.NOT_FOUND),
        (expand(volume.volume_id, target(mount_root, "nothing"), 20 * GIB), grpc.StatusCode.NOT_FOUND),
        (expand(other.volume_id, target(mount_root, "a"), 20 * GIB), grpc.StatusCode.NOT_FOUND),  # another's
    ]
    for request, code in cases:
        assert await code_of(csi.node.NodeExpandVolume(request)) == code, request
    block = csi_pb2.VolumeCapability(block=csi_pb2.VolumeCapability.BlockVolume())
    request = expand(volume.volume_id, target(mount_root, "a"), 20 * GIB)
    request.volume_capability.CopyFrom(block)
    assert await code_of(csi.node.NodeExpandVolume(request)) == grpc.StatusCode.INVALID_ARGUMENT
    # Nothing changed by the refused calls.
    assert usage(await csi.stats(volume.volume_id, str(target(mount_root, "a"))))[BYTES].total == 10 * GIB
    # A dedicated volume: nothing on the node changes; no capacity is claimed.
    dedicated = csi_pb2.Volume(volume_id="cfs-dedicated", volume_context={"host": HOST, "fsid": "dedicated"})
    (exports(mount_root) / HOST / "dedicated").mkdir()
    await csi.publish(dedicated, str(target(mount_root, "d")))
    answer = await csi.node.NodeExpandVolume(expand(dedicated.volume_id, target(mount_root, "d"), 20 * GIB))
    assert answer.capacity_bytes == 0
    request = expand(volume.volume_id, target(mount_root, "a"), 20 * GIB)
    request.volume_capability.CopyFrom(mount_capability())
    assert (await csi.node.NodeExpandVolume(request)).capacity_bytes == 20 * GIB


async def test_the_expanded_quota_survives_a_restart(mount_root: Path) -> None:
    volume = shared(mount_root, "default-data-pvc-1", 10 * GIB)
    driver = node_driver(mount_root)
    try:
        async with CsiClient(driver.endpoint) as csi:
            await csi.publish(volume, str(target(mount_root, "a")))
            await csi.node.NodeExpandVolume(expand(volume.volume_id, target(mount_root, "a"), 30 * GIB))
    finally:
        stop_gracefully(driver)
    driver = node_driver(mount_root)
    try:
        async with CsiClient(driver.endpoint) as csi:
            answer = await csi.stats(volume.volume_id, str(target(mount_root, "a")))
            assert usage(answer)[BYTES].total == 30 * GIB
            await csi.unpublish(volume.volume_id, str(target(mount_root, "a")))
    finally:
        stop_gracefully(driver)


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, timeout=30)


async def test_hostile_trees_do_not_break_the_stats_of_other_volumes(csi: CsiClient, mount_root: Path) -> None:
    outside = mount_root / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s" * 30 * MIB)
    names = ("deep", "links", "mounted", "quiet")
    volumes = {name: shared(mount_root, f"default-{name}", 10 * GIB) for name in names}
    await asyncio.gather(*(csi.publish(volumes[name], str(target(mount_root, name))) for name in names))
    # A pod nests directories far deeper than the walk goes (more than PATH_MAX, too).
    deep(target(mount_root, "deep"), 400)
    # Another plants symlink loops, symlinks out of its volume, a FIFO and a socket.
    links = target(mount_root, "links")
    (links / "loop").symlink_to(".")
    (links / "up").symlink_to("../../../../../..")
    (links / "out").symlink_to(outside)
    (links / "secret").symlink_to(outside / "secret")
    os.mkfifo(links / "fifo")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(links / "sock"))
    # Something is mounted inside a third (mount propagation): it is not this volume's content.
    mounted = target(mount_root, "mounted")
    (mounted / "mnt").mkdir()
    await asyncio.to_thread(run, ["mount", "--bind", str(outside), str(mounted / "mnt")])
    try:
        (target(mount_root, "quiet") / "data").write_bytes(b"q" * 2 * MIB)
        answers = await asyncio.gather(*(csi.stats(volumes[n].volume_id, str(target(mount_root, n))) for n in names))
        by_name = dict(zip(names, answers, strict=True))
        fs = os.statvfs(mount_root)
        # Too deep: no figure is made up; the file system's figures, and the message says why.
        deep_answer = by_name["deep"]
        assert not deep_answer.volume_condition.abnormal
        assert (
            "unknown" in deep_answer.volume_condition.message and "deeper than" in deep_answer.volume_condition.message
        )
        assert usage(deep_answer)[BYTES].total == fs.f_blocks * fs.f_frsize
        # Links are counted as links; nothing they point to is.
        got = usage(by_name["links"])
        assert got[BYTES].total == 10 * GIB and got[BYTES].used < MIB and got[INODES].used == 7
        # The mount inside is not entered.
        got = usage(by_name["mounted"])
        assert got[BYTES].total == 10 * GIB and got[BYTES].used < MIB and got[INODES].used == 2
        # And the quiet neighbour is reported as it should be.
        got = usage(by_name["quiet"])
        assert got[BYTES].total == 10 * GIB and 2 * MIB <= got[BYTES].used < 3 * MIB
    finally:
        await asyncio.to_thread(run, ["umount", str(mounted / "mnt")])


HUNG = [f"hung{i}" for i in range(5)]
HEALTHY = [f"ok{i}" for i in range(5)]


async def test_hung_quota_volumes_do_not_slow_the_others(mount_root: Path) -> None:
    """A hung server's shared volumes answer abnormal, and healthy shared volumes still get their quota figures."""
    running = faultyfs.start(str(exports(mount_root) / HOST), str(mount_root / "faulty.sock"), HUNG + HEALTHY)
    driver = start_driver(
        mount_root, "--component", "node", "--mounter", "bind", "--export-root", str(exports(mount_root)),
        "--stats-timeout", "1",
    )  # fmt: skip
    try:
        async with CsiClient(driver.endpoint) as csi:

            def volume(name: str) -> csi_pb2.Volume:
                context = {"host": HOST, "fsid": name, "vers": "3", QUOTA_ATTRIBUTE: str(10 * GIB)}
                return csi_pb2.Volume(volume_id=f"{name}:claim", volume_context=context)

            await asyncio.gather(*(csi.publish(volume(n), str(target(mount_root, n))) for n in HUNG + HEALTHY))
            for name in HUNG:
                running.set(name, "hang")
            for _ in range(3):
                hung = await asyncio.gather(*(csi.stats(f"{n}:claim", str(target(mount_root, n))) for n in HUNG))
                assert all(answer.volume_condition.abnormal for answer in hung)
            healthy = await asyncio.gather(*(csi.stats(f"{n}:claim", str(target(mount_root, n))) for n in HEALTHY))
            for answer in healthy:
                assert not answer.volume_condition.abnormal, answer.volume_condition.message
                assert usage(answer)[BYTES].total == 10 * GIB
                assert usage(answer)[INODES].used == 1  # the volume's empty directory
            for name in HUNG:
                running.set(name, "ok")
    finally:
        stop_gracefully(driver)
        running.stop()
