"""Which storage type a clone may have (pure, table-tested).

A clone is restored from a snapshot of its source (tencent backend), and CFS restores a snapshot only into a
file system of the same series: a General snapshot (Standard SD, High-Performance HP) into a General file
system, a Turbo one (TB, TP) into a Turbo one. The class's parameters apply to the clone, so its storage type
is the class's; a clone whose class names another series than its source is refused before any cloud call
(INVALID_ARGUMENT), rather than after a temporary snapshot was taken. Both types this driver creates (SD, HP)
are General, so SD and HP volumes clone into each other; the rule is written for every type CFS has, so a
source of a type the driver does not create (read back from the cloud) is judged too.
"""

from __future__ import annotations

#: CFS storage types and the series their snapshots restore within (``SnapshotType`` in the CFS API).
SERIES = {"SD": "general", "HP": "general", "TB": "turbo", "TP": "turbo"}


def storage_type_refusal(source_type: str, clone_type: str) -> str | None:
    """``None`` if a volume of ``source_type`` may be cloned into one of ``clone_type``, else why not."""
    source_series, clone_series = SERIES.get(source_type), SERIES.get(clone_type)
    if source_series is None:
        return f"the source volume's storage type {source_type!r} has no CFS snapshots, so it cannot be cloned"
    if clone_series is None:
        return f"storage type {clone_type!r} has no CFS snapshots, so no clone can be made with it"
    if source_series != clone_series:
        return (
            f"the source volume is {source_type} ({source_series}) and the class asks {clone_type} "
            f"({clone_series}); CFS restores a {source_series} snapshot only into a {source_series} file system: "
            f"use a class with a {source_series} storage type ({', '.join(_types_of(source_series))})"
        )
    return None


def _types_of(series: str) -> list[str]:
    return [kind for kind, of in SERIES.items() if of == series]
