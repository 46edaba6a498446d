"""Shared mode against hostile tenants, on a real directory tree: each attack is refused for the right reason,
and a listing of the whole share (paths, types, modes, link targets, content hashes) before and after shows
that nothing outside the volume's own directory changed. The provisioner's disk work is called as it runs in
the provisioner (a handle of the share root, the other volumes' directories), without Kubernetes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cfs_csi.provisioner.disk import Refused, forget_owner, provision_directory, reclaim_directory, recorded_path
from cfs_csi.provisioner.ownership import Verdict
from cfs_csi.provisioner.paths import RESERVED, DeleteAction, directory_for
from tests.share_snapshot import changed, outside, snapshot


@pytest.fixture
def share(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A share with a victim volume ``vdir`` (mode 0700, a secret) and an attacker's volume ``atk``."""
    root = tmp_path / "share"
    (root / "vdir").mkdir(parents=True)
    (root / "vdir").chmod(0o700)
    (root / "vdir" / "secret.txt").write_text("the victim's data")
    (root / "other" / "q").mkdir(parents=True)
    (root / "other" / "q" / "data.txt").write_text("someone else's")
    (root / "atk").mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield root, fd
    finally:
        os.close(fd)


OWNERS = {"pv-victim": "vdir", "pv-atk": "atk", "pv-other": "other/q"}


def _refused(match: str, call: object, *args: object) -> None:
    assert callable(call)
    with pytest.raises(Refused, match=match):
        call(*args)


# --- finding 1: one directory, one volume ----------------------------------------------------------------------


def test_two_claims_with_the_same_annotation_directory(share: tuple[Path, int]) -> None:
    root, fd = share
    pattern = "${.PVC.annotations.dir}"
    first = directory_for(pattern, "default", "v1", "pv-1", {}, {"dir": "v1"})
    assert provision_directory(fd, first, "pv-1", OWNERS, False, 0o777) is Verdict.CREATE
    (root / "v1" / "secret.txt").write_text("v1's data")
    owners = {**OWNERS, "pv-1": first}
    second = directory_for(pattern, "tenant2", "steal", "pv-2", {}, {"dir": "v1"})
    before = snapshot(root)
    for reuse in (False, True):
        _refused("'v1' is the directory of PersistentVolume pv-1", provision_directory, fd, second, "pv-2", owners,
                 reuse, 0o777)  # fmt: skip
    # A second PV naming it anyway (made by an older provisioner): deleting or archiving it leaves v1 alone.
    for action in DeleteAction:
        if action is not DeleteAction.RETAIN:
            _refused("pv-1; leaving it", reclaim_directory, fd, "v1", "pv-2", owners, action)
    assert changed(before, snapshot(root)) == set()


def test_a_namespace_only_pattern_gives_each_namespace_one_volume(share: tuple[Path, int]) -> None:
    root, fd = share
    owners = dict(OWNERS)
    for index, claim in enumerate(["a", "b", "c"]):
        path = directory_for("${.PVC.namespace}", "team", claim, f"pv-{index}", {}, {})
        before = snapshot(root)
        if index == 0:
            assert provision_directory(fd, path, "pv-0", owners, False, 0o777) is Verdict.CREATE
            owners["pv-0"] = path
            assert outside(before, snapshot(root), ["team", RESERVED]) == set()
        else:
            _refused("'team' is the directory of PersistentVolume pv-0", provision_directory, fd, path, f"pv-{index}",
                     owners, False, 0o777)  # fmt: skip
            assert changed(before, snapshot(root)) == set()


@pytest.mark.parametrize(
    ("path", "reason"),
    [("vdir/inner", "is inside the directory 'vdir' of PersistentVolume pv-victim"),
     ("other", "contains the directory 'other/q' of PersistentVolume pv-other"),
     ("atk/x/y", "is inside the directory 'atk'")],
)  # fmt: skip
def test_a_path_inside_or_above_another_volume(share: tuple[Path, int], path: str, reason: str) -> None:
    root, fd = share
    before = snapshot(root)
    for reuse in (False, True):
        _refused(reason, provision_directory, fd, path, "pv-new", OWNERS, reuse, 0o777)
    assert changed(before, snapshot(root)) == set()


