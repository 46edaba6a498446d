"""The CFS API client without the SDK: its signatures against the SDK's own signer and the emulator's verifier,
the answers it reads, and when it leaves the call to the SDK (a proxy)."""

from __future__ import annotations

import time

import pytest
from tencentcloud.cfs.v20190719.cfs_client import CfsClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from cfs_csi.cloud.tencent.api import ApiError, proxied, read_answer, signature, signed_headers
from cfs_csi.cloud.tencent.credentials import StaticCredential
from cfs_csi.emulator.signing import SignedRequest, parse_authorization, verify

SECRET_ID = "AKIDapiclienttest0000000000000000000"
SECRET_KEY = "api-client-test-key-0000000000000"


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [
        ("127.0.0.1:8080", {"Limit": 5}),
        ("cfs.internal.tencentcloudapi.com", {"FileSystemId": "cfs-abcdefgh"}),
        ("cfs.internal.tencentcloudapi.com", {"CreationToken": "名字", "Tags": [{"TagKey": "k", "TagValue": "v"}]}),
    ],
)
def test_signature_equals_the_sdks(endpoint: str, params: dict[str, object]) -> None:
    """The official SDK signs a request; the same host, body and time give the same signature here."""
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=endpoint, protocol="https"))
    client = CfsClient(Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)
    raw = RequestInternal(endpoint, "POST", "/", header={})
    client._build_req_inter("DescribeCfsFileSystems", params, raw)
    auth = parse_authorization(raw.header["Authorization"])
    assert auth is not None
    timestamp = int(raw.header["X-TC-Timestamp"])
    assert signature(SECRET_KEY, endpoint, raw.data.encode(), timestamp) == (auth.date, auth.signature)


@pytest.mark.parametrize("token", [None, "session-token-0000000000"])
def test_the_emulator_accepts_what_is_signed_here(token: str | None) -> None:
    now = int(time.time())
    body = b'{"Limit": 1}'
    credential = StaticCredential(SECRET_ID, SECRET_KEY, token)
    headers = signed_headers("DescribeCfsFileSystems", "127.0.0.1:9", "ap-guangzhou", body, credential, now)
    lowered = {name.lower(): value for name, value in [*headers, ("Host", "127.0.0.1:9")]}
    request = SignedRequest("POST", "/", "", lowered, body)
    tokens = {SECRET_ID: token} if token else None
    assert verify(request, {SECRET_ID: SECRET_KEY}, now, tokens=tokens) is None
    assert ("x-tc-token" in lowered) is (token is not None)
    tampered = SignedRequest("POST", "/", "", lowered, b'{"Limit": 2}')
    assert verify(tampered, {SECRET_ID: SECRET_KEY}, now, tokens=tokens) is not None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"Response": {"TotalCount": 0, "RequestId": "r"}}', {"TotalCount": 0, "RequestId": "r"}),
        (200, b'{"Response": {"Error": {"Code": "ResourceNotFound.FileSystemNotFound", "Message": "no"}}}',
         ("ResourceNotFound.FileSystemNotFound", "no")),
        (200, b'{"Response": {"Error": {"Message": "no code"}}}', ("InternalError", "no code")),
        (502, b"<html>bad gateway</html>", ("ServerNetworkError", "HTTP status 502")),
        (200, b"<html>a portal page</html>", ("ServerNetworkError", "the answer is not JSON")),
        (200, b'{"Result": {}}', ("ServerNetworkError", "the answer has no Response object")),
        (200, b"[1]", ("ServerNetworkError", "the answer has no Response object")),
    ],
)  # fmt: skip
def test_read_answer(status: int, body: bytes, expected: object) -> None:
    if isinstance(expected, dict):
        assert read_answer("DescribeCfsFileSystems", status, body) == expected
        return
    with pytest.raises(ApiError) as caught:
        read_answer("DescribeCfsFileSystems", status, body)
    assert (caught.value.code, caught.value.message) == expected


@pytest.mark.parametrize(
    ("scheme", "endpoint", "proxies", "no_proxy", "expected"),
    [
        ("https", "cfs.internal.tencentcloudapi.com", {}, "", False),
        ("https", "cfs.internal.tencentcloudapi.com", {"https": "http://proxy:3128"}, "", True),
        ("https", "cfs.internal.tencentcloudapi.com", {"http": "http://proxy:3128"}, "", False),
        ("http", "127.0.0.1:8080", {"all": "http://proxy:3128"}, "", True),
        ("https", "cfs.internal.tencentcloudapi.com", {"https": "http://proxy:3128"}, ".tencentcloudapi.com", False),
        ("http", "127.0.0.1:8080", {"http": "http://proxy:3128"}, "127.0.0.1", False),
    ],
)
def test_a_proxy_from_the_environment_hands_the_calls_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch, scheme: str, endpoint: str, proxies: dict[str, str], no_proxy: str, expected: bool
) -> None:
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    if no_proxy:
        monkeypatch.setenv("no_proxy", no_proxy)
    assert proxied(scheme, endpoint, proxies) is expected


@pytest.mark.parametrize(
    ("variables", "expected"),
    [({}, False), ({"HTTPS_PROXY": "http://proxy:3128"}, True), ({"https_proxy": ""}, False),
     ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "tencentcloudapi.com"}, False)],
)  # fmt: skip
def test_proxies_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: bool
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert proxied("https", "cfs.internal.tencentcloudapi.com") is expected
