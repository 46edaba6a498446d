"""The CFS API's wire protocol (API 3.0: JSON over ``POST /``, TC3-HMAC-SHA256 signatures), without the SDK.

Why not the official SDK in the controller: through it (keep-alive on) one API call cost the controller about
1.5 ms of CPU (its request and response models, ``httpx.Request``/``Response``, httpcore), six calls per
CreateVolume+DeleteVolume, and its imports (httpx, and ``requests``/``urllib3``, which its async client loads
through the sync one) about 15 MB of memory and 0.3 s of start-up. This module does what the calls need, in
0.3 ms per call with the socket work: sign (the algorithm is spelled out in :mod:`cfs_csi.emulator.signing`,
which verifies it independently, and a test compares the signature with the SDK's), send through
:mod:`.transport`, and read the ``{"Response": ...}`` envelope. Its failures carry the codes the SDK would have
raised (the API's ``Error.Code``; ``ServerNetworkError`` for an HTTP status other than 200 or an unreadable
answer; ``ClientNetworkError`` when no answer came), so :mod:`.errors` classifies them unchanged.

Where an HTTP proxy from the environment applies to the endpoint, :func:`make_api` uses the SDK instead
(:mod:`.sdkapi`), which honours proxies as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from cfs_csi import __version__
from cfs_csi.cloud.deadline import count_cloud
from cfs_csi.cloud.tencent.credentials import SdkCredential
from cfs_csi.cloud.tencent.transport import HttpPool, TransportError, encode_request
from cfs_csi.metrics import record as metrics

log = logging.getLogger(__name__)

SERVICE = "cfs"
API_VERSION = "2019-07-19"
ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json"
REQUEST_CLIENT = f"cfs-csi/{__version__}"


class ApiError(Exception):
    """The API (or the way to it) answered with an error: ``code`` as the SDK would name it."""

    def __init__(self, action: str, code: str, message: str) -> None:
        super().__init__(f"{action}: {code}")
        self.action, self.code, self.message = action, code, message[:300]


class CloudApi(Protocol):
    """One CFS API action: its ``Response`` object, or :class:`ApiError`."""

    async def call(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]: ...

    async def close(self) -> None: ...


def signature(secret_key: str, host: str, body: bytes, timestamp: int) -> tuple[str, str]:
    """``(date, hex signature)`` of a ``POST /`` with ``Content-Type: application/json`` (signed: content-type;host)."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = f"POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{host.lower()}\n\ncontent-type;host\n"
    canonical += hashlib.sha256(body).hexdigest()
    scope = f"{date}/{SERVICE}/tc3_request"
    to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _hmac(f"TC3{secret_key}".encode(), date)
    key = _hmac(_hmac(key, SERVICE), "tc3_request")
    return date, hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    action: str, host: str, region: str, body: bytes, credential: SdkCredential, timestamp: int
) -> list[tuple[str, str]]:
    """Every header of the request but ``Host`` and ``Content-Length`` (the transport adds those)."""
    return _headers(action, host, region, body, credential.get_credential_info(), timestamp)


async def current_keys(credential: SdkCredential) -> tuple[str, str, str | None]:
    """The credential's keys without blocking the event loop.

    A CVM instance role renews its temporary keys from the metadata service (up to three tries of 1 s each, with
    backoff): on the event loop that renewal would stall every call the controller is serving. When one is due
    (its ``cached()`` answers ``None``) it runs in a worker thread; otherwise the keys are read in place, as are
    those of static and file credentials (two small reads of a mounted Secret).
    """
    cached = getattr(credential, "cached", None)
    if cached is None:
        return credential.get_credential_info()
    keys: tuple[str, str, str | None] | None = cached()
    if keys is not None:
        return keys
    return await asyncio.to_thread(credential.get_credential_info)


def _headers(
    action: str, host: str, region: str, body: bytes, keys: tuple[str, str, str | None], timestamp: int
) -> list[tuple[str, str]]:
    secret_id, secret_key, token = keys
    date, signed = signature(secret_key, host, body, timestamp)
    headers = [
        ("Content-Type", CONTENT_TYPE),
        ("X-TC-Action", action),
        ("X-TC-Version", API_VERSION),
        ("X-TC-Timestamp", str(timestamp)),
        ("X-TC-Region", region),
        ("X-TC-RequestClient", REQUEST_CLIENT),
        ("Authorization", f"{ALGORITHM} Credential={secret_id}/{date}/{SERVICE}/tc3_request, "
                          f"SignedHeaders=content-type;host, Signature={signed}"),
    ]  # fmt: skip
    if token:
        headers.append(("X-TC-Token", token))
    return headers