def test_deleting_a_volume_that_contains_another_leaves_both(share: tuple[Path, int]) -> None:
    root, fd = share
    before = snapshot(root)
    _refused("contains the directory 'other/q' of PersistentVolume pv-other", reclaim_directory, fd, "other",
             "pv-legacy", OWNERS, DeleteAction.DELETE)  # fmt: skip
    assert changed(before, snapshot(root)) == set()


def test_an_existing_directory_nobody_names_is_reused_only_on_request(share: tuple[Path, int]) -> None:
    root, fd = share
    (root / "retained").mkdir(mode=0o750)
    (root / "retained").chmod(0o750)
    (root / "retained" / "old.txt").write_text("retained data")
    before = snapshot(root)
    _refused("already exists and no PersistentVolume names it", provision_directory, fd, "retained", "pv-new",
             OWNERS, False, 0o777)  # fmt: skip
    assert changed(before, snapshot(root)) == set()
    assert provision_directory(fd, "retained", "pv-new", OWNERS, True, 0o777) is Verdict.REUSE
    assert changed(before, snapshot(root)) == set()  # its mode is its owner's: not changed


def test_a_crash_before_the_pv_is_resumed_not_stuck(share: tuple[Path, int]) -> None:
    root, fd = share
    assert provision_directory(fd, "mine", "pv-me", OWNERS, False, 0o770) is Verdict.CREATE
    (root / "mine").chmod(0o700)  # as if the crash came before the fchmod
    # The provisioner restarts; no PV names "mine" yet. Its own retry resumes, anyone else is refused.
    _refused("already exists", provision_directory, fd, "mine", "pv-someone-else", OWNERS, False, 0o777)
    assert recorded_path(fd, "pv-me") == "mine"
    assert provision_directory(fd, "mine", "pv-me", OWNERS, False, 0o770) is Verdict.RESUME
    assert (root / "mine").stat().st_mode & 0o777 == 0o770
    forget_owner(fd, "pv-me")  # the PV exists now: it is the record
    assert recorded_path(fd, "pv-me") is None
    assert sorted(os.listdir(root / RESERVED / "owners")) == []


# --- finding 2: no symlink is ever followed --------------------------------------------------------------------


def test_a_link_to_the_parent_in_an_attackers_volume(share: tuple[Path, int]) -> None:
    """The pod of ``atk`` plants ``up -> ..``; a second claim's pattern gives ``atk/up/vdir``."""
    root, fd = share
    (root / "atk" / "up").symlink_to("..")
    path = directory_for("${.PVC.annotations.dir}", "tenant2", "c", "pv-2", {}, {"dir": "atk/up/vdir"})
    before = snapshot(root)
    # With the ownership record the path is inside atk's directory; without it (atk made by hand) the symlink
    # itself is refused. Either way the victim's directory keeps its mode and content.
    _refused("inside the directory 'atk'", provision_directory, fd, path, "pv-2", OWNERS, True, 0o777)
    for owners in ({}, {"pv-victim": "vdir"}):
        _refused("atk/up is a symbolic link", provision_directory, fd, path, "pv-2", owners, True, 0o777)
        for action in DeleteAction:
            if action is not DeleteAction.RETAIN:
                _refused("atk/up is a symbolic link", reclaim_directory, fd, path, "pv-2", owners, action)
    assert changed(before, snapshot(root)) == set()
    assert (root / "vdir").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("action", [DeleteAction.DELETE, DeleteAction.ARCHIVE])
def test_a_planted_link_in_a_parent_does_not_redirect_a_delete(share: tuple[Path, int], action: DeleteAction) -> None:
    """``p -> other`` planted where ``p`` was: reclaiming ``p/q`` must not touch ``other/q``."""
    root, fd = share
    (root / "p").symlink_to("other")
    before = snapshot(root)
    _refused("p is a symbolic link", reclaim_directory, fd, "p/q", "pv-pq", {}, action)
    assert changed(before, snapshot(root)) == set()


