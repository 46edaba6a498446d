"""What the API answers to one HTTP request, decided without doing any I/O.

The order mirrors a cloud gateway: authenticate, check version and action, decide the injected fault, run the
action, wrap the result in the ``{"Response": {...}}`` envelope. The server only reads the request, waits the
delays the ``Reply`` asks for, and writes it.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from cfs_csi.emulator import errors
from cfs_csi.emulator.actions import Cloud
from cfs_csi.emulator.errors import ApiError
from cfs_csi.emulator.faults import FaultKind, Faults
from cfs_csi.emulator.signing import SignedRequest, verify

log = logging.getLogger(__name__)

API_VERSION = "2019-07-19"
JSON = "application/json"
"""Exactly this: the SDK only parses an error envelope when Content-Type equals it (no charset)."""
MAX_BODY = 10 * 1024 * 1024
UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class Reply:
    """An HTTP answer. ``delay`` seconds pass before it is written; ``outcome`` is ``ok``, an error code,
    ``http_<status>`` or ``timeout`` (for the request statistics and the log line)."""

    status: int
    body: bytes
    content_type: str
    action: str
    outcome: str
    delay: float = 0.0


def envelope(content: Mapping[str, object], request_id: str) -> bytes:
    return json.dumps({"Response": {**content, "RequestId": request_id}}, ensure_ascii=False).encode()


def error_reply(code: str, message: str, action: str, request_id: str, delay: float = 0.0) -> Reply:
    body = envelope({"Error": {"Code": code, "Message": message}}, request_id)
    return Reply(200, body, JSON, action, code, delay)


class RequestStats:
    """Counts per action and outcome, and the time the emulator spent answering, for ``GET /admin/requests``.

    ``busy_ms`` sums the emulator's own time per request (body read to answer ready, injected delays included),
    so that a benchmark can tell a client's overhead from the "cloud's" time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._busy = 0.0

    def record(self, action: str, outcome: str, seconds: float = 0.0) -> None:
        with self._lock:
            self._counts[(action, outcome)] += 1
            self._busy += seconds

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._busy = 0.0

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            counts = dict(self._counts)
            busy = self._busy
        by_action: dict[str, dict[str, int]] = {}
        by_outcome: Counter[str] = Counter()
        for (action, outcome), n in sorted(counts.items()):
            by_action.setdefault(action, {})[outcome] = n
            by_outcome[outcome] += n
        return {
            "total": sum(counts.values()),
            "by_action": by_action,
            "by_outcome": dict(by_outcome),
            "busy_ms": round(busy * 1000, 3),
        }


class Gateway:
    """Turns an authenticated-or-not HTTP request into a ``Reply``, running the action when it should."""

    def __init__(
        self,
        cloud: Cloud,
        faults: Faults,
        secrets: Mapping[str, str],
        clock: Callable[[], float],
        tokens: Mapping[str, str] | None = None,
    ):
        self.cloud = cloud
        self.faults = faults
        self._secrets = dict(secrets)
        self._tokens = dict(tokens or {})  # secret id -> the session token its requests must carry
        self._clock = clock

    def handle(self, request: SignedRequest) -> Reply:
        request_id = str(uuid.uuid4())
        headers = request.headers
        named = headers.get("x-tc-action", "").strip()
        action = named if named in self.cloud.actions else UNKNOWN

        rejection = verify(request, self._secrets, self._clock(), tokens=self._tokens)
        if rejection is not None:
            return error_reply(rejection.code, rejection.message, action, request_id)
        for header in ("x-tc-action", "x-tc-version"):
            if not headers.get(header, "").strip():
                return error_reply(errors.MISSING_PARAMETER, f"the header {header} is missing", action, request_id)
        version = headers["x-tc-version"].strip()
        if version != API_VERSION:
            message = f"version {version!r} of the cfs API does not exist; use {API_VERSION}"
            return error_reply(errors.NO_SUCH_VERSION, message, action, request_id)
        if action == UNKNOWN:
            return error_reply(errors.INVALID_ACTION, f"the action {named!r} does not exist", action, request_id)
        region = headers.get("x-tc-region", "").strip()
        if region and region != self.cloud.settings.region:
            message = f"this emulator serves region {self.cloud.settings.region!r}, not {region!r}"
            return error_reply(errors.UNSUPPORTED_REGION, message, action, request_id)
        if not headers.get("content-type", "").strip().lower().startswith(JSON):
            message = "the emulator accepts application/json bodies (signature v3) only"
            return error_reply(errors.INVALID_PARAMETER, message, action, request_id)
        try:
            params = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return error_reply(errors.INVALID_PARAMETER, "the body is not valid JSON", action, request_id)
        if not isinstance(params, dict):
            return error_reply(errors.INVALID_PARAMETER, "the body must be a JSON object", action, request_id)

        fault = self.faults.for_request(action)
        if fault.kind is FaultKind.THROTTLE:
            message = "the request rate limit of this action is exceeded (injected fault)"
            return error_reply(errors.REQUEST_LIMIT_EXCEEDED, message, action, request_id, fault.latency)
        if fault.kind is FaultKind.ERROR:
            body = f"<html><body><h1>{fault.status}</h1>injected fault</body></html>\n".encode()
            return Reply(fault.status, body, "text/html", action, f"http_{fault.status}", fault.latency)

        try:
            reply = Reply(200, envelope(self.cloud.call(action, params), request_id), JSON, action, "ok")
        except ApiError as exc:
            reply = error_reply(exc.code, exc.message, action, request_id)
        except Exception:
            log.exception("%s failed (request %s)", action, request_id)
            reply = error_reply(errors.INTERNAL_ERROR, "internal error of the emulator", action, request_id)
        if fault.kind is FaultKind.TIMEOUT:
            # The action ran and committed; the client will not hear about it in time.
            return replace(reply, outcome="timeout", delay=fault.latency + fault.timeout_delay)
        return replace(reply, delay=fault.latency)
