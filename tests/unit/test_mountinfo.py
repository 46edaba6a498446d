from __future__ import annotations

from cfs_csi.mount.mountinfo import MountTable, parse_mountinfo

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
