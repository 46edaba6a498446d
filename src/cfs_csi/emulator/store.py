"""The emulator's state in SQLite, so that file systems survive a restart of the emulator (as they survive a
restart of the driver in the cloud).

One connection, one lock: every API call is a short transaction, and serialising them makes the ClientToken
check-then-insert and the mount-target allocation atomic without further thought. WAL keeps the file
consistent if the process is killed, and lets ``sqlite3`` inspect it while the emulator runs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cfs_csi.emulator.faults import Outcome
from cfs_csi.emulator.model import CREATING, DELETED, DELETING, FileSystem, Tag
from cfs_csi.emulator.tables import SCHEMA as _TABLES_SCHEMA
from cfs_csi.emulator.tables import PGroupTable, QuotaTable, SnapshotTable

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS file_systems (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    name TEXT NOT NULL,
    zone TEXT NOT NULL,
    net_interface TEXT NOT NULL,
    vpc_id TEXT NOT NULL,
    subnet_id TEXT NOT NULL,
    pgroup_id TEXT NOT NULL,
    storage_type TEXT NOT NULL,
    protocol TEXT NOT NULL,
    tags TEXT NOT NULL,
    encrypted INTEGER NOT NULL,
    capacity_gib INTEGER NOT NULL,
    created_at REAL NOT NULL,
    ready_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    state TEXT NOT NULL,
    ip TEXT UNIQUE,
    fsid TEXT UNIQUE,
    delete_at REAL,
    deleted_at REAL,
    size_limit_gib INTEGER NOT NULL DEFAULT 0,
    snapshot_id TEXT
);
CREATE INDEX IF NOT EXISTS file_systems_state ON file_systems (state);
CREATE INDEX IF NOT EXISTS file_systems_live ON file_systems (seq) WHERE state != '{DELETED}';
CREATE INDEX IF NOT EXISTS file_systems_live_name ON file_systems (name, seq) WHERE state != '{DELETED}';
CREATE TABLE IF NOT EXISTS client_tokens (
    token TEXT PRIMARY KEY,
    fs_id TEXT NOT NULL,
    issued_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS client_tokens_fs_id ON client_tokens (fs_id);
CREATE INDEX IF NOT EXISTS client_tokens_issued_at ON client_tokens (issued_at);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_COLUMNS = (
    "id", "seq", "name", "zone", "net_interface", "vpc_id", "subnet_id", "pgroup_id", "storage_type", "protocol",
    "tags", "encrypted", "capacity_gib", "created_at", "ready_at", "outcome", "state", "ip", "fsid", "delete_at",
    "deleted_at", "size_limit_gib", "snapshot_id",
)  # fmt: skip
#: Columns added after the first release, with their definitions, for state files written before them.
_ADDED_COLUMNS = (("size_limit_gib", "INTEGER NOT NULL DEFAULT 0"), ("snapshot_id", "TEXT"))
# SQL text is built from the constant column list only; values always go through placeholders.
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM file_systems"  # noqa: S608
_MARKS = ", ".join("?" for _ in _COLUMNS)
_INSERT = f"INSERT INTO file_systems ({', '.join(_COLUMNS)}) VALUES ({_MARKS})"  # noqa: S608
_UPDATE = f"UPDATE file_systems SET {', '.join(f'{c} = ?' for c in _COLUMNS[1:])} WHERE id = ?"  # noqa: S608


def _visible_where(fs_id: str | None, name: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause of :meth:`Store.visible`. The literal ``'deleted'`` (not a placeholder) is what lets
    SQLite use the partial indexes, whose condition it must prove from the query's text."""
    terms = [f"state != '{DELETED}'"]
    args: list[str] = []
    for column, value in (("id", fs_id), ("name", name)):
        if value is not None:
            terms.append(f"{column} = ?")
            args.append(value)
    return " AND ".join(terms), tuple(args)


@dataclass(frozen=True)
class TokenRecord:
    token: str
    fs_id: str
    issued_at: float


def _to_row(fs: FileSystem) -> tuple[object, ...]:
    tags = json.dumps([[t.key, t.value] for t in fs.tags], ensure_ascii=False)
    return (
        fs.id, fs.seq, fs.name, fs.zone, fs.net_interface, fs.vpc_id, fs.subnet_id, fs.pgroup_id, fs.storage_type,
        fs.protocol, tags, int(fs.encrypted), fs.capacity_gib, fs.created_at, fs.ready_at, fs.outcome.value,
        fs.state, fs.ip, fs.fsid, fs.delete_at, fs.deleted_at, fs.size_limit_gib, fs.snapshot_id,
    )  # fmt: skip


