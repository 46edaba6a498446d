"""Parameter validation of the emulated actions: every rule, with the real error code it answers."""

from __future__ import annotations

import pytest

from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.model import Tag
from cfs_csi.emulator.validate import DEFAULT_LIMIT, parse_create, parse_describe, parse_file_system_id

REGION = "ap-guangzhou"
VALID: dict[str, object] = {
    "Zone": "ap-guangzhou-3",
    "NetInterface": "VPC",
    "PGroupId": "pgroupbasic",
    "Protocol": "NFS",
    "StorageType": "SD",
    "VpcId": "vpc-oilua6pt",
    "SubnetId": "subnet-rtwb42lu",
    "FsName": "cls-test_pvc-1",
    "ResourceTags": [{"TagKey": "csi", "TagValue": "pvc-1"}],
    "ClientToken": "token-1",
}
DROP = object()


def create_with(**changes: object) -> dict[str, object]:
    params = {**VALID, **changes}
    return {k: v for k, v in params.items() if v is not DROP}


def test_valid_request_and_defaults() -> None:
    request = parse_create(create_with(Protocol=DROP, StorageType=DROP, ClientToken=DROP, FsName=DROP), REGION)
    assert (request.protocol, request.storage_type, request.client_token, request.name) == ("NFS", "SD", None, "")
    full = parse_create(VALID, REGION)
    assert full.tags == (Tag("csi", "pvc-1"),) and full.client_token == "token-1"
    assert parse_create(create_with(PGroupId="pgroup-lrquouvl", StorageType="HP"), REGION).storage_type == "HP"


LONG_CHINESE = "文" * 22  # 66 bytes in UTF-8, only 22 characters

CREATE_ERRORS = [
    ("missing Zone", {"Zone": DROP}, "MissingParameter"),
    ("empty Zone", {"Zone": ""}, "InvalidParameterValue.MissingZoneOrZoneId"),
    ("malformed Zone", {"Zone": "guangzhou-3"}, "InvalidParameterValue.InvalidZoneOrZoneId"),
    ("zone without number", {"Zone": "ap-guangzhou"}, "InvalidParameterValue.InvalidZoneOrZoneId"),
    ("zone of another region", {"Zone": "ap-shanghai-2"}, "InvalidParameterValue.ZoneIdRegionNotMatch"),
    ("Zone not a string", {"Zone": 3}, "InvalidParameter"),
    ("missing NetInterface", {"NetInterface": DROP}, "MissingParameter"),
    ("basic network", {"NetInterface": "BASIC"}, "UnsupportedOperation.BasicNetInterfaceNotSupported"),
    ("CCN network", {"NetInterface": "CCN"}, "InvalidParameterValue.InvalidNetInterface"),
    ("missing PGroupId", {"PGroupId": DROP}, "MissingParameter"),
    ("malformed pgroup", {"PGroupId": "pgroup-abc"}, "InvalidParameterValue.InvalidPgroupId"),
    ("pgroup in capitals", {"PGroupId": "PGROUPBASIC"}, "InvalidParameterValue.InvalidPgroupId"),
    ("CIFS", {"Protocol": "CIFS"}, "InvalidParameterValue.InvalidProtocol"),
    ("unknown storage type", {"StorageType": "XL"}, "InvalidParameterValue.InvalidStorageType"),
    ("lower-case storage type", {"StorageType": "sd"}, "InvalidParameterValue.InvalidStorageType"),
    ("missing VpcId", {"VpcId": DROP}, "InvalidParameterValue.MissingVpcParameter"),
    ("missing SubnetId", {"SubnetId": ""}, "InvalidParameterValue.MissingVpcParameter"),
    ("malformed VpcId", {"VpcId": "vpc-abc"}, "InvalidParameterValue.InvalidVpcId"),
    ("malformed SubnetId", {"SubnetId": "sub-rtwb42lu"}, "InvalidParameterValue.InvalidSubnetId"),
    ("FsName of 65 bytes", {"FsName": "n" * 65}, "InvalidParameterValue.FsNameLimitExceeded"),
    ("FsName of 66 UTF-8 bytes", {"FsName": LONG_CHINESE}, "InvalidParameterValue.FsNameLimitExceeded"),
    ("ClientToken of 65", {"ClientToken": "t" * 65}, "InvalidParameterValue.ClientTokenLimitExceeded"),
    ("ClientToken with space", {"ClientToken": "a b"}, "InvalidParameterValue.InvalidClientToken"),
    ("ClientToken not ASCII", {"ClientToken": "令牌"}, "InvalidParameterValue.InvalidClientToken"),
    ("tags not a list", {"ResourceTags": {"k": "v"}}, "InvalidParameter"),
    ("tag with extra field", {"ResourceTags": [{"TagKey": "k", "TagValue": "v", "X": 1}]}, "InvalidParameter"),
    ("empty tag key", {"ResourceTags": [{"TagKey": "", "TagValue": "v"}]}, "InvalidParameterValue.InvalidTagKey"),
    ("empty tag value", {"ResourceTags": [{"TagKey": "k", "TagValue": ""}]}, "InvalidParameterValue.InvalidTagValue"),
    ("tag key too long", {"ResourceTags": [{"TagKey": "k" * 128, "TagValue": "v"}]},
     "InvalidParameterValue.TagKeyLimitExceeded"),
    ("tag value too long", {"ResourceTags": [{"TagKey": "k", "TagValue": "v" * 256}]},
     "InvalidParameterValue.TagValueLimitExceeded"),
    ("duplicate tag key", {"ResourceTags": [{"TagKey": "k", "TagValue": "1"}, {"TagKey": "k", "TagValue": "2"}]},
     "InvalidParameterValue.DuplicatedTagKey"),
    ("51 tags", {"ResourceTags": [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(51)]},
     "ResourceInsufficient.TagLimitExceeded"),
    ("Encrypted not a bool", {"Encrypted": "yes"}, "InvalidParameterValue.InvalidEncrypted"),
    ("zero Capacity", {"Capacity": 0}, "InvalidParameterValue.InvalidTurboCapacity"),
    ("unknown parameter", {"Size": 10}, "UnknownParameter"),
    ("lower-case parameter name", {"fsName": "x"}, "UnknownParameter"),
    ("MountIP is not modelled", {"MountIP": "10.0.0.1"}, "UnsupportedOperation"),
    ("CcnId is not modelled", {"CcnId": "ccn-abcdefgh"}, "UnsupportedOperation"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "changes", "code"), CREATE_ERRORS, ids=[c[0] for c in CREATE_ERRORS])
