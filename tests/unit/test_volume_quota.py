"""The directory-quota decision and the quota path (pure, table-driven)."""

from __future__ import annotations

import pytest

from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.quota import GIB, directory_of, quota_for_claim, quota_path


@pytest.mark.parametrize(
    ("size", "gib", "exact", "reason_has"),
    [
        (0, 0, False, "no size"),
        (-5, 0, False, "no size"),
        (1, 10, False, "start at 10 GiB"),
        (GIB, 10, False, "start at 10 GiB"),
        (9 * GIB + 1, 10, False, "rounded up to 10 GiB"),
        (10 * GIB, 10, True, ""),
        (10 * GIB + 1, 11, False, "rounded up to 11 GiB"),
        (123 * GIB, 123, True, ""),
        (10_000_000 * GIB, 10_000_000, True, ""),
        (10_000_000 * GIB + 1, 0, False, "exceed the largest"),
    ],
)
def test_quota_for_claim(size: int, gib: int, exact: bool, reason_has: str) -> None:
    decision = quota_for_claim(size)
    assert (decision.capacity_gib, decision.exact, decision.possible) == (gib, exact, gib > 0)
    assert decision.capacity_bytes == gib * GIB
    assert reason_has in decision.reason
    if decision.possible:
        assert decision.capacity_bytes >= size  # never below the claim
    if not reason_has:
        assert decision.reason == ""


@pytest.mark.parametrize(
    ("directory", "path"),
    [
        ("default-data-pvc-1", "/cfs/default-data-pvc-1"),
        ("team/a/b", "/cfs/team/a/b"),
        ("/team/a/", "/cfs/team/a"),
        ("with space", "/cfs/with space"),
    ],
)
def test_quota_path_round_trip(directory: str, path: str) -> None:
    assert quota_path(directory) == path
    assert directory_of(path) == path.removeprefix("/cfs/")


@pytest.mark.parametrize("directory", ["", "/", "a/../b", "..", "a//b", "./a", "a/\x00", "a\nb", "a\x7fb", "x" * 1025])
def test_quota_path_refuses(directory: str) -> None:
    with pytest.raises(InvalidArgument):
        quota_path(directory)


@pytest.mark.parametrize("path", ["/cfs", "/cfs/", "/other/a", "cfs/a", "/cfs/a/../b", "/cfs//a", "/cfs/a/"])
def test_directory_of_refuses(path: str) -> None:
    with pytest.raises(InvalidArgument):
        directory_of(path)