@pytest.mark.parametrize("action", [DeleteAction.DELETE, DeleteAction.ARCHIVE])
def test_the_volume_directory_itself_swapped_for_a_link(share: tuple[Path, int], action: DeleteAction) -> None:
    """The pod replaced its own ``atk/mine`` by a link to the victim: archive or delete acts on nothing."""
    root, fd = share
    (root / "atk" / "mine").symlink_to("../vdir")
    before = snapshot(root)
    _refused("mine is a symbolic link", reclaim_directory, fd, "atk/mine", "pv-mine", {"pv-victim": "vdir"}, action)
    assert changed(before, snapshot(root)) == set()


def test_archive_names_are_checked_through_the_parent(share: tuple[Path, int]) -> None:
    """``archived-<dir>`` already there as a link, and ``-2`` named by a PV: the archive goes to ``-3``."""
    root, fd = share
    assert provision_directory(fd, "t/d", "pv-d", {}, False, 0o777) is Verdict.CREATE
    (root / "t" / "d" / "f.txt").write_text("mine")
    (root / "t" / "archived-d").symlink_to("../vdir")
    before = snapshot(root)
    done = reclaim_directory(fd, "t/d", "pv-d", {"pv-x": "t/archived-d-2"}, DeleteAction.ARCHIVE)
    assert done == "archived as t/archived-d-3"
    assert outside(before, snapshot(root), ["t/d", "t/archived-d-3", RESERVED]) == set()
    assert (root / "t" / "archived-d-3" / "f.txt").read_text() == "mine"


# --- the race: a pod keeps swapping a directory for a symlink ---------------------------------------------------

_SWAPPER = textwrap.dedent("""
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    os.chdir(sys.argv[1])
    while True:  # renameat2(RENAME_EXCHANGE): "sub" is the real directory, then the link, then the directory...
        if libc.renameat2(-100, b"sub", -100, b"lnk", 2) != 0:
            sys.exit(f"renameat2: {os.strerror(ctypes.get_errno())}")
""")


def test_a_directory_swapped_for_a_symlink_in_a_loop(share: tuple[Path, int]) -> None:
    """Provision, delete and archive ``atk/sub/vdir`` while the attacker's pod swaps ``atk/sub`` between a real
    directory and ``-> ..`` (so that ``atk/sub/vdir`` is the victim's ``vdir``) as fast as it can."""
    root, fd = share
    (root / "atk" / "sub").mkdir()
    (root / "atk" / "lnk").symlink_to("..")
    before = snapshot(root)
    swapper = subprocess.Popen([sys.executable, "-c", _SWAPPER, str(root / "atk")])
    outcomes = {"done": 0, "refused": 0}
    try:
        for iteration in range(50000):  # bounded; ends as soon as both sides of the race were seen often
            volume = f"pv-{iteration}"
            try:
                assert provision_directory(fd, "atk/sub/vdir", volume, {}, False, 0o777) is Verdict.CREATE
            except Refused:
                outcomes["refused"] += 1  # a step met the link: nothing was done
                continue
            action = DeleteAction.ARCHIVE if iteration % 2 else DeleteAction.DELETE
            for _ in range(10000):  # until the real directory is where the path leads
                try:
                    reclaim_directory(fd, "atk/sub/vdir", volume, {}, action)
                    break
                except Refused:
                    outcomes["refused"] += 1
            else:
                pytest.fail("the reclaim never found the volume's directory")
            outcomes["done"] += 1
            if iteration >= 200 and min(outcomes.values()) >= 20:
                break
        assert swapper.poll() is None, "the swapping pod stopped"
    finally:
        swapper.kill()
        swapper.wait(10)
    after = snapshot(root)
    # Inside atk: the real directory and the link (whichever name each has now) and the archives made in it.
    assert outside(before, after, ["atk"]) <= {RESERVED, f"{RESERVED}/owners"}
    assert (root / "vdir").stat().st_mode & 0o777 == 0o700
    assert sorted(os.listdir(root / "vdir")) == ["secret.txt"]
    assert sorted(os.listdir(root / RESERVED / "owners")) == []  # every record was forgotten
    assert min(outcomes.values()) >= 20, outcomes  # both sides of the race were really exercised
