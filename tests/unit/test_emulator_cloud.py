"""The emulated actions over a real SQLite store in a temporary directory, with a fake clock.

Covers the ClientToken rules, the life cycle (creating -> available / create_failed / stuck, deleting ->
gone), loopback mount targets and data directories, paging and filters, and persistence.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cfs_csi.emulator import model
from cfs_csi.emulator.actions import Cloud, CloudSettings
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.faults import FaultConfig, Faults
from cfs_csi.emulator.model import TokenVerdict, mount_ip, token_verdict
from cfs_csi.emulator.store import Store
from cfs_csi.volume.exports import ExportRoot

CREATE_DELAY = 10.0
DELETE_DELAY = 5.0
TTL = 7200.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class World:
    """A cloud over a store in ``root``, with helpers to call it."""

    def __init__(self, root: Path, clock: FakeClock, config: FaultConfig | None = None) -> None:
        self.root = root
        self.clock = clock
        self.store = Store(root / "state.db")
        self.faults = Faults(
            config or FaultConfig(create_delay=CREATE_DELAY, delete_delay=DELETE_DELAY), random.Random(7)
        )
        settings = CloudSettings(client_token_ttl=TTL, export_root=ExportRoot(root / "exports"))
        self.cloud = Cloud(self.store, settings, self.faults, clock, random.Random(7))

    def create(self, **params: object) -> dict[str, object]:
        base: dict[str, object] = {
            "Zone": "ap-guangzhou-3",
            "NetInterface": "VPC",
            "PGroupId": "pgroupbasic",
            "VpcId": "vpc-oilua6pt",
            "SubnetId": "subnet-rtwb42lu",
            "FsName": "fs",
        }
        return self.cloud.create_file_system({**base, **params})

    def info(self, fs_id: str) -> dict[str, object]:
        found = self.cloud.describe_file_systems({"FileSystemId": fs_id})
        [entry] = found["FileSystems"]  # type: ignore[misc]
        assert isinstance(entry, dict)
        return entry

    def state(self, fs_id: str) -> str:
        return str(self.info(fs_id)["LifeCycleState"])

    def targets(self, fs_id: str) -> list[dict[str, object]]:
        return self.cloud.describe_mount_targets({"FileSystemId": fs_id})["MountTargets"]  # type: ignore[return-value]

    def count(self) -> int:
        return int(self.cloud.describe_file_systems({})["TotalCount"])  # type: ignore[call-overload]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    w = World(tmp_path, clock)
    yield w
    w.store.close()


def error_code(call: object) -> str:
    assert callable(call)
    with pytest.raises(ApiError) as error:
        call()
    return error.value.code


# -- ClientToken -------------------------------------------------------------------------------------------

VERDICTS = [
    ("never seen", None, None, 0, TokenVerdict.NEW),
    ("seen, creating", 0.0, model.CREATING, 1, TokenVerdict.IN_USE),
    ("seen, available", 0.0, model.AVAILABLE, 1, TokenVerdict.REUSE),
    ("seen, create_failed", 0.0, model.CREATE_FAILED, 1, TokenVerdict.REUSE),
    ("seen, deleting", 0.0, model.DELETING, 1, TokenVerdict.REUSE),
    ("seen, deleted", 0.0, model.DELETED, 1, TokenVerdict.NEW),
    ("file system unknown", 0.0, None, 1, TokenVerdict.NEW),
    ("expired while creating", 0.0, model.CREATING, TTL, TokenVerdict.NEW),
    ("just before expiry", 0.0, model.AVAILABLE, TTL - 0.001, TokenVerdict.REUSE),
]


@pytest.mark.parametrize(("case", "issued", "state", "now", "verdict"), VERDICTS, ids=[v[0] for v in VERDICTS])
def test_token_verdict(case: str, issued: float | None, state: str | None, now: float, verdict: TokenVerdict) -> None:
    assert token_verdict(issued, state, now, TTL) is verdict


TOKEN_CASES = [
    # (case, seconds after the first create, expected: "in_use" | "same" | "new")
    ("at once", 0.0, "in_use"),
    ("still creating", CREATE_DELAY - 0.1, "in_use"),
    ("just available", CREATE_DELAY, "same"),
    ("long after, within the TTL", TTL - 1, "same"),
    ("after the TTL", TTL, "new"),
    ("well after the TTL", TTL * 3, "new"),
]


@pytest.mark.parametrize(("case", "later", "expected"), TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_client_token_rules(world: World, clock: FakeClock, case: str, later: float, expected: str) -> None:
    first = world.create(ClientToken="tok")
    assert first["LifeCycleState"] == model.CREATING
    clock.advance(later)
    if expected == "in_use":
        assert error_code(lambda: world.create(ClientToken="tok")) == "FailedOperation.ClientTokenInUse"
        assert world.count() == 1
        return
    again = world.create(ClientToken="tok")
    if expected == "same":
        assert again["FileSystemId"] == first["FileSystemId"]
        assert again["LifeCycleState"] == model.AVAILABLE
        assert world.count() == 1
    else:
        assert again["FileSystemId"] != first["FileSystemId"]
        assert world.count() == 2


def test_token_of_a_stuck_file_system_stays_in_use_until_the_ttl(tmp_path: Path, clock: FakeClock) -> None:
    w = World(tmp_path, clock, FaultConfig(create_delay=CREATE_DELAY, stuck_rate=1.0))
    first = w.create(ClientToken="tok")
    clock.advance(TTL - 1)
    assert w.state(str(first["FileSystemId"])) == model.CREATING
    assert error_code(lambda: w.create(ClientToken="tok")) == "FailedOperation.ClientTokenInUse"
    clock.advance(1)
    assert w.create(ClientToken="tok")["FileSystemId"] != first["FileSystemId"]
    w.store.close()


def test_token_of_a_failed_file_system_answers_that_file_system(tmp_path: Path, clock: FakeClock) -> None:
    w = World(tmp_path, clock, FaultConfig(create_delay=CREATE_DELAY, create_failed_rate=1.0))
    first = w.create(ClientToken="tok")
    clock.advance(CREATE_DELAY)
    again = w.create(ClientToken="tok")
    assert (again["FileSystemId"], again["LifeCycleState"]) == (first["FileSystemId"], model.CREATE_FAILED)
    assert w.targets(str(first["FileSystemId"])) == []
    w.store.close()


def test_deleting_a_file_system_releases_its_token(world: World, clock: FakeClock) -> None:
    first = str(world.create(ClientToken="tok")["FileSystemId"])
    clock.advance(CREATE_DELAY)
    world.cloud.delete_file_system({"FileSystemId": first})
    assert world.create(ClientToken="tok")["FileSystemId"] != first


def test_names_need_not_be_unique(world: World) -> None:
    a = world.create(FsName="same")
    b = world.create(FsName="same")
    assert a["FileSystemId"] != b["FileSystemId"]
    listed = world.cloud.describe_file_systems({"CreationToken": "same"})
    assert listed["TotalCount"] == 2


# -- life cycle ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "ip"),
    [(0, "127.16.0.2"), (1, "127.16.0.3"), (249, "127.16.0.251"), (250, "127.16.1.2"), (63999, "127.16.255.251")],
)
def test_mount_ips_are_loopback(index: int, ip: str) -> None:
    assert mount_ip(index) == ip
    assert ipaddress.ip_address(ip).is_loopback  # never an RFC 1918 address a real network could route


@pytest.mark.parametrize("index", [-1, model.MOUNT_IP_CAPACITY])
def test_mount_ip_range(index: int) -> None:
    with pytest.raises(ValueError):
        mount_ip(index)


def test_creating_then_available_with_mount_target_and_data_directory(world: World, clock: FakeClock) -> None:
    fs_id = str(world.create()["FileSystemId"])
    assert fs_id.startswith("cfs-") and len(fs_id) == 12 and fs_id[4:].isalnum() and fs_id[4:].islower()
    assert world.state(fs_id) == model.CREATING
    assert world.targets(fs_id) == []
    clock.advance(CREATE_DELAY)
    assert world.state(fs_id) == model.AVAILABLE
    [target] = world.targets(fs_id)
    assert target["IpAddress"] == "127.16.0.2"
    fsid = str(target["FSID"])
    assert len(fsid) == 8 and fsid.isalnum() and fsid == fsid.lower()
    assert (target["VpcId"], target["SubnetId"], target["LifeCycleState"]) == (
        "vpc-oilua6pt",
        "subnet-rtwb42lu",
        model.AVAILABLE,
    )
    assert ExportRoot(world.root / "exports").file_system_dir("127.16.0.2", fsid).is_dir()
    second = str(world.create()["FileSystemId"])
    clock.advance(CREATE_DELAY)
    assert world.targets(second)[0]["IpAddress"] == "127.16.0.3"


def test_background_advance_creates_the_directory_without_a_read(world: World, clock: FakeClock) -> None:
    world.create()
    clock.advance(CREATE_DELAY)
    world.cloud.advance()
    [row] = world.store.all()
    assert row.state == model.AVAILABLE and row.ip and row.fsid
    assert (world.root / "exports" / row.ip / row.fsid).is_dir()


def test_create_response_fields(world: World) -> None:
    response = world.create(FsName="名字", ResourceTags=[{"TagKey": "k", "TagValue": "v"}])
    assert set(response) == {
        "CreationTime", "CreationToken", "FileSystemId", "LifeCycleState", "SizeByte", "ZoneId", "FsName", "Encrypted",
    }  # fmt: skip
    assert (response["FsName"], response["CreationToken"], response["ZoneId"]) == ("名字", "名字", 100003)
    info = world.info(str(response["FileSystemId"]))
    assert info["Tags"] == [{"TagKey": "k", "TagValue": "v"}]
    assert info["PGroup"] == {"PGroupId": "pgroupbasic", "Name": "默认权限组"}
    assert (info["Zone"], info["StorageType"], info["Protocol"]) == ("ap-guangzhou-3", "SD", "NFS")


def test_delete(world: World, clock: FakeClock) -> None:
    fs_id = str(world.create()["FileSystemId"])
    delete = {"FileSystemId": fs_id}
    assert error_code(lambda: world.cloud.delete_file_system(delete)) == "InvalidParameterValue.InvalidFsStatus"
    clock.advance(CREATE_DELAY)
    [target] = world.targets(fs_id)
    data = world.root / "exports" / str(target["IpAddress"]) / str(target["FSID"])
    (data / "file").write_text("data")
    assert world.cloud.delete_file_system(delete) == {}
    assert world.state(fs_id) == model.DELETING
    assert world.cloud.delete_file_system(delete) == {}  # accepted again while deleting
    clock.advance(DELETE_DELAY)
    assert world.count() == 0
    assert not data.exists() and not data.parent.exists()
    assert error_code(lambda: world.cloud.delete_file_system(delete)) == "ResourceNotFound.FileSystemNotFound"
    assert error_code(lambda: world.targets(fs_id)) == "ResourceNotFound.FileSystemNotFound"
    assert world.cloud.admin_snapshot()["DeletedCount"] == 1


def test_delete_of_a_failed_file_system(tmp_path: Path, clock: FakeClock) -> None:
    w = World(tmp_path, clock, FaultConfig(create_delay=1, delete_delay=0, create_failed_rate=1.0))
    fs_id = str(w.create()["FileSystemId"])
    clock.advance(1)
    assert w.state(fs_id) == model.CREATE_FAILED
    w.cloud.delete_file_system({"FileSystemId": fs_id})
    assert w.count() == 0
    w.store.close()


@pytest.mark.parametrize("fs_id", ["cfs-unknown0", "not-an-id"])
def test_unknown_ids(world: World, fs_id: str) -> None:
    assert world.cloud.describe_file_systems({"FileSystemId": fs_id}) == {"FileSystems": [], "TotalCount": 0}
    assert error_code(lambda: world.targets(fs_id)) == "ResourceNotFound.FileSystemNotFound"
    assert error_code(lambda: world.cloud.delete_file_system({"FileSystemId": fs_id})) == (
        "ResourceNotFound.FileSystemNotFound"
    )


def test_deletion_never_follows_a_symlink_out_of_the_data_directory(world: World, clock: FakeClock) -> None:
    fs_id = str(world.create()["FileSystemId"])
    clock.advance(CREATE_DELAY)
    [target] = world.targets(fs_id)
    data = world.root / "exports" / str(target["IpAddress"]) / str(target["FSID"])
    outside = world.root / "precious"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    (data / "link").symlink_to(outside)
    world.cloud.delete_file_system({"FileSystemId": fs_id})
    clock.advance(DELETE_DELAY)
    world.cloud.advance()
    assert not data.exists()
    assert (outside / "keep").read_text() == "keep"


# -- describe -----------------------------------------------------------------------------------------------


def test_paging_and_filters(world: World, clock: FakeClock) -> None:
    ids = [str(world.create(FsName=f"fs-{i}", VpcId="vpc-aaaaaaaa" if i % 2 else "vpc-bbbbbbbb")["FileSystemId"])
           for i in range(25)]  # fmt: skip
    first = world.cloud.describe_file_systems({})
    assert first["TotalCount"] == 25 and len(first["FileSystems"]) == 10  # type: ignore[arg-type]
    pages = [world.cloud.describe_file_systems({"Offset": offset, "Limit": 10}) for offset in (0, 10, 20, 30)]
    listed = [fs["FileSystemId"] for page in pages for fs in page["FileSystems"]]  # type: ignore[attr-defined]
    assert listed == ids  # creation order, each once
    assert [len(p["FileSystems"]) for p in pages] == [10, 10, 5, 0]  # type: ignore[arg-type]
    odd = world.cloud.describe_file_systems({"VpcId": "vpc-aaaaaaaa", "Limit": 100})
    assert odd["TotalCount"] == 12
    clock.advance(CREATE_DELAY)
    available = world.cloud.describe_file_systems(
        {"Filters": [{"Name": "LifeCycleState", "Values": ["available"]}], "Limit": 100}
    )
    assert available["TotalCount"] == 25
    by_ip = world.cloud.describe_file_systems({"Filters": [{"Name": "IpAddress", "Values": ["127.16.0.4"]}]})
    assert [fs["FileSystemId"] for fs in by_ip["FileSystems"]] == [ids[2]]  # type: ignore[attr-defined]
    assert world.cloud.describe_file_systems({"SubnetId": "subnet-zzzzzzzz"})["TotalCount"] == 0


def test_tag_filter(world: World) -> None:
    world.create(ResourceTags=[{"TagKey": "pv", "TagValue": "a"}, {"TagKey": "team", "TagValue": "x"}])
    world.create(ResourceTags=[{"TagKey": "pv", "TagValue": "b"}])
    found = world.cloud.describe_file_systems({"Tags": [{"TagKey": "pv", "TagValue": "a"}]})
    assert found["TotalCount"] == 1


# -- persistence ---------------------------------------------------------------------------------------------


def test_state_survives_reopening(tmp_path: Path, clock: FakeClock) -> None:
    w = World(tmp_path, clock)
    fs_id = str(w.create(ClientToken="tok", ResourceTags=[{"TagKey": "k", "TagValue": "值"}])["FileSystemId"])
    clock.advance(CREATE_DELAY)
    [before] = w.targets(fs_id)
    w.store.close()
    again = World(tmp_path, clock)
    assert again.targets(fs_id) == [before]
    assert again.info(fs_id)["Tags"] == [{"TagKey": "k", "TagValue": "值"}]
    assert again.create(ClientToken="tok")["FileSystemId"] == fs_id  # the token survived too
    new = str(again.create()["FileSystemId"])
    clock.advance(CREATE_DELAY)
    assert again.targets(new)[0]["IpAddress"] == "127.16.0.3"  # addresses are never handed out twice
    again.store.close()


def test_concurrent_creates_with_one_token_make_one_file_system(world: World) -> None:
    """The token check and the insert are one transaction: racing retries cannot both create."""

    def attempt() -> str:
        try:
            return str(world.create(ClientToken="race")["FileSystemId"])
        except ApiError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: attempt(), range(32)))
    created = [r for r in results if r.startswith("cfs-")]
    assert len(created) == 1 and world.count() == 1
    assert set(results) - set(created) == {"FailedOperation.ClientTokenInUse"}
