"""The gateway: envelope, common errors and injected faults, for requests signed by the SDK (no sockets)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from tencentcloud.common.abstract_client_async import AbstractClient as AsyncClient
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from cfs_csi.emulator import signing
from cfs_csi.emulator.actions import Cloud, CloudSettings
from cfs_csi.emulator.faults import FaultConfig, Faults
from cfs_csi.emulator.gateway import Gateway, Reply, RequestStats
from cfs_csi.emulator.signing import SignedRequest
from cfs_csi.emulator.store import Store

SECRET_ID = "AKIDemulatorgatewaytest"
SECRET_KEY = "emulator-gateway-test-key"
ENDPOINT = "127.0.0.1:9000"
CREATE = {
    "Zone": "ap-guangzhou-3",
    "NetInterface": "VPC",
    "PGroupId": "pgroupbasic",
    "VpcId": "vpc-oilua6pt",
    "SubnetId": "subnet-rtwb42lu",
    "FsName": "gw",
}


def signed(
    action: str,
    params: Mapping[str, object],
    version: str = "2019-07-19",
    region: str = "ap-guangzhou",
    key: str = SECRET_KEY,
) -> SignedRequest:
    """Built and signed by the SDK's generic client, as ``CommonClient.call_json`` would send it."""
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=ENDPOINT, protocol="http"))
    client = CommonClient("cfs", version, Credential(SECRET_ID, key), region, profile)
    raw = RequestInternal(ENDPOINT, "POST", "/", header={})
    client._build_req_inter(action, params, raw)
    return SignedRequest("POST", "/", "", {k.lower(): str(v) for k, v in raw.header.items()}, raw.data.encode())


def signed_raw(body: bytes, content_type: str = "application/json") -> SignedRequest:
    """Any body, signed by the SDK's asynchronous signer (to send what no SDK call produces)."""
    timestamp = int(time.time())
    date = signing.utc_date(timestamp)
    headers = {
        "Content-Type": content_type,
        "Host": ENDPOINT,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Action": "DescribeCfsFileSystems",
        "X-TC-Version": "2019-07-19",
    }
    sig = AsyncClient._get_tc3_signature("POST", "/", "", body, headers, date, "cfs", SECRET_KEY, {})
    headers["Authorization"] = (
        f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{date}/cfs/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={sig}"
    )
    return SignedRequest("POST", "/", "", {k.lower(): v for k, v in headers.items()}, body)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    store = Store(tmp_path / "state.db")
    faults = Faults(FaultConfig(create_delay=0.0, delete_delay=0.0), random.Random(5))
    cloud = Cloud(store, CloudSettings(), faults, time.time, random.Random(5))
    yield Gateway(cloud, faults, {SECRET_ID: SECRET_KEY}, time.time)
    store.close()


def response_of(reply: Reply) -> dict[str, object]:
    assert (reply.status, reply.content_type) == (200, "application/json")
    data = json.loads(reply.body)
    assert set(data) == {"Response"}
    response = data["Response"]
    assert isinstance(response, dict) and isinstance(response.pop("RequestId"), str)
    return response


def error_of(reply: Reply) -> str:
    response = response_of(reply)
    error = response["Error"]
    assert isinstance(error, dict) and error["Message"]
    assert reply.outcome == error["Code"]
    return str(error["Code"])


def test_success_envelope(gateway: Gateway) -> None:
    reply = gateway.handle(signed("CreateCfsFileSystem", CREATE))
    created = response_of(reply)
    assert created["LifeCycleState"] == "available"  # no create delay in this fixture
    assert (reply.action, reply.outcome, reply.delay) == ("CreateCfsFileSystem", "ok", 0.0)
    listed = response_of(gateway.handle(signed("DescribeCfsFileSystems", {})))
    assert listed["TotalCount"] == 1