def _from_row(row: sqlite3.Row) -> FileSystem:
    return FileSystem(
        id=row["id"],
        seq=row["seq"],
        name=row["name"],
        zone=row["zone"],
        net_interface=row["net_interface"],
        vpc_id=row["vpc_id"],
        subnet_id=row["subnet_id"],
        pgroup_id=row["pgroup_id"],
        storage_type=row["storage_type"],
        protocol=row["protocol"],
        tags=tuple(Tag(k, v) for k, v in json.loads(row["tags"])),
        encrypted=bool(row["encrypted"]),
        capacity_gib=row["capacity_gib"],
        created_at=row["created_at"],
        ready_at=row["ready_at"],
        outcome=Outcome(row["outcome"]),
        state=row["state"],
        ip=row["ip"],
        fsid=row["fsid"],
        delete_at=row["delete_at"],
        deleted_at=row["deleted_at"],
        size_limit_gib=row["size_limit_gib"],
        snapshot_id=row["snapshot_id"],
    )


class Store:
    """File systems, client tokens and counters, and the ``quotas``, ``snapshots`` and ``pgroups`` tables. Use
    every method inside ``transaction()``."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.executescript(_TABLES_SCHEMA)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(file_systems)")}
            for column, definition in _ADDED_COLUMNS:
                if column not in present:
                    self._db.execute(f"ALTER TABLE file_systems ADD COLUMN {column} {definition}")
        self.quotas = QuotaTable(self._db)
        self.snapshots = SnapshotTable(self._db)
        self.pgroups = PGroupTable(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Holds the lock for the whole transaction; commits on success, rolls back on any exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # file systems

    def get(self, fs_id: str) -> FileSystem | None:
        row = self._db.execute(f"{_SELECT} WHERE id = ?", (fs_id,)).fetchone()
        return _from_row(row) if row else None

    def all(self) -> list[FileSystem]:
        """Every row in creation order, deleted ones included."""
        return [_from_row(r) for r in self._db.execute(f"{_SELECT} ORDER BY seq")]

    def visible(self, *, fs_id: str | None = None, name: str | None = None) -> list[FileSystem]:
        """The rows the API can show (not deleted), in creation order; only ``fs_id``'s / ``name``'s if given.

        Deleted rows stay in the table for the admin API, so they are left out here, in SQL: through the partial
        indexes, the cost follows the file systems that exist (or carry that name), never how many ever did.
        """
        where, args = _visible_where(fs_id, name)
        return [_from_row(r) for r in self._db.execute(f"{_SELECT} WHERE {where} ORDER BY seq", args)]

    def in_states(self, *states: str) -> list[FileSystem]:
        marks = ", ".join("?" for _ in states)
        return [_from_row(r) for r in self._db.execute(f"{_SELECT} WHERE state IN ({marks}) ORDER BY seq", states)]

    def pending(self) -> list[FileSystem]:
        """Rows that may still change on their own (creating or deleting)."""
        return self.in_states(CREATING, DELETING)

    def id_taken(self, fs_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM file_systems WHERE id = ?", (fs_id,)).fetchone() is not None

    def fsid_taken(self, fsid: str) -> bool:
        return self._db.execute("SELECT 1 FROM file_systems WHERE fsid = ?", (fsid,)).fetchone() is not None

    def insert(self, fs: FileSystem) -> None:
        self._db.execute(_INSERT, _to_row(fs))

    def update(self, fs: FileSystem) -> None:
        row = _to_row(fs)
        self._db.execute(_UPDATE, (*row[1:], row[0]))

    def count_deleted(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM file_systems WHERE state = ?", (DELETED,)).fetchone()
        return int(row[0])

    # counters: never reused, so a sequence number or a mount IP is never handed out twice

    def next_value(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        value = int(row[0]) if row else 0
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value + 1),
        )
        return value

    # client tokens

    def get_token(self, token: str) -> TokenRecord | None:
        row = self._db.execute("SELECT token, fs_id, issued_at FROM client_tokens WHERE token = ?", (token,)).fetchone()
        return TokenRecord(row["token"], row["fs_id"], row["issued_at"]) if row else None

    def put_token(self, record: TokenRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO client_tokens (token, fs_id, issued_at) VALUES (?, ?, ?)",
            (record.token, record.fs_id, record.issued_at),
        )

    def forget_tokens(self, *, issued_before: float | None = None, fs_id: str | None = None) -> None:
        if issued_before is not None:
            self._db.execute("DELETE FROM client_tokens WHERE issued_at <= ?", (issued_before,))
        if fs_id is not None:
            self._db.execute("DELETE FROM client_tokens WHERE fs_id = ?", (fs_id,))
