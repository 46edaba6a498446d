"""TC3-HMAC-SHA256 verification, table-driven, against requests signed by the official SDK's own signer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from tencentcloud.cfs.v20190719.cfs_client import CfsClient
from tencentcloud.common.abstract_client_async import AbstractClient as AsyncClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.sign import Sign

from cfs_csi.emulator import signing
from cfs_csi.emulator.signing import SignedRequest, parse_authorization, verify

SECRET_ID = "AKIDemulatorsigningtest"
SECRET_KEY = "emulator-signing-test-key"
SECRETS = {SECRET_ID: SECRET_KEY}
ENDPOINT = "127.0.0.1:8080"


def sdk_signed(
    secret_id: str = SECRET_ID,
    secret_key: str = SECRET_KEY,
    params: dict[str, object] | None = None,
    unsigned_payload: bool = False,
) -> SignedRequest:
    """A request exactly as the synchronous SDK client builds and signs it (without sending it)."""
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=ENDPOINT, protocol="http"))
    profile.unsignedPayload = unsigned_payload
    client = CfsClient(Credential(secret_id, secret_key), "ap-guangzhou", profile)
    raw = RequestInternal(ENDPOINT, "POST", "/", header={})
    client._build_req_inter("DescribeCfsFileSystems", params if params is not None else {"Limit": 5}, raw)
    headers = {name.lower(): str(value) for name, value in raw.header.items()}
    return SignedRequest("POST", "/", "", headers, raw.data.encode())


def timestamp_of(request: SignedRequest) -> int:
    return int(request.headers["x-tc-timestamp"])


def with_headers(request: SignedRequest, **changes: str | None) -> SignedRequest:
    headers = dict(request.headers)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = value
    return replace(request, headers=headers)


Case = tuple[str, Callable[[], SignedRequest], float, str | None]

CASES: list[Case] = [
    ("good", lambda: sdk_signed(), 0, None),
    ("good, unsigned payload", lambda: sdk_signed(unsigned_payload=True), 0, None),
    ("good, non-ASCII body", lambda: sdk_signed(params={"CreationToken": "文件系统"}), 0, None),
    ("good, 299 s ahead", lambda: sdk_signed(), 299, None),
    ("good, 299 s behind", lambda: sdk_signed(), -299, None),
    ("wrong key", lambda: sdk_signed(secret_key="not-the-key"), 0, "AuthFailure.SignatureFailure"),
    ("key in another case", lambda: sdk_signed(secret_key=SECRET_KEY.upper()), 0, "AuthFailure.SignatureFailure"),
    ("wrong secret id", lambda: sdk_signed(secret_id="AKIDsomebodyelse"), 0, "AuthFailure.SecretIdNotFound"),
    ("expired: 301 s late", lambda: sdk_signed(), 301, "AuthFailure.SignatureExpire"),
    ("from the future: 301 s early", lambda: sdk_signed(), -301, "AuthFailure.SignatureExpire"),
    ("tampered body", lambda: replace(sdk_signed(), body=b'{"Limit": 6}'), 0, "AuthFailure.SignatureFailure"),
    ("tampered host", lambda: with_headers(sdk_signed(), host="127.0.0.2:8080"), 0, "AuthFailure.SignatureFailure"),
    ("tampered path", lambda: replace(sdk_signed(), path="/x"), 0, "AuthFailure.SignatureFailure"),
    ("tampered query", lambda: replace(sdk_signed(), query="a=1"), 0, "AuthFailure.SignatureFailure"),
    (
        "tampered timestamp",
        lambda: with_headers(sdk_signed(), x_tc_timestamp=str(timestamp_of(sdk_signed()) + 1)),
        0,
        "AuthFailure.SignatureFailure",
    ),
    (
        "unsigned-payload header added after signing",
        lambda: with_headers(sdk_signed(), x_tc_content_sha256="UNSIGNED-PAYLOAD"),
        0,
        "AuthFailure.SignatureFailure",
    ),
    ("missing Authorization", lambda: with_headers(sdk_signed(), authorization=None), 0,
     "AuthFailure.InvalidAuthorization"),
    ("malformed Authorization", lambda: with_headers(sdk_signed(), authorization="Bearer abc"), 0,
     "AuthFailure.InvalidAuthorization"),
    ("missing timestamp", lambda: with_headers(sdk_signed(), x_tc_timestamp=None), 0, "MissingParameter"),
    ("non-numeric timestamp", lambda: with_headers(sdk_signed(), x_tc_timestamp="soon"), 0, "InvalidParameter"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "build", "skew", "code"), CASES, ids=[c[0] for c in CASES])
def test_verify(case: str, build: Callable[[], SignedRequest], skew: float, code: str | None) -> None:
    request = build()
    stamp = request.headers.get("x-tc-timestamp", "")
    now = int(stamp) if stamp.isdigit() else time.time()  # the server's clock, relative to the signing time
    rejection = verify(request, SECRETS, now + skew)
    assert (rejection.code if rejection else None) == code, rejection


def test_signature_from_the_async_client_signer() -> None:
    """The asynchronous client has its own signer (a static method); it must verify too."""
    timestamp = 1_750_000_000
    body = b'{"FileSystemId": "cfs-abcdefgh"}'
    headers = {"Content-Type": "application/json", "Host": ENDPOINT, "X-TC-Timestamp": str(timestamp)}
    date = signing.utc_date(timestamp)
    sdk_signature = AsyncClient._get_tc3_signature("POST", "/", "", body, headers, date, "cfs", SECRET_KEY, {})
    headers["Authorization"] = (
        f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{date}/cfs/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={sdk_signature}"
    )
    request = SignedRequest("POST", "/", "", {k.lower(): v for k, v in headers.items()}, body)
    assert verify(request, SECRETS, timestamp) is None
    wrong_scope = headers["Authorization"].replace(f"/{date}/cfs/", "/2001-01-01/cfs/")
    request = SignedRequest("POST", "/", "", {**request.headers, "authorization": wrong_scope}, body)
    rejection = verify(request, SECRETS, timestamp)
    assert rejection is not None and rejection.code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize("to_sign", ["", "TC3-HMAC-SHA256\n1\n2024-01-01/cfs/tc3_request\nabc", "文件"])
def test_key_chain_matches_the_sdk(to_sign: str) -> None:
    assert signing.signature(SECRET_KEY, "2024-01-01", "cfs", to_sign) == Sign.sign_tc3(
        SECRET_KEY, "2024-01-01", "cfs", to_sign
    )


GOOD_HEADER = (
    "TC3-HMAC-SHA256 Credential=AKID/2024-01-01/cfs/tc3_request, SignedHeaders=content-type;host, Signature=" + "a" * 64
)

HEADERS = [
    ("sdk shape", GOOD_HEADER, True),
    ("no spaces after commas", GOOD_HEADER.replace(", ", ","), True),
    ("other algorithm", GOOD_HEADER.replace("TC3-HMAC-SHA256", "HMAC-SHA1"), False),
    ("scope not tc3_request", GOOD_HEADER.replace("tc3_request", "aws4_request"), False),
    ("short signature", GOOD_HEADER[:-1], False),
    ("upper-case signature", GOOD_HEADER[:-64] + "A" * 64, False),
    ("missing SignedHeaders", GOOD_HEADER.replace("SignedHeaders=content-type;host, ", ""), False),
    ("duplicate field", GOOD_HEADER + ", Signature=" + "b" * 64, False),
    ("empty secret id", GOOD_HEADER.replace("AKID/", "/"), False),
    ("upper-case header name", GOOD_HEADER.replace("content-type", "Content-Type"), False),
]


@pytest.mark.parametrize(("case", "header", "ok"), HEADERS, ids=[h[0] for h in HEADERS])
def test_parse_authorization(case: str, header: str, ok: bool) -> None:
    parsed = parse_authorization(header)
    assert (parsed is not None) == ok
    if parsed is not None:
        assert (parsed.secret_id, parsed.date, parsed.service) == ("AKID", "2024-01-01", "cfs")
        assert parsed.signed_headers == ("content-type", "host")


def test_signed_headers_must_cover_content_type_and_host() -> None:
    request = sdk_signed()
    header = request.headers["authorization"].replace("SignedHeaders=content-type;host", "SignedHeaders=content-type")
    rejection = verify(with_headers(request, authorization=header), SECRETS, timestamp_of(request))
    assert rejection is not None and rejection.code == "AuthFailure.InvalidAuthorization"
