"""Snapshots of the emulator: validation (table-driven, real codes), life cycle creating -> available ->
deleting -> gone, filters and paging, content frozen at snapshot time, and restore into a new file system,
over a real store and real directories with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cfs_csi.emulator import snapshots
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.faults import FaultConfig
from tests.unit.test_emulator_cloud import CREATE_DELAY, FakeClock, World, error_code

SNAP_DELAY = 4.0
DELETE_DELAY = 2.0

CREATE_ERRORS = [
    ("missing FileSystemId", {}, "MissingParameter"),
    ("name of 65 characters", {"SnapshotName": "s" * 65}, "InvalidParameterValue.SnapshotNameLimitExceeded"),
    ("name with a space", {"SnapshotName": "a b"}, "InvalidParameterValue.InvalidSnapshotName"),
    ("name with a dot", {"SnapshotName": "a.b"}, "InvalidParameterValue.InvalidSnapshotName"),
    ("name not a string", {"SnapshotName": 5}, "InvalidParameter"),
    ("empty tag key", {"ResourceTags": [{"TagKey": "", "TagValue": "v"}]}, "InvalidParameterValue.InvalidTagKey"),
    ("51 tags", {"ResourceTags": [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(51)]},
     "ResourceInsufficient.TagLimitExceeded"),
    ("unknown parameter", {"AliveDays": 3}, "UnknownParameter"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "extra", "code"), CREATE_ERRORS, ids=[c[0] for c in CREATE_ERRORS])
def test_create_errors(case: str, extra: dict[str, object], code: str) -> None:
    params = {"FileSystemId": "cfs-abcdefgh", **extra} if case != "missing FileSystemId" else extra
    with pytest.raises(ApiError) as error:
        snapshots.parse_create(params)
    assert error.value.code == code


@pytest.mark.parametrize("name", ["", "s" * 64, "快照-1_a", "CFS定期快照"])
def test_create_accepts_names(name: str) -> None:
    assert snapshots.parse_create({"FileSystemId": "cfs-a", "SnapshotName": name}).name == name


DESCRIBE_ERRORS = [
    ("Limit 0", {"Limit": 0}, "InvalidParameterValue"),
    ("Limit 101", {"Limit": 101}, "InvalidParameterValue"),
    ("unknown filter", {"Filters": [{"Name": "Size", "Values": ["1"]}]}, "InvalidParameterValue"),
    ("OrderField other than CreationTime", {"OrderField": "Size"}, "InvalidParameterValue"),
    ("Order sideways", {"Order": "UP"}, "InvalidParameterValue"),
    ("7 tag keys", {"Filters": [{"Name": "tag-key", "Values": [f"k{i}" for i in range(7)]}]},
     "InvalidParameterValue.TagKeyFilterLimitExceeded"),
    ("11 tag values", {"Filters": [{"Name": "tag:k", "Values": [f"v{i}" for i in range(11)]}]},
     "InvalidParameterValue.TagValueFilterLimitExceeded"),
    ("unknown parameter", {"Name": "x"}, "UnknownParameter"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "params", "code"), DESCRIBE_ERRORS, ids=[c[0] for c in DESCRIBE_ERRORS])
def test_describe_errors(case: str, params: dict[str, object], code: str) -> None:
    with pytest.raises(ApiError) as error:
        snapshots.parse_describe(params)
    assert error.value.code == code


@pytest.mark.parametrize(
    ("params", "code"),
    [({}, "MissingParameter"), ({"SnapshotIds": []}, "MissingParameter"), ({"SnapshotIds": "snapcfs-a"},
     "InvalidParameter"), ({"SnapshotIds": [f"snapcfs-{i}" for i in range(101)]}, "InvalidParameterValue")],
)  # fmt: skip
def test_delete_errors(params: dict[str, object], code: str) -> None:
    with pytest.raises(ApiError) as error:
        snapshots.parse_delete(params)
    assert error.value.code == code


def test_delete_ids_are_merged_without_repeats() -> None:
    params = {"SnapshotId": "snapcfs-a", "SnapshotIds": ["snapcfs-b", "snapcfs-a"]}
    assert snapshots.parse_delete(params) == ("snapcfs-a", "snapcfs-b")


# -- over the store ------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    config = FaultConfig(create_delay=CREATE_DELAY, delete_delay=DELETE_DELAY, snapshot_delay=SNAP_DELAY)
    w = World(tmp_path, clock, config)
    yield w
    w.store.close()


def available_fs(world: World, clock: FakeClock, **params: object) -> tuple[str, Path]:
    fs_id = str(world.create(**params)["FileSystemId"])
    clock.advance(CREATE_DELAY)
    [target] = world.targets(fs_id)
    return fs_id, world.root / "exports" / str(target["IpAddress"]) / str(target["FSID"])


def snap(world: World, fs_id: str, **params: object) -> str:
    return str(world.cloud.call("CreateCfsSnapshot", {"FileSystemId": fs_id, **params})["SnapshotId"])


def listing(world: World, **params: object) -> dict[str, Any]:
    return world.cloud.call("DescribeCfsSnapshots", params)


def test_life_cycle_and_frozen_content(world: World, clock: FakeClock) -> None:
    fs_id, data = available_fs(world, clock)
    (data / "dir").mkdir()
    (data / "dir" / "file.txt").write_text("before")
    (data / "link").symlink_to("/etc/hostname")  # copied as a link, never read through
    snap_id = snap(world, fs_id, SnapshotName="first", ResourceTags=[{"TagKey": "k", "TagValue": "v"}])
    assert snap_id.startswith("snapcfs-") and len(snap_id) == len("snapcfs-") + 8
    (data / "dir" / "file.txt").write_text("after, and longer")
    [info] = listing(world)["Snapshots"]
    assert (info["Status"], info["FileSystemId"], info["SnapshotName"], info["SnapshotType"]) == (
        "creating",
        fs_id,
        "first",
        "general",
    )
    assert 1 <= info["Percent"] < 100 and info["Tags"] == [{"TagKey": "k", "TagValue": "v"}]
    assert world.info(fs_id)["SnapStatus"] == "snapping"
    assert error_code(lambda: world.cloud.call("DeleteCfsSnapshot", {"SnapshotId": snap_id})) == (
        "InvalidParameterValue.InvalidSnapshotStatus"
    )
    clock.advance(SNAP_DELAY)
    [info] = listing(world)["Snapshots"]
    assert (info["Status"], info["Percent"], info["Size"]) == ("available", 100, 1)
    assert world.info(fs_id)["SnapStatus"] == "normal"

    restored = str(world.create(SnapshotId=snap_id, FsName="restored")["FileSystemId"])
    clock.advance(CREATE_DELAY)
    [target] = world.targets(restored)
    new_data = world.root / "exports" / str(target["IpAddress"]) / str(target["FSID"])
    assert (new_data / "dir" / "file.txt").read_text() == "before"
    assert (new_data / "link").is_symlink() and str((new_data / "link").readlink()) == "/etc/hostname"
    (new_data / "dir" / "file.txt").write_text("restored copy changed")
    assert (data / "dir" / "file.txt").read_text() == "after, and longer"  # independent of each other

    assert world.cloud.call("DeleteCfsSnapshot", {"SnapshotIds": [snap_id]}) == {"SnapshotId": snap_id}
    assert listing(world)["Snapshots"][0]["Status"] == "deleting"
    assert world.cloud.call("DeleteCfsSnapshot", {"SnapshotId": snap_id}) == {"SnapshotId": snap_id}
    assert error_code(lambda: world.create(SnapshotId=snap_id)) == "ResourceNotFound.SnapshotNotFound"
    clock.advance(DELETE_DELAY)
    assert listing(world) == {"TotalCount": 0, "Snapshots": [], "TotalSize": 0}
    assert not (world.root / "exports" / ".cfs-emulator" / "snapshots" / snap_id).exists()
    assert error_code(lambda: world.cloud.call("DeleteCfsSnapshot", {"SnapshotId": snap_id})) == (
        "ResourceNotFound.SnapshotNotFound"
    )


def test_rules(world: World, clock: FakeClock) -> None:
    creating = str(world.create()["FileSystemId"])
    assert error_code(lambda: snap(world, creating)) == "InvalidParameterValue.InvalidFsStatus"
    assert error_code(lambda: snap(world, "cfs-nothere0")) == "ResourceNotFound.FileSystemNotFound"
    thp, _ = available_fs(world, clock, StorageType="THP")
    assert error_code(lambda: snap(world, thp)) == "UnsupportedOperation"
    fs_id, _ = available_fs(world, clock)
    pending = snap(world, fs_id)
    assert error_code(lambda: world.create(SnapshotId=pending)) == "InvalidParameterValue.InvalidSnapshotStatus"
    clock.advance(SNAP_DELAY)
    assert error_code(lambda: world.create(SnapshotId=pending, StorageType="TP", Capacity=20480)) == (
        "InvalidParameterValue.InvalidStorageType"
    )
    assert error_code(lambda: world.create(SnapshotId="snapcfs-nothere0")) == "ResourceNotFound.SnapshotNotFound"
    assert error_code(lambda: world.cloud.call("DeleteCfsSnapshot", {"SnapshotIds": [pending, "snapcfs-x"]})) == (
        "ResourceNotFound.SnapshotNotFound"
    )
    assert listing(world)["Snapshots"][0]["Status"] == "available"  # the failed call deleted nothing
    for _ in range(snapshots.MAX_PER_FILE_SYSTEM - 1):
        snap(world, fs_id)
    assert error_code(lambda: snap(world, fs_id)) == "LimitExceeded"


def test_filters_order_paging_and_survival(world: World, clock: FakeClock) -> None:
    one, _ = available_fs(world, clock, FsName="one")
    two, _ = available_fs(world, clock, FsName="two")
    ids = [
        snap(world, one, SnapshotName="a", ResourceTags=[{"TagKey": "team", "TagValue": "x"}]),
        snap(world, two, SnapshotName="b", ResourceTags=[{"TagKey": "team", "TagValue": "y"}]),
        snap(world, one, SnapshotName="c"),
    ]
    clock.advance(SNAP_DELAY)

    def found(**params: object) -> list[str]:
        return [s["SnapshotId"] for s in listing(world, **params)["Snapshots"]]

    assert found() == ids
    assert found(Order="DESC") == ids[::-1]
    assert found(Limit=1, Offset=1) == ids[1:2] and listing(world, Limit=1)["TotalCount"] == 3
    assert found(FileSystemId=one) == [ids[0], ids[2]]
    assert found(SnapshotId=ids[1]) == [ids[1]]
    assert found(Filters=[{"Name": "FsName", "Values": ["two"]}]) == [ids[1]]
    assert found(Filters=[{"Name": "SnapshotName", "Values": ["a", "c"]}]) == [ids[0], ids[2]]
    assert found(Filters=[{"Name": "tag-key", "Values": ["team"]}]) == ids[:2]
    assert found(Filters=[{"Name": "tag:team", "Values": ["y"]}]) == [ids[1]]
    assert found(Filters=[{"Name": "Status", "Values": ["creating"]}]) == []
    assert found(SnapshotId="snapcfs-nothere0") == []
    world.cloud.delete_file_system({"FileSystemId": one})
    clock.advance(DELETE_DELAY)
    assert found(FileSystemId=one) == [ids[0], ids[2]]  # snapshots outlive their file system
    restored = str(world.create(SnapshotId=ids[0])["FileSystemId"])
    clock.advance(CREATE_DELAY)
    assert world.state(restored) == "available"


def test_size_bound(tmp_path: Path, clock: FakeClock) -> None:
    world = World(tmp_path, clock, FaultConfig(create_delay=CREATE_DELAY, snapshot_delay=0.0))
    try:
        world.cloud.settings = type(world.cloud.settings)(
            client_token_ttl=world.cloud.settings.client_token_ttl,
            export_root=world.cloud.settings.export_root,
            snapshot_max_bytes=1000,
        )
        fs_id, data = available_fs(world, clock)
        (data / "small").write_bytes(b"s" * 900)
        small = snap(world, fs_id)
        assert listing(world)["Snapshots"][0]["Status"] == "available"  # a zero delay: at once
        (data / "big").write_bytes(b"b" * 200)
        assert error_code(lambda: snap(world, fs_id)) == "ResourceInsufficient.SnapshotSizeLimitExceeded"
        assert [s["SnapshotId"] for s in listing(world)["Snapshots"]] == [small]
        leftovers = sorted(p.name for p in (world.root / "exports" / ".cfs-emulator" / "snapshots").iterdir())
        assert leftovers == [small]
    finally:
        world.store.close()
