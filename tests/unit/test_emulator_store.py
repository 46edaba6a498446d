"""The store's view of existing file systems: deleted rows never shown, and never even read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cfs_csi.emulator import model
from cfs_csi.emulator.faults import Outcome
from cfs_csi.emulator.store import _SELECT, Store, _visible_where


def row(seq: int, name: str, state: str) -> model.FileSystem:
    return model.FileSystem(
        id=f"cfs-{seq:08d}", seq=seq, name=name, zone="ap-guangzhou-3", net_interface="VPC", vpc_id="vpc-a",
        subnet_id="subnet-a", pgroup_id="pgroupbasic", storage_type="SD", protocol="NFS", tags=(), encrypted=False,
        capacity_gib=10, created_at=0.0, ready_at=0.0, outcome=Outcome.AVAILABLE, state=state,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "emulator.db")
    with store.transaction():
        for seq, name, state in [(3, "b", model.AVAILABLE), (1, "a", model.DELETED), (2, "a", model.CREATING),
                                 (4, "a", model.DELETING), (5, "b", model.DELETED)]:  # fmt: skip
            store.insert(row(seq, name, state))
    yield store
    store.close()


@pytest.mark.parametrize(
    ("fs_id", "name", "expected"),
    [
        (None, None, [2, 3, 4]),
        (None, "a", [2, 4]),
        (None, "b", [3]),
        ("cfs-00000001", None, []),  # deleted: as if it never existed
        ("cfs-00000004", None, [4]),  # deleting: still shown, as by the API
        ("cfs-00000004", "b", []),
        ("cfs-00000009", None, []),
    ],
)
def test_visible(store: Store, fs_id: str | None, name: str | None, expected: list[int]) -> None:
    with store.transaction():
        assert [fs.seq for fs in store.visible(fs_id=fs_id, name=name)] == expected


@pytest.mark.parametrize(
    ("fs_id", "name", "index"),
    [(None, None, "file_systems_live"), (None, "a", "file_systems_live_name"),
     ("cfs-00000001", None, "sqlite_autoindex_file_systems_1")],
)  # fmt: skip
def test_deleted_rows_are_not_read(store: Store, fs_id: str | None, name: str | None, index: str) -> None:
    """The plan goes through an index that holds no deleted row (or the primary key): never a table scan."""
    where, args = _visible_where(fs_id, name)
    plan = " ".join(
        str(r[3]) for r in store._db.execute(f"EXPLAIN QUERY PLAN {_SELECT} WHERE {where} ORDER BY seq", args)
    )
    assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan


def test_admin_rows_still_include_deleted_ones(store: Store) -> None:
    with store.transaction():
        assert [fs.seq for fs in store.all()] == [1, 2, 3, 4, 5]
        assert store.count_deleted() == 2
