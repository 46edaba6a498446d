"""Issue 15: the node runs the system's ``mount.nfs`` itself (no ``mount(8)`` in between) and unmounts an NFSv4
mount with the system call; the choice of helper and the NFS version kept in a publication record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cfs_csi.driver.published import Publication, PublishedVolumes
from cfs_csi.mount.mounter import BindMounter, NfsMounter, chosen_helper, find_mount_helper
from cfs_csi.volume.exports import ExportRoot
from cfs_csi.volume.params import NfsVersion


def helper_dirs(tmp_path: Path, layout: dict[str, str]) -> tuple[str, ...]:
    """Three search directories; ``layout`` maps ``<dir>/<name>`` to ``exec`` (executable file), ``file`` (not
    executable) or ``dir`` (a directory of that name)."""
    dirs = tuple(str(tmp_path / name) for name in ("sbin", "fs.d", "fs"))
    for directory in dirs:
        Path(directory).mkdir()
    for where, kind in layout.items():
        path = tmp_path / where
        if kind == "dir":
            path.mkdir()
        else:
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755 if kind == "exec" else 0o644)
    return dirs


@pytest.mark.parametrize(
    ("layout", "found"),
    [
        ({}, None),
        ({"sbin/mount.nfs": "exec"}, "sbin/mount.nfs"),
        ({"sbin/mount.nfs": "exec", "fs.d/mount.nfs": "exec"}, "sbin/mount.nfs"),  # mount(8)'s order
        ({"sbin/mount.nfs": "file", "fs.d/mount.nfs": "exec"}, "fs.d/mount.nfs"),  # not executable: skipped
        ({"sbin/mount.nfs": "dir", "fs/mount.nfs": "exec"}, "fs/mount.nfs"),  # a directory is no helper
        ({"sbin/mount.nfs4": "exec", "sbin/umount.nfs": "exec"}, None),  # other names do not count
    ],
)
def test_the_helper_is_the_one_mount_would_run(tmp_path: Path, layout: dict[str, str], found: str | None) -> None:
    dirs = helper_dirs(tmp_path, layout)
    assert find_mount_helper("nfs", dirs) == (str(tmp_path / found) if found else None)
    assert chosen_helper("auto", dirs) == find_mount_helper("nfs", dirs)
    assert chosen_helper("none", dirs) is None


def test_a_named_helper_must_be_an_absolute_path(tmp_path: Path) -> None:
    assert chosen_helper("/opt/bin/mount.nfs", ()) == "/opt/bin/mount.nfs"
    with pytest.raises(ValueError, match="absolute path"):
        chosen_helper("mount.nfs", ())


@pytest.mark.parametrize(
    ("version", "nfs", "bind"), [(NfsVersion.V4, True, True), (NfsVersion.V3, False, True), (None, False, True)]
)
def test_which_mounts_are_unmounted_by_the_system_call(
    tmp_path: Path, version: NfsVersion | None, nfs: bool, bind: bool
) -> None:
    """NFSv3 keeps umount(8) (umount.nfs tells the server's mountd), and so does a mount of unknown version."""
    assert NfsMounter(1.0).unmounts_by_syscall(version) is nfs
    assert BindMounter(ExportRoot(tmp_path), 1.0).unmounts_by_syscall(version) is bind


A = Publication(volume_id="vol-a", target_path="/pods/x/mount", source="h:/", nfs_version="4")


def test_the_nfs_version_is_kept_and_left_out_while_unknown(tmp_path: Path) -> None:
    records = PublishedVolumes(tmp_path)
    records.record(A)
    (path,) = tmp_path.glob("*.json")
    assert json.loads(path.read_text())["nfs_version"] == "4"
    assert PublishedVolumes(tmp_path).get(A.target_path) == A
    old = Publication(volume_id="vol-b", target_path="/pods/y/mount", source="h:/b/")
    records.record(old)  # as a plugin from before the field wrote it: a downgraded plugin still reads it
    assert "nfs_version" not in json.loads(records._path(old.target_path).read_text())


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ({"nfs_version": 4}, None),  # not a string: dropped, the record stays
        ({"nfs_version": "3", "written_by": "a newer plugin"}, "3"),  # an unknown field is ignored
        ({}, None),
    ],
)
def test_a_record_from_elsewhere_is_read_as_far_as_it_can_be(
    tmp_path: Path, written: dict[str, object], read: str | None
) -> None:
    records = PublishedVolumes(tmp_path)
    base = {"volume_id": "vol-a", "target_path": "/pods/x/mount", "source": "h:/"}
    records._path("/pods/x/mount").write_text(json.dumps({**base, **written}))
    found = records.get("/pods/x/mount")
    assert found is not None and found.volume_id == "vol-a" and found.nfs_version == read
