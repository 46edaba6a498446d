"""Fidelity of CreateCfsFileSystem and DescribeCfsFileSystems to the real service: network type in any case,
the region's zones, permission groups that must exist, the filters PGroupName and Scenario, StorageType THP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cfs_csi.emulator.actions import Cloud, CloudSettings
from cfs_csi.emulator.zones import zones_of
from tests.unit.test_emulator_cloud import CREATE_DELAY, FakeClock, World, error_code


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    w = World(tmp_path, clock)
    yield w
    w.store.close()


CREATE_CASES = [
    # (case, parameters, error code or "" for accepted)
    ("NetInterface vpc in lower case (the vendor's Go driver)", {"NetInterface": "vpc"}, ""),
    ("NetInterface Vpc", {"NetInterface": "Vpc"}, ""),
    ("NetInterface basic in lower case", {"NetInterface": "basic"},
     "UnsupportedOperation.BasicNetInterfaceNotSupported"),
    ("NetInterface ccn", {"NetInterface": "ccn"}, "InvalidParameterValue.InvalidNetInterface"),
    ("a zone the region has", {"Zone": "ap-guangzhou-7"}, ""),
    ("a zone the region lacks", {"Zone": "ap-guangzhou-99"}, "InvalidParameterValue.InvalidZoneOrZoneId"),
    ("zone 5 of Guangzhou", {"Zone": "ap-guangzhou-5"}, "InvalidParameterValue.InvalidZoneOrZoneId"),
    ("the built-in example group", {"PGroupId": "pgroup-lrquouvl"}, ""),
    ("an unknown well-formed group", {"PGroupId": "pgroup-zzzzzzzz"}, "ResourceNotFound.PgroupNotFound"),
    ("a malformed group", {"PGroupId": "pgroup-zz"}, "InvalidParameterValue.InvalidPgroupId"),
    ("StorageType THP", {"StorageType": "THP"}, ""),
]  # fmt: skip


@pytest.mark.parametrize(("case", "params", "code"), CREATE_CASES, ids=[c[0] for c in CREATE_CASES])
def test_create(world: World, case: str, params: dict[str, object], code: str) -> None:
    if code:
        assert error_code(lambda: world.create(**params)) == code
        assert world.count() == 0
    else:
        info = world.info(str(world.create(**params)["FileSystemId"]))
        assert all(info.get(k, v) == v for k, v in params.items() if k in ("Zone", "StorageType"))


def test_lower_case_vpc_is_stored_as_vpc(world: World, clock: FakeClock) -> None:
    fs_id = str(world.create(NetInterface="vpc")["FileSystemId"])
    clock.advance(CREATE_DELAY)
    [target] = world.targets(fs_id)
    assert target["NetworkInterface"] == "VPC"


def test_groups_from_settings_and_admin(tmp_path: Path, clock: FakeClock) -> None:
    world = World(tmp_path, clock)
    settings = CloudSettings(pgroups=(("pgroup-abcdefgh", "team-a"),), zones=("ap-guangzhou-42",))
    world.cloud = Cloud(world.store, settings, world.faults, clock, world.cloud.rng)
    try:
        assert error_code(lambda: world.create()) == "InvalidParameterValue.InvalidZoneOrZoneId"  # zone 3 not listed
        a = str(world.create(Zone="ap-guangzhou-42", PGroupId="pgroup-abcdefgh")["FileSystemId"])
        assert error_code(lambda: world.create(Zone="ap-guangzhou-42", PGroupId="pgroup-newgroup")) == (
            "ResourceNotFound.PgroupNotFound"
        )
        assert world.cloud.add_pgroup("pgroup-newgroup", "team-b")["Created"] is True
        assert world.cloud.add_pgroup("pgroup-newgroup", "other")["Name"] == "team-b"  # exists: unchanged
        b = str(world.create(Zone="ap-guangzhou-42", PGroupId="pgroup-newgroup")["FileSystemId"])
        with pytest.raises(ValueError, match="PGroupId"):
            world.cloud.add_pgroup("pgroup-BAD", "x")
        with pytest.raises(ValueError, match="Name"):
            world.cloud.add_pgroup("pgroup-abcdefgz", "")

        def names(values: list[str], name: str = "PGroupName") -> list[str]:
            found = world.cloud.describe_file_systems({"Filters": [{"Name": name, "Values": values}]})
            return [str(fs["FileSystemId"]) for fs in found["FileSystems"]]  # type: ignore[attr-defined]

        assert names(["team-b"]) == [b]
        assert names(["team-a", "team-b"]) == [a, b]
        assert names(["AgentSandbox"], "Scenario") == []
        assert names([""], "Scenario") == [a, b]
        assert world.info(a)["PGroup"] == {"PGroupId": "pgroup-abcdefgh", "Name": "team-a"}
        groups = {g["PGroupId"] for g in world.cloud.admin_pgroups()["PGroups"]}  # type: ignore[attr-defined]
        assert groups == {"pgroupbasic", "pgroup-lrquouvl", "pgroup-abcdefgh", "pgroup-newgroup"}
    finally:
        world.store.close()


@pytest.mark.parametrize(
    ("region", "zones"),
    [("ap-guangzhou", ("ap-guangzhou-1", "ap-guangzhou-2", "ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6",
                       "ap-guangzhou-7")),
     ("ap-chongqing", ("ap-chongqing-1",)),
     ("xx-nowhere", None)],
)  # fmt: skip
def test_zone_table(region: str, zones: tuple[str, ...] | None) -> None:
    assert zones_of(region) == zones


def test_any_zone_of_a_region_not_in_the_table(tmp_path: Path, clock: FakeClock) -> None:
    world = World(tmp_path, clock)
    world.cloud = Cloud(world.store, CloudSettings(region="xx-nowhere"), world.faults, clock, world.cloud.rng)
    try:
        assert world.create(Zone="xx-nowhere-9")["FileSystemId"]
    finally:
        world.store.close()
