"""Directory quotas of the emulator: validation (table-driven, with the real codes), nesting, idempotency,
status, and usage measured from the directory's real content, over a real store with a fake clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cfs_csi.emulator import quotas
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.faults import FaultConfig
from cfs_csi.emulator.fstree import Usage, open_below, usage
from tests.unit.test_emulator_cloud import CREATE_DELAY, FakeClock, World, error_code

GIB = 1024**3
VALID: dict[str, object] = {
    "FileSystemId": "cfs-abcdefgh",
    "UserType": "Dir",
    "DirectoryPath": "/cfs/pvc-1",
    "CapacityHardLimit": 10,
}
DROP = object()


def with_(**changes: object) -> dict[str, object]:
    params = {**VALID, **changes}
    return {k: v for k, v in params.items() if v is not DROP}


SET_ERRORS = [
    ("missing FileSystemId", {"FileSystemId": DROP}, "MissingParameter"),
    ("empty FileSystemId", {"FileSystemId": ""}, "InvalidParameterValue.MissingFileSystemId"),
    ("missing UserType", {"UserType": DROP}, "MissingParameter"),
    ("unknown UserType", {"UserType": "Project"}, "InvalidParameterValue.QuotaUserTypeError"),
    ("lower-case dir", {"UserType": "dir"}, "InvalidParameterValue.QuotaUserTypeError"),
    ("Uid quotas are not modelled", {"UserType": "Uid", "UserId": "1000"}, "UnsupportedOperation"),
    ("non-numeric UserId", {"UserId": "root"}, "InvalidParameterValue.QuotaUserIdError"),
    ("missing DirectoryPath", {"DirectoryPath": DROP}, "MissingParameter"),
    ("path outside /cfs/", {"DirectoryPath": "/data/pvc-1"}, "InvalidParameterValue.CfsPath"),
    ("relative path", {"DirectoryPath": "cfs/pvc-1"}, "InvalidParameterValue.CfsPath"),
    ("/cfs without slash", {"DirectoryPath": "/cfs"}, "InvalidParameterValue.CfsPath"),
    ("the root itself", {"DirectoryPath": "/cfs/"}, "InvalidParameterValue.CfsPath"),
    ("dot-dot", {"DirectoryPath": "/cfs/a/../b"}, "InvalidParameterValue.CfsPath"),
    ("double slash", {"DirectoryPath": "/cfs/a//b"}, "InvalidParameterValue.CfsPath"),
    ("NUL", {"DirectoryPath": "/cfs/a\x00b"}, "InvalidParameterValue.CfsPath"),
    ("component over 255 bytes", {"DirectoryPath": "/cfs/" + "n" * 256}, "InvalidParameterValue.CfsPath"),
    ("no limit at all", {"CapacityHardLimit": DROP}, "InvalidParameterValue.QuotaCapLimitError"),
    ("capacity 9 GiB", {"CapacityHardLimit": 9}, "InvalidParameterValue.QuotaCapLimitError"),
    ("capacity 0", {"CapacityHardLimit": 0}, "InvalidParameterValue.QuotaCapLimitError"),
    ("capacity above 10000000", {"CapacityHardLimit": 10_000_001}, "InvalidParameterValue.QuotaCapLimitError"),
    ("capacity as a string", {"CapacityHardLimit": "10"}, "InvalidParameter"),
    ("files 999", {"FileHardLimit": 999}, "InvalidParameterValue.QuotaFileLimitError"),
    ("files above 1e9", {"FileHardLimit": 1_000_000_001}, "InvalidParameterValue.QuotaFileLimitError"),
    ("unknown parameter", {"SoftLimit": 1}, "UnknownParameter"),
]


@pytest.mark.parametrize(("case", "changes", "code"), SET_ERRORS, ids=[c[0] for c in SET_ERRORS])
def test_set_errors(case: str, changes: dict[str, object], code: str) -> None:
    with pytest.raises(ApiError) as error:
        quotas.parse_set(with_(**changes))
    assert error.value.code == code


@pytest.mark.parametrize(
    ("changes", "path", "capacity", "files"),
    [
        ({}, "/cfs/pvc-1", 10, 0),
        ({"DirectoryPath": "/cfs/a/b/"}, "/cfs/a/b", 10, 0),
        ({"CapacityHardLimit": 10_000_000}, "/cfs/pvc-1", 10_000_000, 0),
        ({"CapacityHardLimit": DROP, "FileHardLimit": 1000}, "/cfs/pvc-1", 0, 1000),
        ({"FileHardLimit": 1_000_000_000}, "/cfs/pvc-1", 10, 1_000_000_000),
    ],
)
def test_set_accepts(changes: dict[str, object], path: str, capacity: int, files: int) -> None:
    request = quotas.parse_set(with_(**changes))
    assert (request.path, request.capacity_gib, request.file_limit) == (path, capacity, files)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (("a",), ("a", "b"), True),
        (("a", "b"), ("a",), True),
        (("a",), ("a",), False),
        (("a",), ("ab",), False),
        (("a", "b"), ("a", "c"), False),
    ],
)
def test_nested(a: tuple[str, ...], b: tuple[str, ...], expected: bool) -> None:
    assert quotas.nested(a, b) is expected


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"FileSystemId": "cfs-a", "UserType": "Dir"}, "MissingParameter"),
        ({"FileSystemId": "cfs-a", "UserType": "Dir", "DirectoryPath": "/x"}, "InvalidParameterValue.CfsPath"),
        ({"FileSystemId": "cfs-a", "DirectoryPath": "/cfs/x"}, "MissingParameter"),
        ({"FileSystemId": "cfs-a", "UserType": "Gid", "UserId": "5"}, "UnsupportedOperation"),
    ],
)
def test_delete_errors(params: dict[str, object], code: str) -> None:
    with pytest.raises(ApiError) as error:
        quotas.parse_delete(params)
    assert error.value.code == code


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "MissingParameter"),
        ({"FileSystemId": "cfs-a", "Limit": 0}, "InvalidParameterValue"),
        ({"FileSystemId": "cfs-a", "Offset": -1}, "InvalidParameterValue"),
        ({"FileSystemId": "cfs-a", "Filters": [{"Name": "DirectoryPath", "Values": ["/cfs/a"]}]},
         "InvalidParameterValue"),
    ],
)  # fmt: skip
def test_describe_errors(params: dict[str, object], code: str) -> None:
    with pytest.raises(ApiError) as error:
        quotas.parse_describe(params)
    assert error.value.code == code


@pytest.mark.parametrize(("used", "gib"), [(0, 0), (1, 1), (GIB, 1), (GIB + 1, 2), (10 * GIB, 10)])
def test_capacity_used_rounds_up(used: int, gib: int) -> None:
    assert quotas.capacity_used_gib(Usage(used, 1)) == gib


# -- over the store -----------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    w = World(tmp_path, clock, FaultConfig(create_delay=CREATE_DELAY, quota_delay=2.0))
    yield w
    w.store.close()


def available_fs(world: World, clock: FakeClock) -> tuple[str, Path]:
    fs_id = str(world.create()["FileSystemId"])
    clock.advance(CREATE_DELAY)
    [target] = world.targets(fs_id)
    return fs_id, world.root / "exports" / str(target["IpAddress"]) / str(target["FSID"])


def describe(world: World, fs_id: str, **extra: object) -> dict[str, Any]:
    return world.cloud.call("DescribeUserQuota", {"FileSystemId": fs_id, **extra})


def only(world: World, fs_id: str) -> dict[str, Any]:
    [entry] = describe(world, fs_id)["UserQuotaInfo"]
    assert isinstance(entry, dict)
    return entry


def test_quota_life_cycle_usage_and_idempotency(world: World, clock: FakeClock) -> None:
    fs_id, data = available_fs(world, clock)
    (data / "pvc-1" / "sub").mkdir(parents=True)
    (data / "pvc-1" / "a.bin").write_bytes(b"x" * 3000)
    (data / "pvc-1" / "sub" / "b.bin").write_bytes(b"y" * 500)
    (data / "outside.bin").write_bytes(b"z" * 10_000)
    (data / "pvc-1" / "link").symlink_to(data / "outside.bin")  # counted as an entry, never followed
    set_params = {"FileSystemId": fs_id, "UserType": "Dir", "DirectoryPath": "/cfs/pvc-1", "CapacityHardLimit": 20}
    assert world.cloud.call("SetUserQuota", set_params) == {"UserId": ""}

    entry = only(world, fs_id)
    assert entry["Status"] == "inavailable"  # the quota delay has not passed
    assert (entry["CapacityHardLimit"], entry["FileHardLimit"], entry["DirectoryPath"]) == (20, 0, "/cfs/pvc-1")
    assert (entry["CapacityUsed"], entry["FileUsed"]) == (1, 4)  # a.bin, sub, sub/b.bin, link
    clock.advance(2.0)
    entry = only(world, fs_id)
    assert entry["Status"] == "available"

    world.cloud.call("SetUserQuota", set_params)  # the same again: nothing changes
    assert only(world, fs_id)["Status"] == "available"
    world.cloud.call("SetUserQuota", {**set_params, "CapacityHardLimit": 30})  # expansion
    entry = only(world, fs_id)
    assert (entry["CapacityHardLimit"], entry["Status"]) == (30, "inavailable")

    delete = {"FileSystemId": fs_id, "UserType": "Dir", "DirectoryPath": "/cfs/pvc-1/"}
    assert world.cloud.call("DeleteUserQuota", delete) == {}
    assert world.cloud.call("DeleteUserQuota", delete) == {}  # already gone: still fine
    assert describe(world, fs_id) == {"TotalCount": 0, "UserQuotaInfo": []}


def test_quota_rules_against_the_file_system(world: World, clock: FakeClock) -> None:
    creating = str(world.create()["FileSystemId"])
    params = {"UserType": "Dir", "CapacityHardLimit": 10}
    assert error_code(lambda: world.cloud.call("SetUserQuota", {**params, "FileSystemId": creating,
                                                                "DirectoryPath": "/cfs/a"})) == (
        "InvalidParameterValue.InvalidFsStatus")  # fmt: skip
    assert error_code(lambda: describe(world, "cfs-nothere0")) == "ResourceNotFound.FileSystemNotFound"
    fs_id, data = available_fs(world, clock)
    params["FileSystemId"] = fs_id
    for name in ("a", "b", "c"):
        (data / name / "deep").mkdir(parents=True)
    (data / "evil").symlink_to(data / "a")

    def code(path: str) -> str:
        return error_code(lambda: world.cloud.call("SetUserQuota", {**params, "DirectoryPath": path}))

    assert code("/cfs/missing") == "InvalidParameterValue.CfsPath"
    assert code("/cfs/evil") == "InvalidParameterValue.CfsPath"  # a symlink is not a directory
    assert code("/cfs/evil/deep") == "InvalidParameterValue.CfsPath"
    world.cloud.call("SetUserQuota", {**params, "DirectoryPath": "/cfs/a"})
    assert code("/cfs/a/deep") == "InvalidParameterValue.ProjectQuotasDirNested"
    world.cloud.call("SetUserQuota", {**params, "DirectoryPath": "/cfs/b/deep"})
    assert code("/cfs/b") == "InvalidParameterValue.ProjectQuotasDirNested"
    world.cloud.call("SetUserQuota", {**params, "DirectoryPath": "/cfs/c"})
    listed = describe(world, fs_id, Limit=2, Offset=1)
    assert listed["TotalCount"] == 3
    assert [q["DirectoryPath"] for q in listed["UserQuotaInfo"]] == ["/cfs/b/deep", "/cfs/c"]
    only_dirs = describe(world, fs_id, Filters=[{"Name": "UserType", "Values": ["Uid"]}])
    assert only_dirs["TotalCount"] == 0
    world.cloud.delete_file_system({"FileSystemId": fs_id})  # quotas go with their file system
    assert world.store.quotas.of(fs_id) == []


def test_usage_is_bounded_and_stays_on_one_file_system(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / "d" / f"f{i}").parent.mkdir(exist_ok=True)
        (tmp_path / "d" / f"f{i}").write_bytes(b"1" * 10)
    fd = open_below(tmp_path, ("d",))
    try:
        assert usage(fd, 1000) == Usage(300, 30)
        partial = usage(fd, 10)
        assert (partial.entries, partial.truncated) == (10, True)
    finally:
        os.close(fd)
    with pytest.raises(NotADirectoryError):
        os.close(open_below(tmp_path, ("d", "f1")))


# -- UpdateCfsFileSystemSizeLimit ---------------------------------------------------------------------------

SIZE_LIMIT_ERRORS = [
    ("missing FsLimit", {}, "MissingParameter"),
    ("FsLimit as a string", {"FsLimit": "100"}, "InvalidParameter"),
    ("negative", {"FsLimit": -1}, "InvalidParameterValue.InvalidFsSizeLimit"),
    ("above 1073741824", {"FsLimit": 1_073_741_825}, "InvalidParameterValue.FsSizeLimitExceeded"),
    ("unknown parameter", {"FsLimit": 1, "Unit": "GB"}, "UnknownParameter"),
]


@pytest.mark.parametrize(("case", "extra", "code"), SIZE_LIMIT_ERRORS, ids=[c[0] for c in SIZE_LIMIT_ERRORS])
def test_size_limit_errors(world: World, case: str, extra: dict[str, object], code: str) -> None:
    call = {"FileSystemId": "cfs-abcdefgh", **extra}
    assert error_code(lambda: world.cloud.call("UpdateCfsFileSystemSizeLimit", call)) == code


def test_size_limit_on_sd_only_and_shown_in_describe(world: World, clock: FakeClock) -> None:
    fs_id, _ = available_fs(world, clock)
    hp = str(world.create(StorageType="HP")["FileSystemId"])
    clock.advance(CREATE_DELAY)
    assert (world.info(fs_id)["SizeLimit"], world.info(fs_id)["Capacity"]) == (0, 163840)
    for limit, shown in ((100, 100), (1_073_741_824, 1_073_741_824), (0, 0)):
        assert world.cloud.call("UpdateCfsFileSystemSizeLimit", {"FileSystemId": fs_id, "FsLimit": limit}) == {}
        info = world.info(fs_id)
        assert (info["SizeLimit"], info["Capacity"]) == (shown, shown or 163840)
    call = {"FileSystemId": hp, "FsLimit": 100}
    assert error_code(lambda: world.cloud.call("UpdateCfsFileSystemSizeLimit", call)) == "UnsupportedOperation"
    creating = str(world.create()["FileSystemId"])
    call = {"FileSystemId": creating, "FsLimit": 100}
    assert error_code(lambda: world.cloud.call("UpdateCfsFileSystemSizeLimit", call)) == (
        "InvalidParameterValue.InvalidFsStatus"
    )
    call = {"FileSystemId": "cfs-nothere0", "FsLimit": 100}
    assert error_code(lambda: world.cloud.call("UpdateCfsFileSystemSizeLimit", call)) == (
        "ResourceNotFound.FileSystemNotFound"
    )