ERRORS = [
    ("unknown action", lambda: signed("DescribeCfsFileSystem", {}), "InvalidAction"),
    ("unsupported version", lambda: signed("DescribeCfsFileSystems", {}, version="2017-03-12"), "NoSuchVersion"),
    ("other region", lambda: signed("DescribeCfsFileSystems", {}, region="ap-shanghai"), "UnsupportedRegion"),
    ("wrong key", lambda: signed("DescribeCfsFileSystems", {}, key="nope"), "AuthFailure.SignatureFailure"),
    ("parameter error", lambda: signed("DescribeCfsFileSystems", {"Limit": 1000}), "InvalidParameterValue"),
    ("malformed JSON", lambda: signed_raw(b'{"Limit": '), "InvalidParameter"),
    ("JSON not an object", lambda: signed_raw(b"[1, 2]"), "InvalidParameter"),
    ("form body", lambda: signed_raw(b"Limit=1", "application/x-www-form-urlencoded"), "InvalidParameter"),
    ("action of another resource", lambda: signed("DeleteCfsFileSystem", {"FileSystemId": "cfs-00000000"}),
     "ResourceNotFound.FileSystemNotFound"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "build", "code"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(gateway: Gateway, case: str, build: object, code: str) -> None:
    assert callable(build)
    assert error_of(gateway.handle(build())) == code


def test_missing_action_header(gateway: Gateway) -> None:
    request = signed("DescribeCfsFileSystems", {})
    headers = {k: v for k, v in request.headers.items() if k != "x-tc-action"}
    reply = gateway.handle(SignedRequest("POST", "/", "", headers, request.body))
    assert error_of(reply) == "MissingParameter" and reply.action == "(unknown)"


def test_empty_body_is_an_empty_object(gateway: Gateway) -> None:
    assert response_of(gateway.handle(signed_raw(b"")))["TotalCount"] == 0


def test_throttle(gateway: Gateway) -> None:
    gateway.faults.replace(FaultConfig(throttle_rate=1.0, latency_ms=20))
    reply = gateway.handle(signed("CreateCfsFileSystem", CREATE))
    assert error_of(reply) == "RequestLimitExceeded"
    assert reply.delay == pytest.approx(0.02)
    gateway.faults.replace(FaultConfig())
    assert response_of(gateway.handle(signed("DescribeCfsFileSystems", {})))["TotalCount"] == 0  # never ran


def test_server_error_is_not_json(gateway: Gateway) -> None:
    gateway.faults.replace(FaultConfig(error_rate=1.0, error_status=503))
    reply = gateway.handle(signed("CreateCfsFileSystem", CREATE))
    assert (reply.status, reply.content_type, reply.outcome) == (503, "text/html", "http_503")
    with pytest.raises(ValueError):
        json.loads(reply.body)


def test_timeout_runs_the_action_and_holds_the_answer(gateway: Gateway) -> None:
    gateway.faults.replace(FaultConfig(timeout_rate=1.0, timeout_delay=30, actions=("CreateCfsFileSystem",)))
    reply = gateway.handle(signed("CreateCfsFileSystem", CREATE))
    assert (reply.outcome, reply.delay) == ("timeout", 30)
    assert response_of(reply)["FileSystemId"]
    listed = gateway.handle(signed("DescribeCfsFileSystems", {}))
    assert (listed.outcome, listed.delay) == ("ok", 0.0)
    assert response_of(listed)["TotalCount"] == 1  # it was created although the answer was "lost"


def test_auth_comes_before_faults(gateway: Gateway) -> None:
    gateway.faults.replace(FaultConfig(error_rate=1.0))
    assert error_of(gateway.handle(signed("DescribeCfsFileSystems", {}, key="nope"))) == "AuthFailure.SignatureFailure"


def test_request_stats() -> None:
    stats = RequestStats()
    for action, outcome, seconds in [("A", "ok", 0.002), ("A", "ok", 0.001), ("A", "RequestLimitExceeded", 0.0005),
                                     ("B", "http_502", 0.25)]:  # fmt: skip
        stats.record(action, outcome, seconds)
    assert stats.snapshot() == {
        "total": 4,
        "by_action": {"A": {"RequestLimitExceeded": 1, "ok": 2}, "B": {"http_502": 1}},
        "by_outcome": {"RequestLimitExceeded": 1, "ok": 2, "http_502": 1},
        "busy_ms": 253.5,
    }
    stats.reset()
    assert (stats.snapshot()["total"], stats.snapshot()["busy_ms"]) == (0, 0.0)
