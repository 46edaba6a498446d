"""The SQLite tables beside the file systems: directory quotas, snapshots and permission groups.

Each table is a thin class over the store's one connection; the store's lock and transaction cover them (use
them only inside ``Store.transaction()``). SQL text is constant; values always go through placeholders.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from cfs_csi.emulator.model import Tag
from cfs_csi.emulator.quotas import Quota
from cfs_csi.emulator.snapshots import Snapshot

SCHEMA = """
CREATE TABLE IF NOT EXISTS quotas (
    fs_id TEXT NOT NULL,
    path TEXT NOT NULL,
    capacity_gib INTEGER NOT NULL,
    file_limit INTEGER NOT NULL,
    created_at REAL NOT NULL,
    ready_at REAL NOT NULL,
    PRIMARY KEY (fs_id, path)
);
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    name TEXT NOT NULL,
    fs_id TEXT NOT NULL,
    fs_name TEXT NOT NULL,
    storage_type TEXT NOT NULL,
    tags TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_at REAL NOT NULL,
    ready_at REAL NOT NULL,
    state TEXT NOT NULL,
    delete_at REAL
);
CREATE INDEX IF NOT EXISTS snapshots_fs_id ON snapshots (fs_id);
CREATE TABLE IF NOT EXISTS pgroups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class QuotaTable:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def put(self, quota: Quota) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO quotas (fs_id, path, capacity_gib, file_limit, created_at, ready_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (quota.fs_id, quota.path, quota.capacity_gib, quota.file_limit, quota.created_at, quota.ready_at),
        )

    def of(self, fs_id: str) -> list[Quota]:
        """The file system's quotas in the order they were first set."""
        rows = self._db.execute(
            "SELECT fs_id, path, capacity_gib, file_limit, created_at, ready_at FROM quotas WHERE fs_id = ? "
            "ORDER BY created_at, path",
            (fs_id,),
        )
        return [Quota(*row) for row in rows]

    def delete(self, fs_id: str, path: str | None = None) -> int:
        """Delete one quota (or every quota of ``fs_id``); returns how many went."""
        if path is None:
            return self._db.execute("DELETE FROM quotas WHERE fs_id = ?", (fs_id,)).rowcount
        return self._db.execute("DELETE FROM quotas WHERE fs_id = ? AND path = ?", (fs_id, path)).rowcount


_SNAPSHOT_COLUMNS = (
    "id, seq, name, fs_id, fs_name, storage_type, tags, size_bytes, created_at, ready_at, state, delete_at"
)


def _snapshot(row: sqlite3.Row) -> Snapshot:
    return Snapshot(
        id=row["id"],
        seq=row["seq"],
        name=row["name"],
        fs_id=row["fs_id"],
        fs_name=row["fs_name"],
        storage_type=row["storage_type"],
        tags=tuple(Tag(k, v) for k, v in json.loads(row["tags"])),
        size_bytes=row["size_bytes"],
        created_at=row["created_at"],
        ready_at=row["ready_at"],
        state=row["state"],
        delete_at=row["delete_at"],
    )


class SnapshotTable:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def put(self, snap: Snapshot) -> None:
        tags = json.dumps([[t.key, t.value] for t in snap.tags], ensure_ascii=False)
        row = (
            snap.id, snap.seq, snap.name, snap.fs_id, snap.fs_name, snap.storage_type, tags, snap.size_bytes,
            snap.created_at, snap.ready_at, snap.state, snap.delete_at,
        )  # fmt: skip
        marks = ", ".join("?" for _ in row)
        self._db.execute(f"INSERT OR REPLACE INTO snapshots ({_SNAPSHOT_COLUMNS}) VALUES ({marks})", row)  # noqa: S608

    def get(self, snap_id: str) -> Snapshot | None:
        row = self._db.execute(f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ?", (snap_id,)).fetchone()  # noqa: S608
        return _snapshot(row) if row else None

    def all(self) -> list[Snapshot]:
        """Every snapshot that exists, in creation order."""
        return [_snapshot(r) for r in self._db.execute(f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots ORDER BY seq")]  # noqa: S608

    def pending(self) -> list[Snapshot]:
        rows = self._db.execute(
            f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE state IN ('creating', 'deleting') ORDER BY seq"  # noqa: S608
        )
        return [_snapshot(r) for r in rows]

    def count_of(self, fs_id: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM snapshots WHERE fs_id = ?", (fs_id,)).fetchone()[0])

    def delete(self, snap_id: str) -> None:
        self._db.execute("DELETE FROM snapshots WHERE id = ?", (snap_id,))


@dataclass(frozen=True)
class PGroup:
    id: str
    name: str
    description: str
    created_at: float


class PGroupTable:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def ensure(self, group: PGroup) -> bool:
        """Add ``group`` unless its id exists; returns whether it was added."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO pgroups (id, name, description, created_at) VALUES (?, ?, ?, ?)",
            (group.id, group.name, group.description, group.created_at),
        )
        return cursor.rowcount > 0

    def get(self, group_id: str) -> PGroup | None:
        row = self._db.execute(
            "SELECT id, name, description, created_at FROM pgroups WHERE id = ?", (group_id,)
        ).fetchone()
        return PGroup(*row) if row else None

    def names(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self._db.execute("SELECT id, name FROM pgroups")}

    def all(self) -> list[PGroup]:
        return [PGroup(*row) for row in self._db.execute("SELECT id, name, description, created_at FROM pgroups")]
