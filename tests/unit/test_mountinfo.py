from __future__ import annotations

import pytest

from cfs_csi.mount.mountinfo import MountTable, MountWatch, escape, parse_mountinfo

TEXT = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:40 / /tmp/root rw,relatime - tmpfs tmpfs rw
41 40 0:40 /state/exports/h/f /tmp/root/target rw,relatime - tmpfs tmpfs rw
42 40 0:40 /state/exports/h/f /tmp/root/target ro,relatime - tmpfs tmpfs rw
43 22 0:52 / /var/lib/kubelet/pods/x/volumes/csi/pv/mount rw,relatime - nfs 10.0.33.133:/bz8eisu7 rw,vers=3
44 22 0:53 / /mnt/with\\040space rw - tmpfs tmpfs rw
garbage line
"""


def test_parse() -> None:
    entries = parse_mountinfo(TEXT)
    assert len(entries) == 6
    nfs = entries[4]
    assert (nfs.fstype, nfs.source, nfs.root) == ("nfs", "10.0.33.133:/bz8eisu7", "/")
    assert entries[5].mount_point == "/mnt/with space"


def test_topmost_mount_wins() -> None:
    table = MountTable(tuple(parse_mountinfo(TEXT)))
    top = table.at("/tmp/root/target/")
    assert top is not None and top.mount_id == 42 and top.read_only
    assert table.at("/tmp/root/other") is None


def test_locate_gives_the_directory_inside_the_file_system() -> None:
    table = MountTable(tuple(parse_mountinfo(TEXT)))
    located = table.locate("/tmp/root/state/exports/h/f")
    assert located is not None
    holder, root = located
    assert holder.mount_id == 40 and root == "/state/exports/h/f"
    located = table.locate("/etc")
    assert located is not None and located[0].mount_id == 22 and located[1] == "/etc"


# -- issue 15: looking one path up in the raw text, and the watch that reads the table only after a change ------

TRICKY = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:40 / /tmp/root rw,relatime - tmpfs tmpfs rw
41 40 0:40 /tmp/root/target /tmp/root/target/sub rw,relatime - tmpfs tmpfs rw
42 40 0:40 /x /tmp/root/target rw,relatime - tmpfs tmpfs rw
43 40 0:40 /y /tmp/root/target ro,relatime - tmpfs tmpfs rw
44 22 0:53 / /mnt/with\\040space rw - tmpfs tmpfs rw
45 22 0:54 / /mnt/back\\134slash\\011tab rw - tmpfs tmpfs rw
46 22 0:55 /tmp/root/gone /mnt/root-named-like-a-target rw - tmpfs tmpfs rw
47 22 0:56 / /tmp/root/gone rw - tmpfs truncated-line-without-separator
48 22 0:57 / /last rw - tmpfs tmpfs rw"""


@pytest.mark.parametrize(
    "path",
    [
        "/tmp/root/target",  # stacked twice, and named as another mount's root: the topmost mount wins
        "/tmp/root/target/",
        "/tmp/root/target/sub",
        "/tmp/root",
        "/",
        "/mnt/with space",
        "/mnt/back\\slash\ttab",
        "/tmp/root/gone",  # only as a root field, and on a malformed line
        "/tmp/root/tar",  # a prefix of a mount point
        "/last",  # the last line has no newline
        "/nowhere",
    ],
)
def test_the_text_search_answers_as_the_full_parse(path: str) -> None:
    parsed = MountTable(tuple(parse_mountinfo(TRICKY)))
    assert MountTable(text=TRICKY).at(path) == parsed.at(path)


def test_the_text_search_finds_the_topmost_mount() -> None:
    top = MountTable(text=TRICKY).at("/tmp/root/target")
    assert top is not None and top.mount_id == 43 and top.read_only


@pytest.mark.parametrize("path", ["/a b", "/a\tb", "/a\nb", "/a\\b", "/plain", "/a\\040b"])
def test_escape_is_what_parsing_undoes(path: str) -> None:
    line = f"1 1 0:1 / {escape(path)} rw - tmpfs tmpfs rw"
    assert parse_mountinfo(line)[0].mount_point == path


def test_entries_are_parsed_from_text_when_asked() -> None:
    assert MountTable(text=TRICKY).entries == tuple(parse_mountinfo(TRICKY))


def test_the_watch_reads_once_while_nothing_changes() -> None:
    watch = MountWatch()
    try:
        first = watch.table()
        assert watch.table() is first and watch.reads == 1
        assert first.at("/") is not None
    finally:
        watch.close()
