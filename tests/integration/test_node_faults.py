"""The node plugin when the file server hangs, fails, dies or changes under it (issue 12).

The server is :mod:`tests.faultyfs`, a FUSE file system whose directories can be made to hang, fail with ESTALE
or EIO, be exported anew, or die, on command. It is mounted at ``<export root>/<host>``, so each of its
directories is a volume's export and the plugin's bind mount of it at a target inherits its behaviour: what the
kubelet's target shows is the misbehaving file system. Where the ``mount``/``umount`` command itself must
misbehave, a stand-in on PATH wraps the real one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cfs_csi.client import CsiClient, mount_capability
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.published import Publication, PublishedVolumes
from cfs_csi.mount.mountinfo import read_mount_table
from tests import faultyfs
from tests.conftest import Driver, fake_command, pods_dir, start_driver, stop_gracefully

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


# -- helpers ---------------------------------------------------------------------------------------------------


def publish_request(vol: csi_pb2.Volume, path: Path) -> csi_pb2.NodePublishVolumeRequest:
    return csi_pb2.NodePublishVolumeRequest(
        volume_id=vol.volume_id, target_path=str(path), volume_capability=mount_capability(),
        volume_context=vol.volume_context,
    )  # fmt: skip


async def code_of(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def path_env(bin_dir: Path) -> dict[str, str]:
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie has exited; only its parent has not read its status)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


async def wait_for(check: object, what: str) -> None:
    for _ in range(400):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def gated_mount(root: Path) -> tuple[Path, Path]:
    """A ``mount`` that first changes into the ``gate`` directory of the faulty file system (the shell itself then
    waits on the server, unkillable while the gate hangs, as a mount helper does on a hard NFS mount), then
    mounts for real. Returns its bin directory and the file where each run writes its pid."""
    bin_dir, pids = root / "bin", root / "mount.pids"
    gate = exports(root) / HOST / "gate"
    fake_command(bin_dir, "mount", f'echo $$ >> {pids}\ncd {gate} && cd / && exec {shutil.which("mount")} "$@"\n')
    return bin_dir, pids


# -- 2. a mount child never outlives its call's lock -------------------------------------------------------------


@pytest.mark.parametrize("fs_names", [["vol0", "gate"]])
@pytest.mark.parametrize("gives_up", ["cancel", "deadline"])
async def test_a_cancelled_publish_keeps_its_target_locked_until_the_hung_mount_exits(
    mount_root: Path, faulty: faultyfs.Running, gives_up: str
) -> None:
    bin_dir, pids = gated_mount(mount_root)
    driver = node_driver(mount_root, env=path_env(bin_dir))
    path = target(mount_root, "vol0")
    try:
        faulty.set("gate", "hang")
        async with CsiClient(driver.endpoint) as csi:
            if gives_up == "cancel":
                first = csi.node.NodePublishVolume(publish_request(volume("vol0"), path))
                await wait_for(pids.exists, "the mount to start")
                first.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await first
            else:
                first = csi.node.NodePublishVolume(publish_request(volume("vol0"), path), timeout=4)
                assert await code_of(first) == grpc.StatusCode.DEADLINE_EXCEEDED
            # The killed mount still waits on the server: retries must not start a second one.
            for _ in range(5):
                retry = csi.node.NodePublishVolume(publish_request(volume("vol0"), path), timeout=3)
                assert await code_of(retry) == grpc.StatusCode.ABORTED
                await asyncio.sleep(0.2)
            assert len(pids.read_text().split()) == 1
            faulty.set("gate", "ok")

            async def published() -> bool:
                call = csi.node.NodePublishVolume(publish_request(volume("vol0"), path), timeout=10)
                return await code_of(call) == grpc.StatusCode.OK

            for _ in range(100):
                if await published():
                    break
                await asyncio.sleep(0.1)
            assert mounts_at(path) == 1
            assert not (await csi.stats("cfs-vol0", str(path))).volume_condition.abnormal
    finally:
        faulty.set("gate", "ok")
        stop_gracefully(driver)


@pytest.mark.parametrize("fs_names", [["vol0", "gate"]])
async def test_a_plugin_killed_during_a_hung_mount_never_stacks_a_second_mount(
    mount_root: Path, faulty: faultyfs.Running
) -> None:
    bin_dir, pids = gated_mount(mount_root)
    path = target(mount_root, "vol0")
    faulty.set("gate", "hang")
    driver = node_driver(mount_root, env=path_env(bin_dir))
    try:
        async with CsiClient(driver.endpoint) as csi:
            call = asyncio.ensure_future(csi.node.NodePublishVolume(publish_request(volume("vol0"), path)))
            await wait_for(pids.exists, "the mount to start")
            driver.stop(signal.SIGKILL)
            assert await code_of(call) != grpc.StatusCode.OK  # the connection is gone
        driver = node_driver(mount_root, env=path_env(bin_dir))  # the same state directory as the killed run
        async with CsiClient(driver.endpoint) as csi:
            retry = csi.node.NodePublishVolume(publish_request(volume("vol0"), path), timeout=5)
            assert await code_of(retry) == grpc.StatusCode.ABORTED
            faulty.set("gate", "ok")  # the orphaned mount goes on and mounts
            await wait_for(lambda: mounts_at(path) == 1, "the orphaned mount")
            for _ in range(100):
                answer = await code_of(csi.node.NodePublishVolume(publish_request(volume("vol0"), path), timeout=10))
                if answer != grpc.StatusCode.ABORTED:
                    break
                await asyncio.sleep(0.1)
            assert answer == grpc.StatusCode.OK
            assert mounts_at(path) == 1
            assert len(pids.read_text().split()) == 1  # only the orphan ever ran
            assert not (await csi.stats("cfs-vol0", str(path))).volume_condition.abnormal
    finally:
        faulty.set("gate", "ok")
        stop_gracefully(driver)


async def test_sigterm_kills_a_hung_mount(mount_root: Path) -> None:
    bin_dir, pid_file = mount_root / "bin", mount_root / "mount.pid"
    fake_command(bin_dir, "mount", f"echo $$ > {pid_file}\nexec sleep 317\n")
    driver = start_driver(mount_root, "--component", "node", "--mounter", "nfs", "--grace", "5",
                          env=path_env(bin_dir), name="term")  # fmt: skip
    vol = csi_pb2.Volume(volume_id="cfs-term", volume_context={"host": HOST, "fsid": "vol0", "vers": "3"})
    try:
        async with CsiClient(driver.endpoint) as csi:
            call = asyncio.ensure_future(csi.node.NodePublishVolume(publish_request(vol, target(mount_root, "t"))))
            await wait_for(pid_file.exists, "the mount to start")
            pid = int(pid_file.read_text())
            assert alive(pid)
            driver.stop(signal.SIGTERM)
            assert await code_of(call) != grpc.StatusCode.OK
        assert not alive(pid)
        assert "draining in-flight calls" in driver.log_text()
    finally:
        driver.stop(signal.SIGKILL)


# -- 3. the unmount ladder looks at the mount table between steps -----------------------------------------------


def tmpfs_mount(bin_dir: Path) -> None:
    """A ``mount`` that mounts a tmpfs at its last argument (no NFS client here)."""
    fake_command(bin_dir, "mount", f'for last; do :; done\nexec {shutil.which("mount")} -t tmpfs tmpfs "$last"\n')


@pytest.mark.parametrize(
    "plain",
    [
        # umount does its work, then says the handle is stale (a server that went away meanwhile).
        "{umount} \"$1\"; echo 'umount.nfs: Stale file handle' >&2; exit 32",
        # umount does its work, then hangs until it is killed.
        '{umount} "$1"; exec sleep 317',
    ],
)
async def test_a_mount_gone_after_a_failed_step_is_unmounted(mount_root: Path, plain: str) -> None:
    bin_dir, calls = mount_root / "bin", mount_root / "umount.calls"
    tmpfs_mount(bin_dir)
    fake_command(bin_dir, "umount", (
        f'shift\ncase "$1" in\n'
        f'  -f|-l) echo "$1" >> {calls}; echo "umount: $2: not mounted." >&2; exit 32 ;;\n'
        f'  *) echo plain >> {calls}; {plain.format(umount=shutil.which("umount"))} ;;\n'
        f'esac\n'
    ))  # fmt: skip
    driver = start_driver(mount_root, "--component", "node", "--mounter", "nfs", "--unmount-timeout", "2",
                          env=path_env(bin_dir), name="ladder")  # fmt: skip
    path = target(mount_root, "ladder")
    try:
        async with CsiClient(driver.endpoint) as csi:
            await csi.publish(volume("vol0"), str(path))
            assert mounts_at(path) == 1
            await csi.unpublish("cfs-vol0", str(path))
        assert calls.read_text().split() == ["plain"]
        assert mounts_at(path) == 0 and not path.exists()
    finally:
        stop_gracefully(driver)


# -- 6. the whole ladder ends before the caller's deadline ------------------------------------------------------


async def test_the_unmount_ladder_answers_before_the_callers_deadline(mount_root: Path) -> None:
    """Every umount hangs; the configured timeout is long (60 s a step before the fix): the plugin still answers
    the caller itself, before its deadline, instead of the caller giving up on it."""
    bin_dir, calls = mount_root / "bin", mount_root / "umount.calls"
    tmpfs_mount(bin_dir)
    fake_command(bin_dir, "umount", f'echo "$2" >> {calls}\nexec sleep 317\n')
    driver = start_driver(mount_root, "--component", "node", "--mounter", "nfs", "--unmount-timeout", "60",
                          env=path_env(bin_dir), name="bounded")  # fmt: skip
    path = target(mount_root, "bounded")
    try:
        async with CsiClient(driver.endpoint) as csi:
            await csi.publish(volume("vol0"), str(path))
            request = csi_pb2.NodeUnpublishVolumeRequest(volume_id="cfs-vol0", target_path=str(path))
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await csi.node.NodeUnpublishVolume(request, timeout=8)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The plugin's own answer (the client's would say "Deadline Exceeded"): it killed the last step.
        assert "was killed" in (error.value.details() or ""), error.value.details()
        assert calls.read_text().split()[0] != "-f"  # the ladder started with a plain umount
        assert mounts_at(path) == 1  # nothing was unmounted, so it is still there
    finally:
        stop_gracefully(driver)


# -- 4. republish heals a stale or dead mount -------------------------------------------------------------------


async def test_republish_remounts_a_stale_mount(mount_root: Path, faulty: faultyfs.Running) -> None:
    driver = node_driver(mount_root)
    path = target(mount_root, "vol0")
    try:
        async with CsiClient(driver.endpoint) as csi:
            await csi.publish(volume("vol0"), str(path))
            faulty.reexport("vol0")  # the share is exported anew: the mount's handle is stale for good
            stale = await csi.stats("cfs-vol0", str(path))
            assert stale.volume_condition.abnormal and "Stale file handle" in stale.volume_condition.message
            await csi.publish(volume("vol0"), str(path))
            assert mounts_at(path) == 1
            healed = await csi.stats("cfs-vol0", str(path))
            assert not healed.volume_condition.abnormal, healed.volume_condition.message
            assert "broken; unmounting it to mount again" in driver.log_text()
    finally:
        stop_gracefully(driver)


async def test_republish_remounts_a_mount_whose_server_died(mount_root: Path, faulty: faultyfs.Running) -> None:
    driver = node_driver(mount_root)
    path = target(mount_root, "vol0")
    restarted = None
    try:
        async with CsiClient(driver.endpoint) as csi:
            await csi.publish(volume("vol0"), str(path))
            faulty.die()
            dead = await csi.stats("cfs-vol0", str(path))
            assert dead.volume_condition.abnormal and "not connected" in dead.volume_condition.message
            # The server comes back (a new connection); the old mount stays dead.
            await asyncio.to_thread(subprocess.run, ["umount", "-l", faulty.mountpoint], check=True, timeout=30)
            restarted = start_fs(mount_root, ["vol0"])
            await csi.publish(volume("vol0"), str(path))
            assert mounts_at(path) == 1
            healed = await csi.stats("cfs-vol0", str(path))
            assert not healed.volume_condition.abnormal, healed.volume_condition.message
    finally:
        stop_gracefully(driver)
        if restarted is not None:
            restarted.stop()


@pytest.mark.parametrize("fs_names", [["vol0", "other"]])
async def test_republish_leaves_a_hung_mount_and_refuses_another_volumes(
    mount_root: Path, faulty: faultyfs.Running
) -> None:
    driver = node_driver(mount_root, "--stats-timeout", "1")
    path = target(mount_root, "vol0")
    try:
        async with CsiClient(driver.endpoint) as csi:
            await csi.publish(volume("vol0"), str(path))
            faulty.reexport("vol0")
            # A stale mount of another volume is not ours to take down.
            assert await code_of(csi.publish(volume("other"), str(path))) == grpc.StatusCode.ALREADY_EXISTS
            await csi.publish(volume("vol0"), str(path))
            faulty.set("vol0", "hang")
            republish = csi.node.NodePublishVolume(publish_request(volume("vol0"), path), timeout=20)
            assert await code_of(republish) == grpc.StatusCode.UNAVAILABLE
            assert mounts_at(path) == 1
            faulty.set("vol0", "ok")
    finally:
        stop_gracefully(driver)


# -- 5. a failed publish leaves the directories as they were; what a missing export answers ----------------------


@pytest.mark.parametrize(
    ("says", "code", "hint"),
    [
        ("mount.nfs: mounting {source} failed, reason given by server: No such file or directory",
         grpc.StatusCode.NOT_FOUND, "reason given by server"),
        ("mount.nfs: access denied by server while mounting {source}", grpc.StatusCode.INTERNAL,
         "the export path may not exist"),
        # About our side (the mount point), not the export: not NOT_FOUND.
        ("mount: {last}: mount(2) system call failed: No such file or directory.", grpc.StatusCode.INTERNAL,
         "mount(2) system call failed"),
    ],
)  # fmt: skip
async def test_a_failed_publish_leaves_the_directories_as_they_were(
    mount_root: Path, says: str, code: grpc.StatusCode, hint: str
) -> None:
    bin_dir = mount_root / "bin"
    message = says.format(source='$(echo "$@" | cut -d" " -f6)', last="$last")
    fake_command(bin_dir, "mount", f'for last; do :; done\necho "{message}" >&2\nexit 32\n')
    driver = start_driver(mount_root, "--component", "node", "--mounter", "nfs", env=path_env(bin_dir),
                          name="fails")  # fmt: skip
    pods = pods_dir(mount_root)
    existing = pods / "uid-old" / "volumes"
    existing.mkdir(parents=True)
    before = sorted(str(p) for p in pods.rglob("*"))
    try:
        async with CsiClient(driver.endpoint) as csi:
            for path in (target(mount_root, "new"), existing / "kubernetes.io~csi" / "pv" / "mount"):
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await csi.publish(volume("vol0"), str(path))
                assert error.value.code() == code
                assert hint in (error.value.details() or "")
                assert sorted(str(p) for p in pods.rglob("*")) == before
    finally:
        stop_gracefully(driver)


# -- 2. start-up: publication records against what is mounted ---------------------------------------------------


def test_start_up_drops_records_of_targets_that_are_gone_and_unmounts_nothing(mount_root: Path) -> None:
    state = mount_root / "reconcile-state"
    records = PublishedVolumes(state / "node")
    gone, bare, mounted, foreign = (target(mount_root, name) for name in ("gone", "bare", "mounted", "foreign"))
    for path in (bare, mounted, foreign):
        path.mkdir(parents=True)
    for path in (mounted, foreign):
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(path)], check=True, timeout=10)
    for path in (gone, bare, mounted):
        records.record(Publication(volume_id=f"cfs-{path.parent.name}", target_path=str(path), source="h:/x/"))
    driver = start_driver(mount_root, "--component", "node", "--mounter", "bind", "--state-dir", str(state),
                          name="reconcile")  # fmt: skip
    try:
        # The socket is bound before start-up ends; the first answered call comes after the reconcile.
        with grpc.insecure_channel(driver.endpoint) as channel:
            channel.unary_unary(
                "/csi.v1.Node/NodeGetInfo",
                request_serializer=csi_pb2.NodeGetInfoRequest.SerializeToString,
                response_deserializer=csi_pb2.NodeGetInfoResponse.FromString,
            )(csi_pb2.NodeGetInfoRequest(), timeout=30)
        assert records.get(str(gone)) is None
        assert records.get(str(bare)) is not None and records.get(str(mounted)) is not None
        assert mounts_at(mounted) == 1 and mounts_at(foreign) == 1  # nothing unmounted, ours or not
        assert bare.is_dir()
        log = driver.log_text()
        assert "nothing is mounted there" in log and str(foreign) in log
    finally:
        stop_gracefully(driver)
