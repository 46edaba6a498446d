"""targets: the node reaches, creates and removes targets below the pods directory without following symlinks."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cfs_csi.mount.mountinfo import MountTable
from cfs_csi.mount.podpath import pod_path
from cfs_csi.mount.targets import (
    OpenPods,
    PodsDir,
    PodsDirMissing,
    check_is_directory,
    fs_is_local,
    in_thread,
    is_network_fs,
    remove_target,
    walk_is_local,
)
from cfs_csi.safefs import UnsafePath


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[OpenPods]:
    (tmp_path / "kubelet" / "pods" / "uid").mkdir(parents=True)
    (tmp_path / "outside" / "victim").mkdir(parents=True)
    (tmp_path / "kubelet" / "pods" / "uid" / "file").write_text("kubelet's")
    (tmp_path / "kubelet" / "pods" / "uid" / "link").symlink_to(tmp_path / "outside")
    opened = PodsDir(str(tmp_path / "kubelet")).open()
    try:
        yield opened
    finally:
        opened.close()


def target(pods: OpenPods, relative: str) -> str:
    return str(Path(pods.real_path) / relative)


def test_a_missing_pods_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(PodsDirMissing, match="--kubelet-dir"):
        PodsDir(str(tmp_path / "nowhere")).open()


def test_the_mount_table_path_is_the_real_one(tmp_path: Path) -> None:
    (tmp_path / "data" / "pods").mkdir(parents=True)
    (tmp_path / "kubelet").symlink_to(tmp_path / "data")  # an admin's /var/lib/kubelet -> /data/kubelet
    pods = PodsDir(str(tmp_path / "kubelet"))
    opened = pods.open()
    try:
        accepted = pod_path(pods.path, f"{pods.path}/uid/mount")
        assert opened.real(accepted) == str(tmp_path / "data" / "pods" / "uid" / "mount")
    finally:
        opened.close()


def test_make_target_creates_the_path_and_says_so(pods: OpenPods) -> None:
    accepted = pod_path(pods.real_path, target(pods, "uid/volumes/kubernetes.io~csi/pv/mount"))
    made = pods.make_target(accepted)
    try:
        assert made.created and os.path.samestat(os.fstat(made.fd), os.stat(accepted.path))
        assert os.readlink(made.via_fd) == accepted.path
    finally:
        made.close()
    again = pods.make_target(accepted)
    again.close()
    assert not again.created


@pytest.mark.parametrize(
    ("relative", "words"),
    [
        ("uid/link/victim/mount", "uid/link is a symbolic link"),  # an intermediate component
        ("uid/link", "uid/link: link is a symbolic link"),  # the target itself
        ("uid/file", "uid/file: file is not a directory"),
        ("uid/file/mount", "uid/file is not a directory"),
    ],
)
def test_make_target_refuses_symlinks_and_files(pods: OpenPods, tmp_path: Path, relative: str, words: str) -> None:
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(UnsafePath, match=words):
        pods.make_target(pod_path(pods.real_path, target(pods, relative)))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_open_parent_refuses_a_symlinked_component_and_tolerates_a_missing_one(pods: OpenPods) -> None:
    with pytest.raises(UnsafePath):
        pods.open_parent(pod_path(pods.real_path, target(pods, "uid/link/victim")))
    assert pods.open_parent(pod_path(pods.real_path, target(pods, "gone/x/mount"))) is None


@pytest.mark.parametrize(
    ("name", "removed", "refused"),
    [("file", False, True), ("link", False, True), ("absent", True, False), ("full", False, False)],
)
def test_remove_target_removes_only_an_empty_directory(
    pods: OpenPods, tmp_path: Path, name: str, removed: bool, refused: bool
) -> None:
    (Path(pods.real_path) / "uid" / "full").mkdir()
    (Path(pods.real_path) / "uid" / "full" / "data").write_text("written while unmounted")
    ref = pods.open_parent(pod_path(pods.real_path, target(pods, f"uid/{name}")))
    assert ref is not None
    try:
        if refused:
            with pytest.raises(UnsafePath):
                check_is_directory(ref)
        else:
            check_is_directory(ref)
        assert remove_target(ref) == removed
    finally:
        ref.close()
    assert (tmp_path / "outside" / "victim").is_dir()
    assert (Path(pods.real_path) / "uid" / "file").read_text() == "kubelet's"
    assert (Path(pods.real_path) / "uid" / "full" / "data").exists()


class Handle:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


async def test_in_thread_waits_for_the_step_when_cancelled_and_closes_its_result() -> None:
    release, started = threading.Event(), threading.Event()
    handle = Handle()

    def step() -> Handle:
        started.set()
        release.wait(10)
        return handle

    task = asyncio.ensure_future(in_thread(step))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    await asyncio.sleep(0.2)
    assert not task.done()  # the caller's handles stay open while the step may still use them
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert handle.closed


# -- issue 15: walks that cross no mount point run without a thread -------------------------------------------

TABLE = """\
1 0 8:1 / / rw - ext4 /dev/sda1 rw
2 1 8:2 / /var/lib/kubelet rw - xfs /dev/sdb1 rw
3 2 0:40 / /var/lib/kubelet/pods/uid/volumes/kubernetes.io~nfs/share rw - nfs4 h:/x rw
4 2 0:41 / /var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/pv/mount rw - nfs h:/y rw
5 1 0:42 / /nfs-kubelet rw - nfs h:/k rw
6 1 0:43 / /fuse-kubelet rw - fuse.sshfs u@h: rw"""


@pytest.mark.parametrize(
    ("target", "include_target", "local"),
    [
        ("uid/volumes/kubernetes.io~csi/pv/mount", False, True),  # unpublish: the target itself is not entered
        ("uid/volumes/kubernetes.io~csi/pv/mount", True, False),  # publish: it would be
        ("uid/volumes/kubernetes.io~csi/other/mount", True, True),
        ("uid/volumes/kubernetes.io~nfs/share/deeper/mount", False, False),  # through another volume's mount
        ("uid/volumes/kubernetes.io~nfs/share", False, True),
    ],
)
def test_walk_is_local(target: str, include_target: bool, local: bool) -> None:
    table = MountTable(text=TABLE)
    path = pod_path("/var/lib/kubelet/pods", f"/var/lib/kubelet/pods/{target}")
    assert walk_is_local(table, "/var/lib/kubelet/pods", path, include_target) is local


@pytest.mark.parametrize(
    ("pods_real", "local"),
    [
        ("/var/lib/kubelet/pods", True),
        ("/srv/pods", True),
        ("/nfs-kubelet/pods", False),
        ("/fuse-kubelet/pods", False),
    ],
)
def test_fs_is_local(pods_real: str, local: bool) -> None:
    assert fs_is_local(MountTable(text=TABLE), pods_real) is local


@pytest.mark.parametrize(
    ("fstype", "network"),
    [("nfs", True), ("nfs4", True), ("fuse.sshfs", True), ("cifs", True), ("ext4", False), ("tmpfs", False)],
)
def test_is_network_fs(fstype: str, network: bool) -> None:
    assert is_network_fs(fstype) is network
