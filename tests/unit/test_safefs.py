"""safefs: directories below a root handle are reached without following any symlink."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cfs_csi.safefs import (
    UnsafePath,
    components,
    entry_mode,
    make_dirs,
    open_dir,
    open_parent,
    read_file,
    remove_file,
    remove_tree,
    rename_directory,
    write_file,
)
from cfs_csi.volume.errors import InvalidArgument


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    share = tmp_path / "share"
    (share / "a" / "b").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (share / "up").symlink_to("..")
    (share / "a" / "link").symlink_to(tmp_path / "outside")
    (share / "file").write_text("x")
    fd = os.open(share, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield share, fd
    finally:
        os.close(fd)


def _real(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


@pytest.mark.parametrize("relative", ["", "/abs", "a/../b", "a//b", "./a", "a/.", "a\x00b", "x" * 256])
def test_malformed_paths_are_refused(relative: str) -> None:
    with pytest.raises(InvalidArgument):
        components(relative)


def test_open_dir_reaches_a_real_directory(root: tuple[Path, int]) -> None:
    share, fd = root
    assert _real(open_dir(fd, "a/b")) == str(share / "a" / "b")
    assert _real(open_dir(fd, "a/b/")) == str(share / "a" / "b")


@pytest.mark.parametrize(
    ("relative", "message"),
    [("up", "up is a symbolic link"), ("up/share/a", "up is a symbolic link"), ("a/link", "a/link is a symbolic"),
     ("file", "file is not a directory"), ("file/x", "file is not a directory")],
)  # fmt: skip
def test_open_dir_refuses_symlinks_and_files(root: tuple[Path, int], relative: str, message: str) -> None:
    _, fd = root
    with pytest.raises(UnsafePath, match=message):
        open_dir(fd, relative)


def test_open_dir_missing_component(root: tuple[Path, int]) -> None:
    with pytest.raises(FileNotFoundError):
        open_dir(root[1], "a/missing/c")


def test_make_dirs_creates_only_below_root(root: tuple[Path, int]) -> None:
    share, fd = root
    leaf, created = make_dirs(fd, "a/new/leaf", 0o700)
    assert created and _real(leaf) == str(share / "a" / "new" / "leaf")
    leaf, created = make_dirs(fd, "a/new/leaf", 0o700)
    assert not created and _real(leaf) == str(share / "a" / "new" / "leaf")


def test_make_dirs_never_creates_through_a_symlink(root: tuple[Path, int], tmp_path: Path) -> None:
    _, fd = root
    before = sorted(p.name for p in (tmp_path / "outside").iterdir())
    with pytest.raises(UnsafePath):
        make_dirs(fd, "a/link/x", 0o700)
    with pytest.raises(UnsafePath):
        make_dirs(fd, "up/escape", 0o700)
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == before
    assert not (tmp_path / "escape").exists()


# --- acting on one entry of a handle ---------------------------------------------------------------------------


def test_open_parent_gives_the_real_parent_and_the_leaf(root: tuple[Path, int]) -> None:
    share, fd = root
    parent, leaf = open_parent(fd, "a/b")
    assert (_real(parent), leaf) == (str(share / "a"), "b")
    parent, leaf = open_parent(fd, "top")
    assert (_real(parent), leaf) == (str(share), "top")
    with pytest.raises(UnsafePath):
        open_parent(fd, "up/x")


def test_remove_tree_deletes_a_real_directory_and_never_follows_links(root: tuple[Path, int], tmp_path: Path) -> None:
    share, fd = root
    (tmp_path / "outside" / "keep.txt").write_text("keep")
    (share / "a" / "b" / "inner-link").symlink_to(tmp_path / "outside")
    (share / "a" / "b" / "f").write_text("x")
    a = open_dir(fd, "a")
    try:
        assert remove_tree(a, "b") is True
        assert remove_tree(a, "b") is False
        with pytest.raises(UnsafePath, match="link is a symbolic link"):
            remove_tree(a, "link")
    finally:
        os.close(a)
    assert (tmp_path / "outside" / "keep.txt").read_text() == "keep"
    assert (share / "a" / "link").is_symlink()
    with pytest.raises(UnsafePath, match="file is not a directory"):
        remove_tree(fd, "file")


def test_rename_directory_stays_in_its_parent_and_replaces_nothing(root: tuple[Path, int]) -> None:
    share, fd = root
    (share / "taken").mkdir()
    with pytest.raises(FileExistsError):
        rename_directory(fd, "a", "taken")
    with pytest.raises(FileExistsError):
        rename_directory(fd, "a", "up")
    with pytest.raises(UnsafePath):
        rename_directory(fd, "up", "moved")
    with pytest.raises(InvalidArgument):
        rename_directory(fd, "a", "../escape")
    rename_directory(fd, "a", "moved")
    assert (share / "moved" / "b").is_dir() and not (share / "a").exists()


def test_small_files_are_written_and_read_without_following_links(root: tuple[Path, int], tmp_path: Path) -> None:
    share, fd = root
    write_file(fd, "record", b"one")
    write_file(fd, "record", b"two")
    assert read_file(fd, "record") == b"two" and (share / "record").stat().st_mode & 0o777 == 0o600
    assert read_file(fd, "absent") is None
    (share / "evil").symlink_to(tmp_path / "outside" / "target")
    with pytest.raises(UnsafePath):
        read_file(fd, "evil")
    with pytest.raises(UnsafePath):
        read_file(fd, "a")
    remove_file(fd, "evil")
    remove_file(fd, "evil")
    assert not (share / "evil").is_symlink() and entry_mode(fd, "evil") is None
