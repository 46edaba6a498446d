"""Shared volumes' stats against their quota: the pure decisions (tables), the walk over hostile trees, and the
single-flight cached walks (issue 16)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cfs_csi.driver.published import (
    Publication,
    PublishedVolumes,
    largest_quota,
    quota_after_expansion,
)
from cfs_csi.mount.stats import VolumeStats
from cfs_csi.mount.usage import (
    MAX_CACHE,
    MIN_CACHE,
    QUOTA_ATTRIBUTE,
    Budget,
    Figures,
    Usage,
    UsageProbes,
    cache_lifetime,
    quota_of,
    report,
    walk,
)
from cfs_csi.volume.capacity import CapacityError
from cfs_csi.volume.quota import GIB
from tests.conftest import deep

FS = VolumeStats(
    total_bytes=1000 * GIB, available_bytes=600 * GIB, used_bytes=400 * GIB,
    total_inodes=10_000, free_inodes=9_000, used_inodes=1_000,
)  # fmt: skip
FS_BYTES = Figures(1000 * GIB, 600 * GIB, 400 * GIB)
FS_INODES = Figures(10_000, 9_000, 1_000)
TIGHT = VolumeStats(1000 * GIB, 3 * GIB, 997 * GIB, 10_000, 9_000, 1_000)
WALKED = Usage(used_bytes=4 * GIB, used_inodes=12, complete=True, seconds=0.1)
OVER = Usage(used_bytes=12 * GIB, used_inodes=12, complete=True, seconds=0.1)
STOPPED = Usage(0, 0, False, "the walk stopped: more than 1000000 entries", 20.0, exhausted=True)


def test_the_node_reads_the_attribute_the_provisioner_writes() -> None:
    from cfs_csi.provisioner.quotas import QUOTA_ATTRIBUTE as WRITTEN

    assert QUOTA_ATTRIBUTE == WRITTEN


@pytest.mark.parametrize(
    ("quota", "usage", "fs", "bytes_", "inodes", "says"),
    [
        # no quota (dedicated, or shared without one): the file system's figures, as always
        (None, None, FS, FS_BYTES, FS_INODES, "mounted"),
        (None, WALKED, FS, FS_BYTES, FS_INODES, "mounted"),
        # a quota and a complete walk: the quota is the total, the walk the usage
        (10 * GIB, WALKED, FS, Figures(10 * GIB, 6 * GIB, 4 * GIB), Figures(10_000, 9_000, 12), "quota"),
        # the file system has less free than the quota leaves: no more than the file system has
        (10 * GIB, WALKED, TIGHT, Figures(10 * GIB, 3 * GIB, 4 * GIB), Figures(10_000, 9_000, 12), "quota"),
        # more used than the quota recorded here (raised on another node): nothing available, said so
        (10 * GIB, OVER, FS, Figures(10 * GIB, 0, 12 * GIB), Figures(10_000, 9_000, 12), "exceed"),
        # the walk ran out of budget, or never ran: the file system's figures, and the message says so
        (10 * GIB, STOPPED, FS, FS_BYTES, FS_INODES, "unknown (the walk stopped: more than 1000000 entries)"),
        (10 * GIB, None, FS, FS_BYTES, FS_INODES, "unknown (not walked)"),
    ],
)
def test_report(
    quota: int | None, usage: Usage | None, fs: VolumeStats, bytes_: Figures, inodes: Figures, says: str
) -> None:
    answer = report(quota, usage, fs)
    assert (answer.bytes, answer.inodes) == (bytes_, inodes)
    assert says in answer.message


@pytest.mark.parametrize(
    ("usage", "lifetime"),
    [
        (Usage(1, 1, True, seconds=0.001), MIN_CACHE),  # cheap: walked again soon
        (Usage(1, 1, True, seconds=1.0), 50.0),  # 50 times what it cost
        (Usage(1, 1, True, seconds=60.0), MAX_CACHE),
        (STOPPED, MAX_CACHE),  # out of budget: the same answer for the same cost; not walked again soon
        (Usage(0, 0, False, "the walk failed: Stale file handle"), 0.0),  # an error: the next call tries again
    ],
)
def test_cache_lifetime(usage: Usage, lifetime: float) -> None:
    assert cache_lifetime(usage) == lifetime


@pytest.mark.parametrize(
    ("context", "quota"),
    [
        ({}, None),
        ({QUOTA_ATTRIBUTE: "10737418240"}, 10 * GIB),
        ({QUOTA_ATTRIBUTE: " 10737418240 "}, 10 * GIB),
        ({QUOTA_ATTRIBUTE: ""}, None),
        ({QUOTA_ATTRIBUTE: "0"}, None),
        ({QUOTA_ATTRIBUTE: "-5"}, None),
        ({QUOTA_ATTRIBUTE: "10Gi"}, None),
        ({QUOTA_ATTRIBUTE: "١٢"}, None),  # digits, but not ASCII ones
        ({QUOTA_ATTRIBUTE: str(2**63)}, None),
    ],
)
def test_quota_of(context: dict[str, str], quota: int | None) -> None:
    assert quota_of(context) == quota


@pytest.mark.parametrize(
    ("shared", "recorded", "required", "limit", "quota"),
    [
        (False, None, 20 * GIB, 0, None),  # dedicated: nothing changes on the node
        (False, 10 * GIB, 20 * GIB, 0, None),
        (True, 10 * GIB, 20 * GIB, 0, 20 * GIB),  # the quota the controller set
        (True, 10 * GIB, 20 * GIB + 1, 0, 21 * GIB),  # whole GiB, as the controller rounds
        (True, 10 * GIB, 0, 30 * GIB, 30 * GIB),  # only a limit: that
        (True, None, 20 * GIB, 0, 20 * GIB),  # published without a quota: the controller has set one now
        (True, None, 1, 0, 10 * GIB),  # CFS's minimum
        (True, 10 * GIB, 0, 0, 10 * GIB),  # no size asked: as recorded
        (True, None, 0, 0, None),
        (True, 30 * GIB, 20 * GIB, 0, 30 * GIB),  # below the recorded quota: the recorded one stays
        (True, 20 * GIB, 20 * GIB, 0, 20 * GIB),  # repeated: idempotent
    ],
)
def test_quota_after_expansion(
    shared: bool, recorded: int | None, required: int, limit: int, quota: int | None
) -> None:
    assert quota_after_expansion(shared, recorded, required, limit) == quota


@pytest.mark.parametrize(
    ("required", "limit"),
    [(-1, 0), (0, -1), (10_000_001 * GIB, 0), (20 * GIB + 1, 20 * GIB), (GIB, 5 * GIB)],
)
def test_quota_after_expansion_refuses_what_no_quota_can_be(required: int, limit: int) -> None:
    with pytest.raises(CapacityError):
        quota_after_expansion(True, 10 * GIB, required, limit)


def test_largest_quota() -> None:
    def publication(quota: int | None) -> Publication:
        return Publication("fsid:dir", f"/t/{quota}", "h:/fsid/dir", quota_bytes=quota)

    assert largest_quota([]) is None
    assert largest_quota([publication(None)]) is None
    assert largest_quota([publication(None), publication(10 * GIB), publication(30 * GIB)]) == 30 * GIB


def test_records_without_a_quota_stay_readable_and_are_written_as_before(tmp_path: Path) -> None:
    published = PublishedVolumes(tmp_path)
    old = {"volume_id": "cfs-a", "target_path": "/t/a", "source": "h:/a/", "exclusive": False}
    published._path("/t/a").write_text(json.dumps(old))
    assert published.get("/t/a") == Publication("cfs-a", "/t/a", "h:/a/")
    published.record(Publication("cfs-b", "/t/b", "h:/b/"))
    assert json.loads(published._path("/t/b").read_text()) == {**old, "volume_id": "cfs-b", "target_path": "/t/b",
                                                                 "source": "h:/b/"}  # fmt: skip
    published.record(Publication("f:d", "/t/c", "h:/f/d", quota_bytes=10 * GIB))
    assert published.get("/t/c") == Publication("f:d", "/t/c", "h:/f/d", quota_bytes=10 * GIB)
    for bad in ("10", -1, 0, True, 2**63, 1.5):  # a damaged quota is dropped, the record stays
        published._path("/t/d").write_text(json.dumps({**old, "target_path": "/t/d", "quota_bytes": bad}))
        assert published.get("/t/d") == Publication("cfs-a", "/t/d", "h:/a/"), bad


# -- the walk over hostile trees ---------------------------------------------------------------------------------


def blocks(path: Path) -> int:
    return os.lstat(path).st_blocks * 512


def test_walk_counts_files_directories_and_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"x" * 100_000)
    (tmp_path / "g").write_bytes(b"y" * 10_000)
    os.link(tmp_path / "g", tmp_path / "a" / "hard")
    usage = walk(str(tmp_path), Budget())
    expected = sum(blocks(p) for p in (tmp_path, tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "f",
                                       tmp_path / "g"))  # fmt: skip
    assert (usage.complete, usage.used_bytes, usage.used_inodes) == (True, expected, 5)
    assert usage.used_bytes >= 110_000


def test_walk_follows_no_symlink_and_opens_no_fifo(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"z" * 1_000_000)
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "loop").symlink_to(".")  # a symlink loop
    (volume / "up").symlink_to("..")
    (volume / "out").symlink_to(outside)
    (volume / "big").symlink_to(outside / "big")
    os.mkfifo(volume / "fifo")  # opening it would block until a writer comes: never opened
    usage = walk(str(volume), Budget())
    assert usage.complete, usage.reason
    assert usage.used_inodes == 6  # the root, four symlinks and the FIFO
    assert usage.used_bytes < 1_000_000


def undeep(root: Path) -> None:
    """Remove what :func:`deep` made (shutil.rmtree recurses, and would overflow Python's stack)."""
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        while True:
            try:
                fds.append(os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
            except FileNotFoundError:
                break
        while len(fds) > 1:
            os.close(fds.pop())
            os.rmdir("d", dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)


def test_walk_stops_at_the_depth_limit_without_a_figure() -> None:
    # Not below pytest's tmp_path: its clean-up recurses, and a tree left by a killed run would break it.
    root = Path(tempfile.mkdtemp(prefix="cfs-csi-deep-"))
    try:
        deep(root, 2000)
        usage = walk(str(root), Budget(depth=128))
        assert (usage.complete, usage.used_bytes, usage.exhausted) == (False, 0, True)
        assert "deeper than 128" in usage.reason
        within = walk(str(root), Budget(depth=4000))  # no recursion: any depth the budget allows
        assert within.complete and within.used_inodes == 2001
    finally:
        undeep(root)
        root.rmdir()


@pytest.mark.parametrize(
    ("budget", "says"),
    [
        (Budget(entries=500), "more than 500 entries"),
        (Budget(pending=100), "more than 100 directories waiting"),
        (Budget(links=10), "more than 10 hard-linked files"),
        (Budget(seconds=0.0), "more than 0s"),
    ],
)
def test_walk_stops_at_its_budget_without_a_figure(tmp_path: Path, budget: Budget, says: str) -> None:
    for index in range(300):
        (tmp_path / f"d{index}").mkdir()
        (tmp_path / f"d{index}" / "f").write_bytes(b"")
        os.link(tmp_path / f"d{index}" / "f", tmp_path / f"d{index}" / "g")
    usage = walk(str(tmp_path), budget)
    assert (usage.complete, usage.used_bytes, usage.used_inodes, usage.exhausted) == (False, 0, 0, True)
    assert says in usage.reason
    assert walk(str(tmp_path), Budget()).used_inodes == 601  # the root, 300 directories, 300 files (linked twice)


def mutating_clock(after: int, change: Callable[[], None]) -> Callable[[], float]:
    """A clock that changes the tree at its ``after``-th reading (the walk reads it at every entry and descent)."""
    calls = [0]

    def clock() -> float:
        calls[0] += 1
        if calls[0] == after:
            change()
        return 0.0

    return clock


def test_walk_survives_a_tree_changed_under_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "secret").write_bytes(b"s" * 1_000_000)
    volume = tmp_path / "volume"
    (volume / "dir").mkdir(parents=True)
    (volume / "dir" / "f").write_bytes(b"")
    (volume / "gone").mkdir()
    (volume / "file").write_bytes(b"")

    def change() -> None:
        # after the root was listed: a directory swapped for a symlink out of the volume, another for a file,
        # and a file for a directory
        os.rename(volume / "dir", tmp_path / "moved")
        (volume / "dir").symlink_to(outside)
        os.rmdir(volume / "gone")
        (volume / "gone").write_bytes(b"")
        os.unlink(volume / "file")
        (volume / "file").mkdir()

    usage = walk(str(volume), Budget(), clock=mutating_clock(5, change))  # 1 start + 3 entries + 1 descent
    assert usage.complete, usage.reason
    assert usage.used_bytes < 1_000_000  # nothing out of the volume was counted
    assert usage.used_inodes == 4  # what the root's listing saw; the swapped directories were not entered


def test_walk_of_what_is_not_a_directory_has_no_figure(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    (tmp_path / "l").symlink_to(tmp_path)
    for name in ("f", "l", "missing"):
        usage = walk(str(tmp_path / name), Budget())
        assert not usage.complete and "cannot open" in usage.reason


# -- single flight and cache ----------------------------------------------------------------------------------


async def test_a_hung_walk_is_started_once_and_costs_the_others_nothing() -> None:
    release = threading.Event()
    calls: list[str] = []

    def walker(path: str, budget: Budget) -> Usage:
        calls.append(path)
        if path.startswith("/hung"):
            release.wait(30)
        return Usage(len(path), 1, True, seconds=0.0)

    probes = UsageProbes(Budget(seconds=0.0), walker)  # deadline = 5 s of grace: a hung walk is past it soon
    try:
        first = await probes.usage("/hung/a", 0.05)
        assert not first.complete and "still running" in first.reason
        for _ in range(3):
            again = await probes.usage("/hung/a", 0.05)
            assert not again.complete
        assert calls.count("/hung/a") == 1
        healthy = await probes.usage("/ok", 30)
        assert (healthy.complete, healthy.used_bytes) == (True, 3)
    finally:
        release.set()


async def test_walks_are_cached_per_target_and_forgotten_on_request() -> None:
    calls: list[str] = []

    def walker(path: str, budget: Budget) -> Usage:
        calls.append(path)
        return Usage(len(calls), 1, True, seconds=0.0)

    probes = UsageProbes(Budget(), walker)
    assert (await probes.usage("/a", 30)).used_bytes == 1
    assert (await probes.usage("/a", 30)).used_bytes == 1  # cached
    assert (await probes.usage("/b", 30)).used_bytes == 2  # per target
    probes.forget("/a")
    assert (await probes.usage("/a", 30)).used_bytes == 3
    assert calls == ["/a", "/b", "/a"]


async def test_a_failed_walk_is_not_cached_and_an_exception_is_a_reason() -> None:
    answers: list[Usage | Exception] = [RuntimeError("boom"), Usage(0, 0, False, "the walk failed: Stale file handle")]

    def walker(path: str, budget: Budget) -> Usage:
        answer = answers.pop(0) if answers else Usage(7, 1, True)
        if isinstance(answer, Exception):
            raise answer
        return answer

    probes = UsageProbes(Budget(), walker)
    assert "boom" in (await probes.usage("/a", 30)).reason
    assert "Stale" in (await probes.usage("/a", 30)).reason
    assert (await probes.usage("/a", 30)).used_bytes == 7
