"""Directory names, path patterns, the reserved directory, archive names and delete decisions (tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfs_csi.provisioner.main import share_from_env
from cfs_csi.provisioner.paths import (
    RESERVED,
    DeleteAction,
    archive_name,
    checked_relative,
    delete_action,
    directory_for,
)
from cfs_csi.volume.errors import InvalidArgument

PV = "pvc-651c987e-70c5-4542-93c1-2ba8184ad862"
LABELS = {"app": "web", "team": "storage"}
ANNOTATIONS = {"owner": "alice", "evil": "../../etc", "slash": "/abs"}

PATTERNS = [
    ("default", "", f"default-cfs-share-1-{PV}"),
    ("namespace and name", "${.PVC.namespace}/${.PVC.name}", "default/cfs-share-1"),
    ("label", "apps/${.PVC.labels.app}", "apps/web"),
    ("annotation", "${.PVC.annotations.owner}-data", "alice-data"),
    ("trailing slash dropped", "${.PVC.namespace}/", "default"),
    ("literal", "fixed-dir", "fixed-dir"),
]


@pytest.mark.parametrize(("case", "pattern", "expected"), PATTERNS, ids=[c[0] for c in PATTERNS])
def test_patterns(case: str, pattern: str, expected: str) -> None:
    assert directory_for(pattern, "default", "cfs-share-1", PV, LABELS, ANNOTATIONS) == expected


HOSTILE = [
    ("dotdot", "../escape"),
    ("dotdot in the middle", "a/../../b"),
    ("absolute", "/etc/passwd"),
    ("annotation with dotdot", "${.PVC.annotations.evil}"),
    ("annotation with absolute", "${.PVC.annotations.slash}"),
    ("missing label gives empty", "${.PVC.labels.nothere}"),
    ("only slashes", "//"),
    ("dot", "./x"),
    ("empty component", "a//b"),
    ("unknown variable", "${.PVC.uid}"),
    ("unknown field", "${.PV.name}"),
    ("control character", "a\nb"),
]


@pytest.mark.parametrize(("case", "pattern"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_patterns_are_refused(case: str, pattern: str) -> None:
    with pytest.raises(InvalidArgument):
        directory_for(pattern, "default", "cfs-share-1", PV, LABELS, ANNOTATIONS)


@pytest.mark.parametrize("path", [RESERVED, f"{RESERVED}/owners", f"{RESERVED}/owners/pvc-1", f"{RESERVED}/"])
def test_the_reserved_directory_is_never_a_volume(path: str) -> None:
    with pytest.raises(InvalidArgument, match="keeps for itself"):
        checked_relative(path)
    with pytest.raises(InvalidArgument, match="keeps for itself"):
        directory_for("${.PVC.annotations.dir}", "default", "c", PV, {}, {"dir": path})


def test_the_reserved_name_below_the_top_is_an_ordinary_name() -> None:
    assert checked_relative(f"team/{RESERVED}") == f"team/{RESERVED}"


@pytest.mark.parametrize(
    ("directory", "taken", "expected"),
    [
        ("ns-pvc-pv", set(), "archived-ns-pvc-pv"),
        ("ns-pvc-pv", {"archived-ns-pvc-pv"}, "archived-ns-pvc-pv-2"),
        ("ns-pvc-pv", {"archived-ns-pvc-pv", "archived-ns-pvc-pv-2"}, "archived-ns-pvc-pv-3"),
        ("team/data", set(), "team/archived-data"),
    ],
)
def test_archive_names_never_overwrite(directory: str, taken: set[str], expected: str) -> None:
    assert archive_name(directory, taken.__contains__) == expected


ACTIONS = [
    ("nothing set archives", {}, DeleteAction.ARCHIVE),
    ("class gone archives", None, DeleteAction.ARCHIVE),
    ("archive true", {"archiveOnDelete": "true"}, DeleteAction.ARCHIVE),
    ("archive false deletes", {"archiveOnDelete": "false"}, DeleteAction.DELETE),
    ("onDelete delete", {"onDelete": "delete"}, DeleteAction.DELETE),
    ("onDelete retain", {"onDelete": "retain"}, DeleteAction.RETAIN),
    ("onDelete wins over archive", {"onDelete": "retain", "archiveOnDelete": "false"}, DeleteAction.RETAIN),
    ("onDelete wins the other way", {"onDelete": "delete", "archiveOnDelete": "true"}, DeleteAction.DELETE),
    ("keys and values case-insensitive", {"ONDELETE": "Retain"}, DeleteAction.RETAIN),
]


@pytest.mark.parametrize(("case", "params", "action"), ACTIONS, ids=[c[0] for c in ACTIONS])
def test_delete_action(case: str, params: dict[str, str] | None, action: DeleteAction) -> None:
    assert delete_action(params) is action


ENVS = [
    ("seed v3", {"PROVISIONER_NAME": "p", "NFS_SERVER": "10.0.1.128", "NFS_PATH": "/m002rxiu/"}, ("m002rxiu", "3")),
    ("v4 root", {"PROVISIONER_NAME": "p", "NFS_SERVER": "h", "NFS_PATH": "/"}, ("", "4")),
    ("explicit fsid", {"PROVISIONER_NAME": "p", "NFS_SERVER": "h", "NFS_PATH": "/", "NFS_FSID": "x", "NFS_VERS": "4"},
     ("x", "4")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "env", "expected"), ENVS, ids=[c[0] for c in ENVS])
def test_share_from_env(case: str, env: dict[str, str], expected: tuple[str, str]) -> None:
    name, share, root = share_from_env(env)
    assert (share.fsid, share.vers) == expected and root == Path("/persistentvolumes") and name == "p"


def test_share_env_errors() -> None:
    with pytest.raises(ValueError, match="PROVISIONER_NAME"):
        share_from_env({"NFS_SERVER": "h"})
    with pytest.raises(ValueError, match="fsid"):
        share_from_env({"PROVISIONER_NAME": "p", "NFS_SERVER": "h", "NFS_PATH": "/a/b/", "NFS_VERS": "3"})
