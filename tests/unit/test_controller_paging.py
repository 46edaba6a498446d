"""ListVolumes' and ListSnapshots' paging (pure): one page after the last id handed out."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from cfs_csi.driver.controller import check_page_request, page_of
from cfs_csi.driver.errors import CsiError, StatusCode


@dataclass(frozen=True)
class Item:
    id: str


IDS = ["cfs-c", "cfs-a", "cfs-b"]


@pytest.mark.parametrize(
    ("token", "max_entries", "page", "next_token"),
    [
        ("", 0, ["cfs-a", "cfs-b", "cfs-c"], ""),
        ("", 2, ["cfs-a", "cfs-b"], "cfs-b"),
        ("cfs-b", 2, ["cfs-c"], ""),
        ("cfs-a", 1, ["cfs-b"], "cfs-b"),
        ("cfs-c", 5, [], ""),
        ("cfs-aa", 0, ["cfs-b", "cfs-c"], ""),  # the token's item deleted meanwhile: the next ones still follow
    ],
)
def test_page_of(token: str, max_entries: int, page: list[str], next_token: str) -> None:
    got, following = page_of([Item(i) for i in IDS], token, max_entries)
    assert ([item.id for item in got], following) == (page, next_token)


@pytest.mark.parametrize(
    ("max_entries", "token", "code"),
    [(-1, "", StatusCode.INVALID_ARGUMENT), (0, "not-ours", StatusCode.ABORTED), (0, "cfs-a", None), (3, "", None)],
)
def test_check_page_request(max_entries: int, token: str, code: StatusCode | None) -> None:
    if code is None:
        check_page_request(max_entries, token, re.compile(r"cfs-[a-z]+"))
        return
    with pytest.raises(CsiError) as raised:
        check_page_request(max_entries, token, re.compile(r"cfs-[a-z]+"))
    assert raised.value.code is code
