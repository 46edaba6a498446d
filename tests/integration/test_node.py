"""The node plugin over a real unix socket, with real bind mounts in a private tmpfs."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from cfs_csi.client import CsiClient, mount_capability
from cfs_csi.csi import csi_pb2
from cfs_csi.mount.mountinfo import read_mount_table
from tests.conftest import Driver, fake_command, pods_dir, start_driver


def backing_dir(driver: Driver, volume: csi_pb2.Volume) -> Path:
    context = volume.volume_context
    return driver.state_dir / "local" / "exports" / context["host"] / context["fsid"]


async def rpc_code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    code: grpc.StatusCode = error.value.code()
    return code


async def test_publish_write_stats_unpublish(client: CsiClient, driver: Driver, mount_root: Path) -> None:
    volume = await client.create_volume("pvc-1", {"vers": "3"})
    target = pods_dir(mount_root) / "uid" / "volumes" / "pvc-1" / "mount"
    await client.publish(volume, str(target))
    entry = read_mount_table().at(str(target))
    assert entry is not None and not entry.read_only
    (target / "hello.txt").write_text("through the mount")
    assert (backing_dir(driver, volume) / "hello.txt").read_text() == "through the mount"
    assert "mounting 127.0.0.1:/" + volume.volume_context["fsid"] + "/ at" in driver.log_text()

    stats = await client.stats(volume.volume_id, str(target))
    units = {usage.unit: usage for usage in stats.usage}
    assert units[csi_pb2.VolumeUsage.BYTES].total > 0
    assert units[csi_pb2.VolumeUsage.BYTES].used > 0
    assert units[csi_pb2.VolumeUsage.INODES].used >= 1
    assert not stats.volume_condition.abnormal

    await client.publish(volume, str(target))  # idempotent
    assert len([e for e in read_mount_table().entries if e.mount_point == str(target)]) == 1

    await client.unpublish(volume.volume_id, str(target))
    assert not target.exists()
    assert read_mount_table().at(str(target)) is None
    assert (backing_dir(driver, volume) / "hello.txt").exists()  # data untouched
    await client.unpublish(volume.volume_id, str(target))  # idempotent
    assert await rpc_code(client.stats(volume.volume_id, str(target))) == grpc.StatusCode.NOT_FOUND


async def test_other_source_at_same_target_is_already_exists(client: CsiClient, mount_root: Path) -> None:
    first = await client.create_volume("pvc-a", {})
    second = await client.create_volume("pvc-b", {})
    target = pods_dir(mount_root) / "t"
    await client.publish(first, str(target))
    assert await rpc_code(client.publish(second, str(target))) == grpc.StatusCode.ALREADY_EXISTS
    # Same source but read-only when it is mounted read-write: incompatible too.
    assert await rpc_code(client.publish(first, str(target), readonly=True)) == grpc.StatusCode.ALREADY_EXISTS


async def test_read_only_publish(client: CsiClient, mount_root: Path) -> None:
    volume = await client.create_volume("pvc-ro", {})
    target = pods_dir(mount_root) / "ro"
    await client.publish(volume, str(target), readonly=True)
    entry = read_mount_table().at(str(target))
    assert entry is not None and entry.read_only
    with pytest.raises(OSError) as error:
        (target / "x").write_text("nope")
    assert error.value.errno == errno.EROFS
    await client.publish(volume, str(target), readonly=True)


async def test_subdirectory_volume_mounts_only_its_directory(
    client: CsiClient, driver: Driver, mount_root: Path
) -> None:
    volume = await client.create_volume("shared", {})
    sub = backing_dir(driver, volume) / "default-cfs-share-1-pvc-651c"
    sub.mkdir()
    (backing_dir(driver, volume) / "neighbour.txt").write_text("other tenant")
    shared = csi_pb2.Volume(volume_id="shared-handle", volume_context={**volume.volume_context, "path": sub.name})
    target = pods_dir(mount_root) / "sub"
    await client.publish(shared, str(target))
    (target / "mine.txt").write_text("x")
    assert (sub / "mine.txt").exists()
    assert not (target / "neighbour.txt").exists()

    missing = csi_pb2.Volume(volume_id="gone", volume_context={**volume.volume_context, "path": "no-such-dir"})
    assert await rpc_code(client.publish(missing, str(pods_dir(mount_root) / "t2"))) == grpc.StatusCode.NOT_FOUND
    escape = csi_pb2.Volume(volume_id="evil", volume_context={**volume.volume_context, "path": "../.."})
    assert await rpc_code(client.publish(escape, str(pods_dir(mount_root) / "t3"))) == grpc.StatusCode.INVALID_ARGUMENT


async def test_stats_refuses_the_wrong_volume_or_path(client: CsiClient, mount_root: Path) -> None:
    volume = await client.create_volume("pvc-s", {})
    target = pods_dir(mount_root) / "s"
    await client.publish(volume, str(target))
    assert await rpc_code(client.stats("cfs-other", str(target))) == grpc.StatusCode.NOT_FOUND
    assert (
        await rpc_code(client.stats(volume.volume_id, str(pods_dir(mount_root) / "nowhere")))
        == grpc.StatusCode.NOT_FOUND
    )
    assert await rpc_code(client.stats(volume.volume_id, "relative/path")) == grpc.StatusCode.NOT_FOUND


async def test_stats_reports_a_vanished_mount_as_abnormal(client: CsiClient, mount_root: Path) -> None:
    volume = await client.create_volume("pvc-v", {})
    target = pods_dir(mount_root) / "v"
    await client.publish(volume, str(target))
    # The mount disappears behind the plugin's back (a node-level cleanup, a crash of the NFS client).
    await asyncio.to_thread(subprocess.run, ["umount", str(target)], check=True, timeout=30)
    stats = await client.stats(volume.volume_id, str(target))
    assert stats.volume_condition.abnormal and "nothing is mounted" in stats.volume_condition.message


async def test_unpublish_keeps_data_written_into_an_unmounted_target(client: CsiClient, mount_root: Path) -> None:
    volume = await client.create_volume("pvc-bare", {})
    target = pods_dir(mount_root) / "bare"
    await client.publish(volume, str(target))
    # The mount goes away behind the plugin's back, and something writes into the bare directory.
    await asyncio.to_thread(subprocess.run, ["umount", str(target)], check=True, timeout=30)
    (target / "precious").write_text("keep me")
    await client.unpublish(volume.volume_id, str(target))
    assert (target / "precious").read_text() == "keep me"


async def test_missing_fields_are_invalid(client: CsiClient, mount_root: Path) -> None:
    volume = await client.create_volume("pvc-f", {})
    no_cap = csi_pb2.NodePublishVolumeRequest(
        volume_id=volume.volume_id, target_path=str(pods_dir(mount_root) / "x"), volume_context=volume.volume_context
    )
    assert await rpc_code(client.node.NodePublishVolume(no_cap)) == grpc.StatusCode.INVALID_ARGUMENT
    no_host = csi_pb2.NodePublishVolumeRequest(
        volume_id=volume.volume_id, target_path=str(pods_dir(mount_root) / "x"), volume_capability=mount_capability()
    )
    assert await rpc_code(client.node.NodePublishVolume(no_host)) == grpc.StatusCode.INVALID_ARGUMENT
    relative = csi_pb2.NodeUnpublishVolumeRequest(volume_id="v", target_path="rel")
    assert await rpc_code(client.node.NodeUnpublishVolume(relative)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_node_info_and_capabilities(client: CsiClient) -> None:
    info = await client.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest())
    assert info.node_id == "test-node"
    caps = await client.node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest())
    kinds = {cap.rpc.type for cap in caps.capabilities}
    rpc = csi_pb2.NodeServiceCapability.RPC
    assert kinds == {rpc.GET_VOLUME_STATS, rpc.VOLUME_CONDITION, rpc.SINGLE_NODE_MULTI_WRITER, rpc.EXPAND_VOLUME}


async def test_single_writer_volume_is_refused_at_a_second_target(client: CsiClient, mount_root: Path) -> None:
    volume = await client.create_volume("pvc-one", {})
    mode = csi_pb2.VolumeCapability.AccessMode
    single = mount_capability(mode.SINGLE_NODE_SINGLE_WRITER)

    def publish(target: Path, capability: csi_pb2.VolumeCapability) -> object:
        return client.node.NodePublishVolume(
            csi_pb2.NodePublishVolumeRequest(
                volume_id=volume.volume_id, target_path=str(target), volume_capability=capability,
                volume_context=volume.volume_context,
            )
        )  # fmt: skip

    await publish(pods_dir(mount_root) / "one", single)
    await publish(pods_dir(mount_root) / "one", single)  # the same target again is fine
    assert await rpc_code(publish(pods_dir(mount_root) / "two", single)) == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        await rpc_code(publish(pods_dir(mount_root) / "two", mount_capability())) == grpc.StatusCode.FAILED_PRECONDITION
    )
    await client.unpublish(volume.volume_id, str(pods_dir(mount_root) / "one"))
    await publish(pods_dir(mount_root) / "two", single)  # free again once the first target is gone


NFS_CONTEXT_V3 = {"host": "10.0.33.133", "fsid": "bz8eisu7", "vers": "3"}


@pytest.mark.parametrize(
    ("context", "flags", "readonly", "argv"),
    [
        (NFS_CONTEXT_V3, (), False, "-t nfs -o vers=3,noresvport,nolock,proto=tcp 10.0.33.133:/bz8eisu7/"),
        ({"host": "10.0.33.133", "vers": "4"}, ("hard",), True, "-t nfs -o vers=4,noresvport,hard,ro 10.0.33.133:/"),
    ],
)
async def test_nfs_mounter_runs_mount_with_the_decided_source_and_options(
    mount_root: Path, context: dict[str, str], flags: tuple[str, ...], readonly: bool, argv: str
) -> None:
    """No kernel NFS client here: a recording ``mount`` stands in for the last step only (it records its arguments
    and where its last one leads, then mounts a tmpfs there, read-only if asked)."""
    real_mount = shutil.which("mount")
    bin_dir = mount_root / "bin"
    record = mount_root / "mount.args"
    fake_command(bin_dir, "mount", (
        f'for last; do :; done\necho "$@" >> {record}\nreadlink "$last" >> {record}\n'
        f'case "$*" in *,ro\\ *) set -- -o ro ;; *) set -- ;; esac\n'
        f'exec {real_mount} -t tmpfs "$@" tmpfs "$last"\n'
    ))  # fmt: skip
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    driver = start_driver(mount_root, "--mounter", "nfs", "--component", "node", env=env, name="nfs")
    try:
        async with CsiClient(driver.endpoint) as csi:
            target = pods_dir(mount_root) / "nfs-target"
            volume = csi_pb2.Volume(volume_id="cfs-3esjn2lz", volume_context=context)
            await csi.publish(volume, str(target), readonly=readonly, mount_flags=flags)
        # The target is handed over as an open handle of the directory, never as a path that could be redirected.
        arguments, leads_to = record.read_text().splitlines()
        assert re.fullmatch(rf"--no-canonicalize {re.escape(argv)} /proc/self/fd/\d+", arguments)
        assert leads_to == str(target)
        entry = read_mount_table().at(str(target))
        assert entry is not None and entry.read_only == readonly
    finally:
        driver.stop()


def _nfs_stand_ins(mount_root: Path) -> tuple[Path, Path, dict[str, str]]:
    """A recording ``mount.nfs`` (mounts a tmpfs at its second argument, read-only if asked), a ``mount`` on PATH
    that records and fails (mount(8) must not be run), a ``umount`` on PATH that records and unmounts. Returns
    the helper, the record file and the environment."""
    real_mount, real_umount = shutil.which("mount"), shutil.which("umount")
    bin_dir, helper_dir = mount_root / "bin", mount_root / "helpers"
    calls = mount_root / "calls"
    helper = fake_command(helper_dir, "mount.nfs", (
        f'echo "mount.nfs $*" >> {calls}\nreadlink "$2" >> {calls}\n'
        f'case "$*" in *,ro|*,ro,*) set -- "$2" -o ro ;; *) set -- "$2" ;; esac\n'
        f'target="$1"; shift\nexec {real_mount} -t tmpfs "$@" tmpfs "$target"\n'
    ))  # fmt: skip
    fake_command(bin_dir, "mount", f'echo "mount $*" >> {calls}\nexit 99\n')
    fake_command(bin_dir, "umount", f'echo "umount $*" >> {calls}\nexec {real_umount} "$@"\n')
    return helper, calls, {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("context", "readonly", "argv", "by_command"),
    [
        (NFS_CONTEXT_V3, False, "10.0.33.133:/bz8eisu7/ PROC -n -o vers=3,noresvport,nolock,proto=tcp", True),
        ({"host": "10.0.33.133", "vers": "4"}, True, "10.0.33.133:/ PROC -n -o vers=4,noresvport,ro", False),
    ],
)
async def test_nfs_mounter_runs_the_mount_helper_itself_and_unmounts_v4_by_syscall(
    mount_root: Path, context: dict[str, str], readonly: bool, argv: str, by_command: bool
) -> None:
    """Issue 15: ``mount.nfs`` is run directly with the target's handle (mount(8) is never run), and a v4 mount is
    unmounted without ``umount(8)`` while a v3 one keeps it (its ``umount.nfs`` tells the server's mountd)."""
    helper, calls, env = _nfs_stand_ins(mount_root)
    driver = start_driver(
        mount_root, "--mounter", "nfs", "--nfs-mount-helper", str(helper), "--component", "node", env=env, name="h"
    )
    try:
        target = pods_dir(mount_root) / "helper-target"
        volume = csi_pb2.Volume(volume_id="cfs-3esjn2lz", volume_context=context)
        async with CsiClient(driver.endpoint) as csi:
            await csi.publish(volume, str(target), readonly=readonly)
            entry = read_mount_table().at(str(target))
            assert entry is not None and entry.read_only == readonly
            arguments, leads_to = calls.read_text().splitlines()
            assert re.fullmatch(re.escape(f"mount.nfs {argv}").replace("PROC", r"/proc/self/fd/\d+"), arguments)
            assert leads_to == str(target)
            await csi.unpublish(volume.volume_id, str(target))
        assert read_mount_table().at(str(target)) is None and not target.exists()
        unmounts = [line for line in calls.read_text().splitlines() if line.startswith("umount ")]
        assert len(unmounts) == (1 if by_command else 0)
        assert f"NFS mounts run {helper}" in driver.log_text()
    finally:
        driver.stop()


async def test_a_record_without_nfs_version_is_unmounted_by_the_command(mount_root: Path) -> None:
    """A record written by a plugin from before the version was kept: the version is unknown, so umount(8) runs
    (it may be a v3 mount)."""
    helper, calls, env = _nfs_stand_ins(mount_root)
    driver = start_driver(
        mount_root, "--mounter", "nfs", "--nfs-mount-helper", str(helper), "--component", "node", env=env, name="o"
    )
    try:
        target = pods_dir(mount_root) / "old-record"
        volume = csi_pb2.Volume(volume_id="cfs-old", volume_context={"host": "10.0.33.133", "vers": "4"})
        async with CsiClient(driver.endpoint) as csi:
            await csi.publish(volume, str(target))
            (record,) = [p for p in driver.state_dir.rglob("*.json") if "cfs-old" in p.read_text()]
            fields = json.loads(record.read_text())
            assert fields.pop("nfs_version") == "4"
            record.write_text(json.dumps(fields))
            await csi.unpublish(volume.volume_id, str(target))
        assert read_mount_table().at(str(target)) is None
        assert [line for line in calls.read_text().splitlines() if line.startswith("umount ")] != []
    finally:
        driver.stop()


async def test_a_hung_mount_is_killed_and_reported_as_deadline_exceeded(mount_root: Path) -> None:
    bin_dir = mount_root / "bin"
    hang = _unique_hang()
    fake_command(bin_dir, "mount", f"exec {hang}\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    driver = start_driver(
        mount_root, "--mounter", "nfs", "--component", "node", "--mount-timeout", "1", env=env, name="hung"
    )
    try:
        async with CsiClient(driver.endpoint) as csi:
            volume = csi_pb2.Volume(volume_id="cfs-hung", volume_context=NFS_CONTEXT_V3)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await csi.publish(volume, str(pods_dir(mount_root) / "hung-target"))
            assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "killed" in (error.value.details() or "")
        assert _running(hang) == []
    finally:
        driver.stop()


@pytest.mark.parametrize(
    ("plain", "forced", "calls"),
    [
        # umount hangs until killed; umount -f then works.
        ("exec {hang}", 'exec {umount} "$2"', ["plain", "-f"]),
        # umount says the handle is stale and -f cannot help either: the mount is detached.
        (
            "echo 'umount.nfs: Stale file handle' >&2; exit 32",
            "echo 'device is busy' >&2; exit 32",
            ["plain", "-f", "-l"],
        ),
    ],
)
async def test_a_mount_whose_server_is_gone_is_forced_then_detached(
    mount_root: Path, plain: str, forced: str, calls: list[str]
) -> None:
    """No NFS server to lose here: ``mount`` makes a real tmpfs mount, and ``umount`` behaves as with a dead server
    until it is asked to force (``-f``, per case) or to detach (``-l``, done for real)."""
    real_mount, real_umount = shutil.which("mount"), shutil.which("umount")
    bin_dir, record = mount_root / "bin", mount_root / "umount.calls"
    hang = _unique_hang()
    fake_command(bin_dir, "mount", f'for last; do :; done\nexec {real_mount} -t tmpfs tmpfs "$last"\n')
    fake_command(bin_dir, "umount", (
        f'[ "$1" = --no-canonicalize ] || exit 99\nshift\n'
        f'case "$1" in\n'
        f'  -l) echo -l >> {record}; exec {real_umount} -l "$2" ;;\n'
        f'  -f) echo -f >> {record}; {forced.format(umount=real_umount)} ;;\n'
        f'  *) echo plain >> {record}; {plain.format(hang=hang)} ;;\n'
        f'esac\n'
    ))  # fmt: skip
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    driver = start_driver(mount_root, "--mounter", "nfs", "--component", "node", "--unmount-timeout", "1",
                          env=env, name="gone")  # fmt: skip
    target = pods_dir(mount_root) / "gone-target"
    try:
        async with CsiClient(driver.endpoint) as csi:
            volume = csi_pb2.Volume(volume_id="cfs-gone", volume_context=NFS_CONTEXT_V3)
            await csi.publish(volume, str(target))
            assert read_mount_table().at(str(target)) is not None
            await csi.unpublish(volume.volume_id, str(target))
        assert record.read_text().split() == calls
        assert read_mount_table().at(str(target)) is None and not target.exists()
        assert _running(hang) == []
    finally:
        driver.stop()


async def test_a_busy_mount_is_not_forced(mount_root: Path) -> None:
    """A failure that is not a lost server (a process holds the mount) is reported, never forced or detached."""
    real_mount = shutil.which("mount")
    bin_dir, record = mount_root / "bin", mount_root / "umount.calls"
    fake_command(bin_dir, "mount", f'for last; do :; done\nexec {real_mount} -t tmpfs tmpfs "$last"\n')
    fake_command(bin_dir, "umount", f'echo "$@" >> {record}; echo "umount: $2: target is busy." >&2; exit 32\n')
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    driver = start_driver(mount_root, "--mounter", "nfs", "--component", "node", env=env, name="busy-umount")
    target = pods_dir(mount_root) / "busy-umount-target"
    try:
        async with CsiClient(driver.endpoint) as csi:
            volume = csi_pb2.Volume(volume_id="cfs-held", volume_context=NFS_CONTEXT_V3)
            await csi.publish(volume, str(target))
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await csi.unpublish(volume.volume_id, str(target))
            assert error.value.code() == grpc.StatusCode.INTERNAL
            assert error.value.details() == f"umount {target} failed: umount: {target}: target is busy."
        # umount is given the target's name below a handle of its parent, and nothing else.
        assert re.fullmatch(r"--no-canonicalize /proc/self/fd/\d+/busy-umount-target", record.read_text().strip())
        assert read_mount_table().at(str(target)) is not None
    finally:
        driver.stop()  # the mount_root fixture unmounts what is left


async def test_concurrent_calls_on_one_volume_are_aborted(mount_root: Path) -> None:
    bin_dir, real_mount = mount_root / "bin", shutil.which("mount")
    fake_command(bin_dir, "mount", f'sleep 2\nfor last; do :; done\nexec {real_mount} -t tmpfs tmpfs "$last"\n')
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    driver = start_driver(mount_root, "--mounter", "nfs", "--component", "node", env=env, name="busy")
    try:
        async with CsiClient(driver.endpoint) as csi:
            volume = csi_pb2.Volume(volume_id="cfs-busy", volume_context=NFS_CONTEXT_V3)
            other = csi_pb2.Volume(volume_id="cfs-free", volume_context=NFS_CONTEXT_V3)
            target = str(pods_dir(mount_root) / "busy-target")
            results = await asyncio.gather(
                csi.publish(volume, target),
                _later(csi.publish(volume, target)),
                _later(csi.unpublish(volume.volume_id, target)),
                _later(csi.publish(other, str(pods_dir(mount_root) / "free-target"))),
                return_exceptions=True,
            )
        assert results[0] is None and results[3] is None
        for result in results[1:3]:
            assert isinstance(result, grpc.aio.AioRpcError) and result.code() == grpc.StatusCode.ABORTED
    finally:
        driver.stop()


async def _later(call: object) -> object:
    await asyncio.sleep(0.5)
    return await call  # type: ignore[misc]


def _unique_hang() -> str:
    """A command that hangs, told apart from every other test's (other test runs may hang commands at once)."""
    return f"sleep 317.{secrets.randbelow(10**6):06d}"


def _running(command: str) -> list[str]:
    """Pids of processes whose command line is ``command``."""
    return [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) == command]


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
