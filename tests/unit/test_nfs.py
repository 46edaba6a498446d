"""NFS source and options: the decisions the node makes before the last syscall."""

from __future__ import annotations

import pytest

from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.exports import ExportRoot
from cfs_csi.volume.nfs import nfs_mount_for, normalize_subdir

V3 = ("vers=3", "noresvport", "nolock", "proto=tcp")

MOUNTS = [
    ("seed dedicated v3", {"host": "10.0.33.133", "fsid": "bz8eisu7", "vers": "3"}, (), False,
     "10.0.33.133:/bz8eisu7/", V3),
    ("vers defaults to 3", {"host": "10.0.33.133", "fsid": "bz8eisu7"}, (), False, "10.0.33.133:/bz8eisu7/", V3),
    ("dedicated v4 mounts the root", {"host": "10.0.0.9", "fsid": "bz8eisu7", "vers": "4"}, (), False,
     "10.0.0.9:/", ("vers=4", "noresvport")),
    ("v4 needs no fsid", {"host": "10.0.0.9", "vers": "4"}, (), False, "10.0.0.9:/", ("vers=4", "noresvport")),
    ("seed shared v3", {"host": "10.0.1.128", "fsid": "m002rxiu", "path": "default-cfs-share-pvc-58c5"}, (), False,
     "10.0.1.128:/m002rxiu/default-cfs-share-pvc-58c5", V3),
    ("shared v4", {"host": "10.0.1.128", "fsid": "m002rxiu", "vers": "4", "path": "a/b"}, (), False,
     "10.0.1.128:/a/b", ("vers=4", "noresvport")),
    ("path slashes folded", {"host": "h", "fsid": "f", "path": "a//b/"}, (), False, "h:/f/a/b", V3),
    ("read-only adds ro", {"host": "h", "fsid": "f"}, (), True, "h:/f/", (*V3, "ro")),
    ("read-only replaces rw", {"host": "h", "fsid": "f"}, ("rw",), True, "h:/f/", (*V3, "ro")),
    ("flags appended", {"host": "h", "fsid": "f"}, ("hard", "timeo=600,retrans=2"), False, "h:/f/",
     (*V3, "hard", "timeo=600", "retrans=2")),
    ("flag overrides a base option", {"host": "h", "fsid": "f"}, ("proto=udp",), False, "h:/f/",
     ("vers=3", "noresvport", "nolock", "proto=udp")),
    ("same major version allowed", {"host": "h", "vers": "4"}, ("vers=4.1",), False, "h:/",
     ("noresvport", "vers=4.1")),
    ("nfsvers spelling", {"host": "h", "fsid": "f"}, ("nfsvers=3",), False, "h:/f/",
     ("noresvport", "nolock", "proto=tcp", "nfsvers=3")),
    ("duplicate flags once", {"host": "h", "fsid": "f"}, ("nolock", "nolock"), False, "h:/f/", V3),
    ("ipv6 host bracketed", {"host": "fd00::1", "fsid": "f"}, (), False, "[fd00::1]:/f/", V3),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "context", "flags", "read_only", "source", "options"), MOUNTS, ids=[c[0] for c in MOUNTS]
)
def test_mount(
    case: str, context: dict[str, str], flags: tuple[str, ...], read_only: bool, source: str, options: tuple[str, ...]
) -> None:
    mount = nfs_mount_for(context, flags, read_only)
    assert mount.source == source
    assert mount.options == options


BAD = [
    ("no host", {"fsid": "f"}, (), "no 'host'"),
    ("host with a slash", {"host": "h/x", "fsid": "f"}, (), "not a host name"),
    ("host with options smuggled", {"host": "h,vers=4", "fsid": "f"}, (), "not a host name"),
    ("v3 without fsid", {"host": "h"}, (), "no 'fsid'"),
    ("fsid with a slash", {"host": "h", "fsid": "../x"}, (), "not a CFS file-system id"),
    ("unknown version", {"host": "h", "fsid": "f", "vers": "2"}, (), "not 3 or 4"),
    ("absolute path", {"host": "h", "fsid": "f", "path": "/etc"}, (), "must be relative"),
    ("dotdot path", {"host": "h", "fsid": "f", "path": "a/../../b"}, (), "'..'"),
    ("dot path", {"host": "h", "fsid": "f", "path": "./a"}, (), "'..'"),
    ("conflicting version flag", {"host": "h", "fsid": "f"}, ("vers=4",), "conflicts"),
]


@pytest.mark.parametrize(("case", "context", "flags", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_mounts(case: str, context: dict[str, str], flags: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        nfs_mount_for(context, flags)


@pytest.mark.parametrize(("raw", "expected"), [("", ""), ("a", "a"), ("a/b/", "a/b"), ("a//b", "a/b")])
def test_normalize_subdir(raw: str, expected: str) -> None:
    assert normalize_subdir(raw) == expected


def test_export_root_maps_nfs_coordinates(tmp_path: object) -> None:
    from pathlib import Path

    root = ExportRoot(Path("/srv/exports"))
    assert root.directory_for("10.0.0.1", "abc") == Path("/srv/exports/10.0.0.1/abc")
    assert root.directory_for("10.0.0.1", "abc", "ns-pvc-pv") == Path("/srv/exports/10.0.0.1/abc/ns-pvc-pv")
    for host, fsid, sub in [("..", "abc", ""), ("h", "", ""), ("h", "a/b", ""), ("h", "f", "../g")]:
        with pytest.raises(InvalidArgument):
            root.directory_for(host, fsid, sub)
