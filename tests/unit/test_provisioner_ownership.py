"""One directory, one volume: the ownership decisions of the sub-directory provisioner (tables)."""

from __future__ import annotations

from typing import Any

import pytest

from cfs_csi import DRIVER_NAME
from cfs_csi.provisioner.ownership import (
    Reservations,
    Verdict,
    conflict,
    normalized,
    provision_decision,
    reuse_existing,
    share_owners,
)
from cfs_csi.volume.errors import InvalidArgument

OWNERS = {"pv-victim": "v1", "pv-team": "team/a", "pv-deep": "x/y/z"}

# (case, path, exists, recorded, reuse, verdict, reason fragment)
DECISIONS = [
    ("fresh path", "new", False, None, False, Verdict.CREATE, ""),
    ("fresh nested path", "team/b", False, None, False, Verdict.CREATE, ""),
    ("same directory as another PV", "v1", True, None, False, Verdict.REFUSE, "is the directory of PersistentVolume"),
    ("same directory even with reuse", "v1", True, None, True, Verdict.REFUSE, "pv-victim"),
    ("same directory even if missing", "v1", False, None, False, Verdict.REFUSE, "pv-victim"),
    ("inside another PV", "v1/sub", False, None, True, Verdict.REFUSE, "is inside the directory 'v1' of"),
    ("above another PV", "team", True, None, True, Verdict.REFUSE, "contains the directory 'team/a' of"),
    ("far above another PV", "x", False, None, False, Verdict.REFUSE, "contains the directory 'x/y/z'"),
    ("prefix of a name is not above it", "v", False, None, False, Verdict.CREATE, ""),
    ("name with the other as prefix", "v1-other", False, None, False, Verdict.CREATE, ""),
    ("existing, nobody's, no opt-in", "old", True, None, False, Verdict.REFUSE, "reuseExistingDirectory"),
    ("existing, nobody's, opt-in", "old", True, None, True, Verdict.REUSE, ""),
    ("existing, our own record (crash before the PV)", "mine", True, "mine", False, Verdict.RESUME, ""),
    ("own record for another path is no proof", "mine", True, "elsewhere", False, Verdict.REFUSE, "reuseExisting"),
    ("own record does not beat another PV", "v1", True, "v1", False, Verdict.REFUSE, "pv-victim"),
    ("record but directory gone: create again", "mine", False, "mine", False, Verdict.CREATE, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "path", "exists", "recorded", "reuse", "verdict", "reason"), DECISIONS, ids=[c[0] for c in DECISIONS]
)
def test_provision_decision(
    case: str, path: str, exists: bool, recorded: str | None, reuse: bool, verdict: Verdict, reason: str
) -> None:
    decision = provision_decision(path, "pv-new", OWNERS, exists, recorded, reuse)
    assert decision.verdict is verdict
    assert reason in decision.reason and bool(decision.reason) == (verdict is Verdict.REFUSE)


def test_a_volume_never_conflicts_with_itself() -> None:
    assert conflict("v1", "pv-victim", OWNERS) is None
    assert conflict("v1", "pv-other", OWNERS) is not None


NORMALIZED = [("a", "a"), ("/a/b/", "a/b"), ("a//b", "a/b"), ("./a", "a"), ("a/../b", "b"), ("", None), ("/", None),
              (".", None), ("..", None), ("../x", None), ("a/../..", None), (None, None)]  # fmt: skip


@pytest.mark.parametrize(("path", "expected"), NORMALIZED)
def test_pv_paths_are_read_as_the_directory_they_name(path: str | None, expected: str | None) -> None:
    assert normalized(path) == expected


def _pv(name: str, path: str | None, host: str = "10.0.0.1", fsid: str = "fs1", driver: str = DRIVER_NAME) -> Any:
    attributes = {"host": host, "fsid": fsid} | ({"path": path} if path is not None else {})
    return {"metadata": {"name": name}, "spec": {"csi": {"driver": driver, "volumeAttributes": attributes}}}


def test_every_pv_of_the_share_owns_its_directory_whoever_made_it() -> None:
    pvs = [
        _pv("ours", "a"),
        _pv("static-by-admin", "/b/c/"),
        _pv("share-pv-of-the-provisioner-pod", None),
        _pv("root", "/"),
        _pv("other-server", "d", host="10.0.0.2"),
        _pv("other-fs", "e", fsid="fs2"),
        _pv("other-driver", "f", driver="nfs.csi.k8s.io"),
        {"metadata": {"name": "no-csi"}, "spec": {"nfs": {"path": "/g"}}},
    ]
    assert share_owners(pvs, "10.0.0.1", "fs1") == {"ours": "a", "static-by-admin": "b/c"}


REUSE = [({}, False), (None, False), ({"reuseExistingDirectory": "true"}, True),
         ({"REUSEEXISTINGDIRECTORY": " True "}, True), ({"reuseExistingDirectory": "false"}, False)]  # fmt: skip


@pytest.mark.parametrize(("params", "expected"), REUSE)
def test_reuse_is_an_explicit_opt_in(params: dict[str, str] | None, expected: bool) -> None:
    assert reuse_existing(params) is expected


@pytest.mark.parametrize("value", ["yes", "1", ""])
def test_a_doubtful_reuse_value_is_refused(value: str) -> None:
    with pytest.raises(InvalidArgument, match="reuseExistingDirectory"):
        reuse_existing({"reuseExistingDirectory": value})


def test_reservations_keep_two_provisions_off_one_path() -> None:
    held = Reservations()
    assert held.reserve("pv-1", "team/a") is None
    assert held.reserve("pv-1", "team/a") is None  # the same claim again (a repeated event)
    assert "being provisioned right now" in (held.reserve("pv-2", "team/a") or "")
    assert "pv-1" in (held.reserve("pv-3", "team") or "")
    assert held.reserve("pv-4", "team/b") is None
    held.release("pv-1")
    assert held.reserve("pv-2", "team/a") is None
    assert held.owners() == {"pv-2": "team/a", "pv-4": "team/b"}
