"""Every answer of every action the emulator serves has exactly the shape of the SDK's model: no field the
model has is missing, none it lacks is present, recursively through nested models and lists of them. The
answers are read raw (``CommonClient.call_json``) and also deserialized by the SDK's own models, which warn
about fields they do not know."""

from __future__ import annotations

import random
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.cfs.v20190719 import models
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential

from cfs_csi.emulator.actions import Cloud, CloudSettings
from cfs_csi.emulator.faults import FaultConfig, Faults
from cfs_csi.emulator.store import Store
from tests.integration.test_emulator import (  # noqa: F401 - no_proxy is an autouse fixture
    REGION,
    SECRET_ID,
    SECRET_KEY,
    Running,
    eventually,
    no_proxy,
    start,
)

_NESTED = re.compile(r":class:`tencentcloud\.cfs\.v20190719\.models\.(\w+)`|list of (\w+)")


def model_fields(cls: type) -> dict[str, str | None]:
    """The fields of an SDK model and, for nested ones, the model's name (from its documented types)."""
    instance = cls()
    names = [name.removeprefix("_") for name in vars(instance)]
    doc = getattr(cls, "__init__").__doc__ or ""  # noqa: B009 - mypy: __init__ of a class object
    nested: dict[str, str | None] = {}
    for name in names:
        found = re.search(rf":type {name}: (.+)", doc)
        match = _NESTED.search(found.group(1)) if found else None
        kind = (match.group(1) or match.group(2)) if match else None
        nested[name] = kind if kind is not None and hasattr(models, kind) else None
    return nested


def shape_errors(value: dict[str, Any], model: str, where: str) -> list[str]:
    fields = model_fields(getattr(models, model))
    problems = [f"{where}: {model} field {k} is missing" for k in fields if k not in value]
    problems += [f"{where}: {k} is not a field of {model}" for k in value if k not in fields]
    for key, nested in fields.items():
        child = value.get(key)
        if nested is None or child is None:
            continue
        items = child if isinstance(child, list) else [child]
        for i, item in enumerate(items):
            assert isinstance(item, dict), f"{where}.{key}[{i}] is not an object"
            problems += shape_errors(item, nested, f"{where}.{key}[{i}]")
    return problems


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Running]:
    running = start(tmp_path / "emulator", "--snapshot-delay", "0.2")
    try:
        yield running
    finally:
        running.stop()


def served_actions(tmp_path: Path) -> frozenset[str]:
    store = Store(tmp_path / "actions.db")
    try:
        rng = random.Random(1)
        return Cloud(store, CloudSettings(), Faults(FaultConfig(), rng), time.time, rng).actions
    finally:
        store.close()


def test_every_answer_has_the_sdk_models_shape(emu: Running, tmp_path: Path) -> None:
    client = CommonClient("cfs", "2019-07-19", Credential(SECRET_ID, SECRET_KEY), REGION, emu.profile())
    answers: dict[str, list[dict[str, Any]]] = {}

    def call(action: str, params: dict[str, Any]) -> dict[str, Any]:
        response = client.call_json(action, params)["Response"]
        answers.setdefault(action, []).append(response)
        return dict(response)

    tags = [{"TagKey": "k", "TagValue": "v"}]
    create = {"Zone": "ap-guangzhou-3", "NetInterface": "vpc", "PGroupId": "pgroupbasic", "VpcId": "vpc-oilua6pt",
              "SubnetId": "subnet-rtwb42lu", "FsName": "shape", "ResourceTags": tags}  # fmt: skip
    fs_id = call("CreateCfsFileSystem", create)["FileSystemId"]
    eventually(lambda: call("DescribeCfsFileSystems", {"FileSystemId": fs_id})["FileSystems"][0]["LifeCycleState"]
               == "available" or None, "the file system to be available")  # fmt: skip
    [target] = call("DescribeMountTargets", {"FileSystemId": fs_id})["MountTargets"]
    (emu.exports.file_system_dir(target["IpAddress"], target["FSID"]) / "q").mkdir()
    call("UpdateCfsFileSystemSizeLimit", {"FileSystemId": fs_id, "FsLimit": 100})
    quota = {"FileSystemId": fs_id, "UserType": "Dir", "DirectoryPath": "/cfs/q"}
    call("SetUserQuota", {**quota, "CapacityHardLimit": 10})
    call("DescribeUserQuota", {"FileSystemId": fs_id})
    call("DeleteUserQuota", quota)
    snap_id = call("CreateCfsSnapshot", {"FileSystemId": fs_id, "ResourceTags": [{"TagKey": "k", "TagValue": "v"}]})[
        "SnapshotId"
    ]
    eventually(lambda: call("DescribeCfsSnapshots", {"SnapshotId": snap_id})["Snapshots"][0]["Status"]
               == "available" or None, "the snapshot to be available")  # fmt: skip
    call("DeleteCfsSnapshot", {"SnapshotId": snap_id})
    call("DeleteCfsFileSystem", {"FileSystemId": fs_id})

    assert set(answers) == served_actions(tmp_path)
    problems: list[str] = []
    for action, responses in sorted(answers.items()):
        for response in responses:
            problems += shape_errors(response, f"{action}Response", action)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                getattr(models, f"{action}Response")()._deserialize(response)
            problems += [f"{action}: the SDK model warns: {w.message}" for w in caught]
    assert problems == []
    assert answers["DescribeUserQuota"][0]["UserQuotaInfo"], "a nested UserQuota must have been checked"
    assert answers["DescribeCfsSnapshots"][-1]["Snapshots"], "a nested SnapshotInfo must have been checked"


def test_the_shape_check_can_fail() -> None:
    good = {"Type": "fixed", "Performance": 1}
    assert shape_errors(good, "ExstraPerformanceInfo", "x") == []
    assert shape_errors({"Type": "fixed"}, "ExstraPerformanceInfo", "x") == [
        "x: ExstraPerformanceInfo field Performance is missing"
    ]
    nested = {"PGroupId": "p", "Name": "n", "Extra": 1}
    assert shape_errors(nested, "PGroup", "x") == ["x: Extra is not a field of PGroup"]
    assert model_fields(models.FileSystemInfo)["PGroup"] == "PGroup"
    assert model_fields(models.DescribeCfsSnapshotsResponse)["Snapshots"] == "SnapshotInfo"