def read_answer(action: str, status: int, body: bytes) -> dict[str, Any]:
    """The ``Response`` object of an answer, or the :class:`ApiError` it stands for."""
    if status != 200:
        raise ApiError(action, "ServerNetworkError", f"HTTP status {status}")
    try:
        envelope = json.loads(body)
    except ValueError:
        raise ApiError(action, "ServerNetworkError", "the answer is not JSON") from None
    response = envelope.get("Response") if isinstance(envelope, dict) else None
    if not isinstance(response, dict):
        raise ApiError(action, "ServerNetworkError", "the answer has no Response object")
    error = response.get("Error")
    if isinstance(error, dict):
        raise ApiError(action, str(error.get("Code") or "InternalError"), str(error.get("Message") or ""))
    return response


class CfsApi:
    """Signed calls over a keep-alive :class:`HttpPool`; ``endpoint`` is ``host[:port]``, as signed in ``Host``."""

    def __init__(
        self, scheme: str, endpoint: str, region: str, credential: SdkCredential, timeout: float, clock: Any = time
    ) -> None:
        host, _, port = endpoint.rpartition(":") if endpoint.rsplit(":", 1)[-1].isdigit() else (endpoint, "", "")
        self._pool = HttpPool(scheme, host.strip("[]"), int(port) if port else (443 if scheme == "https" else 80))
        self._endpoint, self._region, self._credential = endpoint, region, credential
        self._timeout = timeout
        self._clock = clock

    @property
    def connections_opened(self) -> int:
        return self._pool.connections_opened

    async def call(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps(params).encode()
        keys = await current_keys(self._credential)
        headers = _headers(action, self._endpoint, self._region, body, keys, int(self._clock.time()))
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:  # as the SDK logged it; logsetup redacts the Authorization and X-TC-Token values
            lines = "\n".join(f"{name}: {value}" for name, value in [("Host", self._endpoint), *headers])
            log.debug("SendRequest %s\n%s\n\n%s", action, lines, body.decode(errors="replace"))
        started = time.monotonic()
        code = "Cancelled"  # for the metrics: unless an answer, or its absence, is known
        try:
            try:
                exchange = self._pool.exchange(encode_request(self._endpoint, headers, body), self._timeout)
                head, answer = await exchange
            except TransportError as exc:
                log.debug("%s: no answer: %s", action, exc)
                raise ApiError(action, "ClientNetworkError", str(exc)) from None
            finally:
                count_cloud(time.monotonic() - started)
            if debug:
                log.debug("GetResponse %s: HTTP %d\n%s", action, head.status, answer[:4096].decode(errors="replace"))
            response = read_answer(action, head.status, answer)
            code = "OK"
            return response
        except ApiError as exc:
            code = exc.code
            raise
        finally:
            metrics.cloud_call(action, code, time.monotonic() - started)

    async def close(self) -> None:
        self._pool.close()


#: The variables that can name a proxy (any case); without one, ``urllib.request`` (3.6 MB) is not even loaded.
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def proxied(scheme: str, endpoint: str, proxies: Mapping[str, str] | None = None) -> bool:
    """Whether an HTTP proxy from the environment (``HTTPS_PROXY``, ``NO_PROXY``, ...) applies to the endpoint."""
    if proxies is None and not any(name.lower() in _PROXY_VARIABLES and value for name, value in os.environ.items()):
        return False
    import urllib.request

    found = urllib.request.getproxies() if proxies is None else proxies
    if not found.get(scheme) and not found.get("all"):
        return False
    host = endpoint.rsplit(":", 1)[0] if endpoint.rsplit(":", 1)[-1].isdigit() else endpoint
    return not urllib.request.proxy_bypass(host.strip("[]"))


def make_api(scheme: str, endpoint: str, region: str, credential: SdkCredential, timeout: float) -> CloudApi:
    """:class:`CfsApi`, or the SDK where a proxy applies (this transport speaks to the endpoint directly)."""
    if proxied(scheme, endpoint):
        from cfs_csi.cloud.tencent.sdkapi import SdkApi

        return SdkApi(scheme, endpoint, region, credential, timeout)
    return CfsApi(scheme, endpoint, region, credential, timeout)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()
