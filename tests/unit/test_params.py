"""StorageClass parameters: table-driven, every rule and every error names its key."""

from __future__ import annotations

import pytest

from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.params import NfsVersion, StorageType, VolumeParameters, parse_parameters
from tests.seed import SEED_PARAMS as SEED

VALID = [
    ("empty gives defaults", {}, VolumeParameters()),
    (
        "the seed's cfs-normal class",
        SEED,
        VolumeParameters(
            vpc_id="vpc-oilua6pt",
            subnet_id="subnet-rtwb42lu",
            zone="ap-guangzhou-3",
            storage_type=StorageType.SD,
            pgroup_id="pgroup-lrquouvl",
            vers=NfsVersion.V3,
        ),
    ),
    ("keys are case-insensitive", {"VpcId": "vpc-abc", "StorageType": "HP"},
     VolumeParameters(vpc_id="vpc-abc", storage_type=StorageType.HP)),
    ("values are trimmed", {"zone": " ap-shanghai-2 \n"}, VolumeParameters(zone="ap-shanghai-2")),
    ("storage type value case-insensitive", {"storagetype": "hp"}, VolumeParameters(storage_type=StorageType.HP)),
    ("nfs v4", {"vers": "4"}, VolumeParameters(vers=NfsVersion.V4)),
    ("empty pgroup falls back to default", {"pgroupid": ""}, VolumeParameters(pgroup_id="pgroupbasic")),
    ("tags", {"resourcetags": "team:storage, env:prod"},
     VolumeParameters(resource_tags=(("env", "prod"), ("team", "storage")))),
    ("tag value may hold a colon", {"resourcetags": "url:a:b"}, VolumeParameters(resource_tags=(("url", "a:b"),))),
    ("empty tags", {"resourcetags": ""}, VolumeParameters()),
    ("provisioner keys ignored", {"csi.storage.k8s.io/provisioner-secret-name": "x",
                                  "CSI.storage.k8s.io/fstype": "nfs"}, VolumeParameters()),
    ("subdir-share false is harmless", {"subdir-share": "false"}, VolumeParameters()),
    ("zone with a sub-region", {"zone": "ap-shanghai-fsi-1"}, VolumeParameters(zone="ap-shanghai-fsi-1")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "raw", "expected"), VALID, ids=[c[0] for c in VALID])
def test_valid_parameters(case: str, raw: dict[str, str], expected: VolumeParameters) -> None:
    assert parse_parameters(raw) == expected


INVALID = [
    ("unknown key", {"vpcid": "vpc-a", "subnetId2": "subnet-b"}, "'subnetId2'"),
    ("storage type", {"storagetype": "SSD"}, "'storagetype': 'SSD' is not one of SD, HP"),
    ("version", {"vers": "4.1"}, "'vers': '4.1' is not one of 3, 4"),
    ("vpc id", {"vpcid": "oilua6pt"}, "'vpcid'"),
    ("subnet id", {"SubnetId": "subnet_x"}, "'SubnetId'"),
    ("zone", {"zone": "guangzhou"}, "'zone'"),
    ("pgroup", {"pgroupid": "group-1"}, "'pgroupid'"),
    ("tag without colon", {"resourcetags": "team:a,broken"}, "malformed tag 'broken'"),
    ("tag with empty key", {"resourcetags": ":v"}, "malformed tag ':v'"),
    ("tag given twice", {"resourcetags": "a:1,a:2"}, "tag 'a' is given twice"),
    ("trailing comma", {"resourcetags": "a:1,"}, "malformed tag ''"),
    ("key given twice in two cases", {"vpcid": "vpc-a", "VPCID": "vpc-b"}, "given twice"),
    ("shared mode at the wrong provisioner", {"subdir-share": "true"}, "com.tencent.cloud.csi.tcfs"),
    ("subdir-share not boolean", {"subdir-share": "yes"}, "not true or false"),
    ("reserved tag: cluster", {"resourcetags": "cfs-csi/cluster:other"}, "reserves"),
    ("reserved tag: volume", {"resourcetags": "team:a,cfs-csi/volume:x"}, "reserves"),
    ("reserved tag in upper case", {"resourcetags": "CFS-CSI/Volume:x"}, "reserves"),
    ("control character in a tag value", {"resourcetags": "team:a\x00b"}, "malformed tag"),
    ("control character in a tag key", {"resourcetags": "te\x1bam:a"}, "malformed tag"),
]


@pytest.mark.parametrize(("case", "raw", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_parameters(case: str, raw: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        parse_parameters(raw)
    assert message in str(error.value)


def test_too_many_tags() -> None:
    with pytest.raises(InvalidArgument, match="at most 50 tags"):
        parse_parameters({"resourcetags": ",".join(f"k{i}:v" for i in range(51))})


def test_context_uses_the_seed_names_and_omits_empties() -> None:
    params = parse_parameters({**SEED, "resourcetags": "a:1,b:2"})
    assert params.to_context() == {**SEED, "resourcetags": "a:1,b:2"}
    assert VolumeParameters().to_context() == {"storagetype": "SD", "pgroupid": "pgroupbasic", "vers": "3"}
