"""The emulator checks the session token of a temporary key (``X-TC-Token``), on requests signed by the SDK."""

from __future__ import annotations

import pytest
from tencentcloud.cfs.v20190719.cfs_client import CfsClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from cfs_csi.emulator.signing import AUTH_TOKEN_FAILURE, SignedRequest, verify

SECRET_ID, SECRET_KEY = "AKIDemulatortokentest", "emulator-token-test-key"
TOKEN = "emulator-session-token-0123456789"
ENDPOINT = "127.0.0.1:8080"


def signed(token: str | None) -> SignedRequest:
    """A request as the SDK builds and signs it for a credential with (or without) a session token."""
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=ENDPOINT, protocol="http"))
    client = CfsClient(Credential(SECRET_ID, SECRET_KEY, token), "ap-guangzhou", profile)
    raw = RequestInternal(ENDPOINT, "POST", "/", header={})
    client._build_req_inter("DescribeCfsFileSystems", {"Limit": 5}, raw)
    headers = {name.lower(): str(value) for name, value in raw.header.items()}
    return SignedRequest("POST", "/", "", headers, raw.data.encode())


CASES = [
    ("temporary key with its token", TOKEN, {SECRET_ID: TOKEN}, None),
    ("temporary key without a token", None, {SECRET_ID: TOKEN}, AUTH_TOKEN_FAILURE),
    ("temporary key with another token", TOKEN + "x", {SECRET_ID: TOKEN}, AUTH_TOKEN_FAILURE),
    ("permanent key with a token", TOKEN, {}, AUTH_TOKEN_FAILURE),
    ("permanent key without a token", None, {}, None),
    ("a token configured for another key", None, {"AKIDother": TOKEN}, None),
]


@pytest.mark.parametrize(("case", "sent", "tokens", "code"), CASES, ids=[c[0] for c in CASES])
def test_session_token(case: str, sent: str | None, tokens: dict[str, str], code: str | None) -> None:
    request = signed(sent)
    assert ("x-tc-token" in request.headers) == (sent is not None)  # the SDK really sends it
    rejection = verify(request, {SECRET_ID: SECRET_KEY}, int(request.headers["x-tc-timestamp"]), tokens=tokens)
    assert (rejection.code if rejection else None) == code
    assert rejection is None or TOKEN not in rejection.message


def test_a_bad_signature_is_reported_before_the_token() -> None:
    request = signed(None)
    rejection = verify(request, {SECRET_ID: "another-key"}, int(request.headers["x-tc-timestamp"]),
                       tokens={SECRET_ID: TOKEN})  # fmt: skip
    assert rejection is not None and rejection.code == "AuthFailure.SignatureFailure"
