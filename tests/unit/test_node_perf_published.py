"""published (issue 15): a repeated publish writes nothing, and the scan of records re-reads only changed files
while still seeing every change another process (or a test) makes on disk."""

from __future__ import annotations

import os
from pathlib import Path

from cfs_csi.driver.published import Publication, PublishedVolumes

A = Publication(volume_id="vol-a", target_path="/pods/x/mount", source="h:/a/")
B = Publication(volume_id="vol-b", target_path="/pods/y/mount", source="h:/b/", exclusive=True)


def record_file(state: Path) -> Path:
    (path,) = state.glob("*.json")
    return path


def test_recording_the_same_publication_again_writes_nothing(tmp_path: Path) -> None:
    records = PublishedVolumes(tmp_path)
    records.record(A)
    before = os.stat(record_file(tmp_path))
    records.record(A)
    after = os.stat(record_file(tmp_path))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    changed = Publication(volume_id="vol-a", target_path=A.target_path, source=A.source, exclusive=True)
    records.record(changed)
    assert os.stat(record_file(tmp_path)).st_ino != before.st_ino
    assert records.get(A.target_path) == changed


def test_the_scan_sees_what_another_instance_records_and_forgets(tmp_path: Path) -> None:
    ours, theirs = PublishedVolumes(tmp_path), PublishedVolumes(tmp_path)
    ours.record(A)
    assert ours.of_volume("vol-a") == [A] and ours.of_volume("vol-b") == []
    theirs.record(B)
    assert ours.of_volume("vol-b") == [B]
    moved = Publication(volume_id="vol-b", target_path=A.target_path, source="h:/b/")
    theirs.record(moved)  # the same file, rewritten with other content
    assert sorted(p.target_path for p in ours.of_volume("vol-b")) == sorted([A.target_path, B.target_path])
    assert ours.of_volume("vol-a") == []
    theirs.forget(B.target_path)
    assert ours.of_volume("vol-b") == [moved]


def test_a_damaged_record_is_ignored(tmp_path: Path) -> None:
    records = PublishedVolumes(tmp_path)
    records.record(A)
    record_file(tmp_path).write_text('["not", "a", "record"]')
    assert records.get(A.target_path) is None and records.all() == []