def test_create_errors(case: str, changes: dict[str, object], code: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_create(create_with(**changes), REGION)
    assert error.value.code == code


@pytest.mark.parametrize(
    ("case", "changes"),
    [
        ("FsName of exactly 64 bytes", {"FsName": "n" * 64}),
        ("FsName of 63 UTF-8 bytes", {"FsName": "文" * 21}),
        ("duplicate-looking but allowed name", {"FsName": "same"}),
        ("ClientToken of exactly 64", {"ClientToken": "t" * 64}),
        ("empty ClientToken means none", {"ClientToken": ""}),
        ("Turbo storage type", {"StorageType": "TP", "Capacity": 20480}),
        ("no tags", {"ResourceTags": []}),
    ],
)
def test_create_accepts(case: str, changes: dict[str, object]) -> None:
    parse_create(create_with(**changes), REGION)


def test_describe_defaults_and_filters() -> None:
    request = parse_describe({})
    assert (request.offset, request.limit) == (0, DEFAULT_LIMIT)
    request = parse_describe(
        {
            "VpcId": "vpc-oilua6pt",
            "Offset": 20,
            "Limit": 100,
            "Filters": [{"Name": "LifeCycleState", "Values": ["available", "creating"]}],
            "Tags": [{"TagKey": "k", "TagValue": "v"}],
        }
    )
    assert request.filters == (("LifeCycleState", frozenset({"available", "creating"})),)
    assert (request.vpc_id, request.offset, request.limit, request.tags) == ("vpc-oilua6pt", 20, 100, (Tag("k", "v"),))


DESCRIBE_ERRORS = [
    ("Limit 0", {"Limit": 0}, "InvalidParameterValue"),
    ("Limit 101", {"Limit": 101}, "InvalidParameterValue"),
    ("negative Offset", {"Offset": -1}, "InvalidParameterValue"),
    ("Limit as a string", {"Limit": "10"}, "InvalidParameter"),
    ("Offset as a bool", {"Offset": True}, "InvalidParameter"),
    ("unknown filter", {"Filters": [{"Name": "FsName", "Values": ["x"]}]}, "InvalidParameterValue"),
    ("filter values not strings", {"Filters": [{"Name": "Zone", "Values": [3]}]}, "InvalidParameter"),
    ("FileSystemId not a string", {"FileSystemId": ["cfs-1"]}, "InvalidParameter"),
    ("unknown parameter", {"Name": "x"}, "UnknownParameter"),
]


@pytest.mark.parametrize(("case", "params", "code"), DESCRIBE_ERRORS, ids=[c[0] for c in DESCRIBE_ERRORS])
def test_describe_errors(case: str, params: dict[str, object], code: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_describe(params)
    assert error.value.code == code


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "MissingParameter"),
        ({"FileSystemId": ""}, "InvalidParameterValue.MissingFileSystemId"),
        ({"FileSystemId": 7}, "InvalidParameter"),
        ({"FileSystemId": "cfs-abcdefgh", "Force": True}, "UnknownParameter"),
    ],
)
def test_file_system_id_errors(params: dict[str, object], code: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_file_system_id(params)
    assert error.value.code == code


def test_file_system_id() -> None:
    assert parse_file_system_id({"FileSystemId": "cfs-abcdefgh"}) == "cfs-abcdefgh"
