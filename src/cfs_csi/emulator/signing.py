"""Verification of TC3-HMAC-SHA256 request signatures, as a pure function of the request.

The emulator checks signatures for real so that a driver with a wrong key, a key with a trailing newline or a
skewed clock fails against it the way it would fail against the cloud. The algorithm (Tencent Cloud API 3.0,
"signature v3"):

    CanonicalRequest = Method, Path, Query, CanonicalHeaders, SignedHeaders, hex(sha256(body))  (joined by \\n)
    StringToSign = "TC3-HMAC-SHA256", Timestamp, <date>/<service>/tc3_request, hex(sha256(CanonicalRequest))
    key chain    = HMAC("TC3" + SecretKey, date) -> HMAC(., service) -> HMAC(., "tc3_request")
    Signature    = hex(HMAC(key, StringToSign))

``CanonicalHeaders`` is ``name:value\\n`` per signed header, names and values lower-cased and trimmed. The
SDK signs ``content-type;host``. ``date`` is the UTC date of ``X-TC-Timestamp``. With the header
``X-TC-Content-SHA256: UNSIGNED-PAYLOAD`` the body hash is the hash of that literal string.

Temporary credentials (a CVM instance role, TKE OIDC, STS) add a session token in ``X-TC-Token``; it is not
signed, but the cloud checks it against the temporary key pair. Here a key pair may be given a token: a
request signed with that pair must then carry exactly that token, and a request carrying a token for a pair
that has none is refused too, so a test proves the token really travels (``AuthFailure.TokenFailure``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cfs_csi.emulator import errors

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "cfs"
MAX_SKEW_SECONDS = 300
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_REQUIRED_SIGNED_HEADERS = frozenset({"content-type", "host"})
AUTH_TOKEN_FAILURE = "AuthFailure.TokenFailure"  # noqa: S105 - an error code, not a token


@dataclass(frozen=True)
class SignedRequest:
    """What the signature covers. ``headers`` has lower-case names; ``query`` is the raw query string."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Rejection:
    """Why a request is not authentic: an API error code and our message."""

    code: str
    message: str


@dataclass(frozen=True)
class Authorization:
    """The parsed ``Authorization`` header."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    """``TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=a;b, Signature=<hex>``."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, content = item.strip().partition("=")
        if not sep or name in fields:
            return None
        fields[name] = content.strip()
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        return None
    scope = fields["Credential"].split("/")
    if len(scope) != 4 or scope[3] != "tc3_request" or not all(scope):
        return None
    signed = tuple(fields["SignedHeaders"].split(";"))
    if not all(signed) or any(h != h.lower() for h in signed):
        return None
    signature = fields["Signature"]
    if len(signature) != 64 or any(c not in "0123456789abcdef" for c in signature):
        return None
    return Authorization(scope[0], scope[1], scope[2], signed, signature)


def utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def canonical_request(request: SignedRequest, signed_headers: tuple[str, ...]) -> str | None:
    """The canonical request, or None when a signed header is absent from the request."""
    lines = []
    for name in signed_headers:
        value = request.headers.get(name)
        if value is None:
            return None
        lines.append(f"{name}:{value.strip().lower()}\n")
    if request.headers.get("x-tc-content-sha256") == UNSIGNED_PAYLOAD:
        payload = UNSIGNED_PAYLOAD.encode()
    else:
        payload = request.body
    return "\n".join(
        (
            request.method,
            request.path,
            request.query,
            "".join(lines),
            ";".join(signed_headers),
            hashlib.sha256(payload).hexdigest(),
        )
    )


def string_to_sign(timestamp: str, date: str, service: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{digest}"


def signature(secret_key: str, date: str, service: str, to_sign: str) -> str:
    def step(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode(), hashlib.sha256).digest()

    key = step(step(step(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def verify(
    request: SignedRequest,
    secrets: Mapping[str, str],
    now: float,
    service: str = SERVICE,
    max_skew: float = MAX_SKEW_SECONDS,
    tokens: Mapping[str, str] | None = None,
) -> Rejection | None:
    """None if ``request`` is signed by one of ``secrets`` (secret id -> secret key) within ``max_skew`` and
    carries the session token ``tokens`` names for that secret id (none if it names none).

    Checked in this order: header shape, timestamp, clock skew, secret id, signature, token, so that each test
    vector fails for exactly the reason it was built for.
    """
    header = request.headers.get("authorization", "")
    auth = parse_authorization(header) if header else None
    if auth is None:
        return Rejection(errors.AUTH_INVALID_AUTHORIZATION, "the Authorization header is missing or malformed")
    if not set(auth.signed_headers) >= _REQUIRED_SIGNED_HEADERS:
        return Rejection(errors.AUTH_INVALID_AUTHORIZATION, "SignedHeaders must include content-type and host")
    raw_timestamp = request.headers.get("x-tc-timestamp", "").strip()
    if not raw_timestamp:
        return Rejection(errors.MISSING_PARAMETER, "the request is missing the X-TC-Timestamp header")
    if not raw_timestamp.isdigit():
        return Rejection(errors.INVALID_PARAMETER, "X-TC-Timestamp must be a Unix time in seconds")
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > max_skew:
        return Rejection(
            errors.AUTH_SIGNATURE_EXPIRE,
            f"X-TC-Timestamp is more than {int(max_skew)} seconds away from the server time",
        )
    secret_key = secrets.get(auth.secret_id)
    if secret_key is None:
        return Rejection(errors.AUTH_SECRET_ID_NOT_FOUND, "the SecretId is not known (check for extra whitespace)")
    date = utc_date(timestamp)
    canonical = canonical_request(request, auth.signed_headers)
    if auth.date != date or auth.service != service or canonical is None:
        return Rejection(errors.AUTH_SIGNATURE_FAILURE, "the credential scope or signed headers do not match")
    expected = signature(secret_key, date, service, string_to_sign(raw_timestamp, date, service, canonical))
    if not hmac.compare_digest(expected, auth.signature):
        return Rejection(errors.AUTH_SIGNATURE_FAILURE, "the signature does not match the request")
    return check_token(request.headers.get("x-tc-token"), (tokens or {}).get(auth.secret_id))


def check_token(sent: str | None, expected: str | None) -> Rejection | None:
    """The session token rule (see the module docstring); the token itself never appears in the message."""
    if expected is None:
        if sent:
            return Rejection(AUTH_TOKEN_FAILURE, "X-TC-Token was sent, but this SecretId is not a temporary key")
        return None
    if not sent:
        return Rejection(AUTH_TOKEN_FAILURE, "this SecretId is a temporary key: X-TC-Token is required")
    if not hmac.compare_digest(sent.strip().encode(), expected.encode()):
        return Rejection(AUTH_TOKEN_FAILURE, "X-TC-Token does not belong to this temporary key")
    return None
