"""The local backend's tree copy and measure never follow a link a pod planted, and skip what is not data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cfs_csi.cloud import localtree
from cfs_csi.cloud.localtree import TreeError, copy_tree, measure


def _open(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A volume's content as a pod may leave it: links out of the tree, a FIFO, nested data."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("do not copy")
    volume = tmp_path / "volume"
    (volume / "a" / "b").mkdir(parents=True)
    (volume / "a" / "b" / "data").write_bytes(b"x" * 3000)
    (volume / "top").write_text("top")
    (volume / "link-to-secret-dir").symlink_to(secret)
    (volume / "a" / "link-to-key").symlink_to(secret / "key")
    os.mkfifo(volume / "fifo")
    return volume


def test_copy_keeps_links_as_links_and_skips_fifos(hostile: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    src, dst = _open(hostile), _open(out)
    try:
        usage = copy_tree(src, dst)
    finally:
        os.close(src)
        os.close(dst)
    assert (out / "a" / "b" / "data").read_bytes() == b"x" * 3000
    assert (out / "top").read_text() == "top"
    assert (out / "link-to-secret-dir").is_symlink()
    assert os.readlink(out / "link-to-secret-dir") == str(tmp_path / "secret")
    assert (out / "a" / "link-to-key").is_symlink()
    assert not (out / "fifo").exists()
    # Nothing of the link targets was copied as data.
    copied = [p for p in out.rglob("*") if p.is_file() and not p.is_symlink()]
    assert sorted(p.name for p in copied) == ["data", "top"]
    assert usage.skipped == 1 and usage.bytes == 3003


def test_measure_counts_only_the_tree(hostile: Path) -> None:
    fd = _open(hostile)
    try:
        usage = measure(fd)
    finally:
        os.close(fd)
    # a, a/b, a/b/data, top, two links, fifo: 7 entries; bytes only of regular files, not of the link targets.
    assert (usage.files, usage.bytes) == (7, 3003)


def test_a_deep_tree_fails_instead_of_exhausting_descriptors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localtree, "MAX_DEPTH", 5)
    deep = tmp_path / "deep"
    (deep / "1" / "2" / "3" / "4" / "5" / "6").mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()
    before = len(os.listdir("/proc/self/fd"))
    src, dst = _open(deep), _open(out)
    try:
        with pytest.raises(TreeError):
            copy_tree(src, dst)
        with pytest.raises(TreeError):
            measure(src)
    finally:
        os.close(src)
        os.close(dst)
    assert len(os.listdir("/proc/self/fd")) == before  # every handle of the walk was closed
