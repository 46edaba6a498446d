"""The HTTP side: ``POST /`` is the CFS API, ``/admin/`` is an unauthenticated test and demo API.

Only I/O lives here: read the request, hand it to the ``Gateway``, sleep what the reply asks (injected latency
or a lost answer), write it, log one line. Admin calls bypass signatures and faults, and must only ever be
reachable by the tests or the person running a demo (bind the emulator to loopback).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from cfs_csi.emulator import errors
from cfs_csi.emulator.faults import FaultConfig
from cfs_csi.emulator.gateway import JSON, MAX_BODY, UNKNOWN, Gateway, RequestStats, error_reply
from cfs_csi.emulator.signing import SignedRequest

log = logging.getLogger(__name__)

_MAX_ADMIN_BODY = 1024 * 1024
TICK_SECONDS = 0.2
"""How often file systems that are due become available (or deleted) without anyone asking."""


class EmulatorHTTPServer(ThreadingHTTPServer):
    """One thread per connection; request threads are daemons, so a held-back answer never blocks exit."""

    daemon_threads = True
    #: socketserver's default backlog is 5: a client opening more connections at once than that (a controller at
    #: concurrency 8, or a test) saw connections refused, which the real API never does.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.gateway = gateway
        self.stats = RequestStats()
        self.stopping = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "cfs-emulator"
    timeout = 120  # an idle keep-alive connection ends after this
    disable_nagle_algorithm = True  # headers and body are two writes: without this, keep-alive calls wait 40 ms

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default access log: ``_api`` logs one line per request, without headers."""

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/admin/"):
            self._admin("POST", path)
        elif path == "/":
            self._api()
        else:
            self._plain(HTTPStatus.NOT_FOUND, "not found: the API is POST /\n")

    def do_GET(self) -> None:
        self._method("GET")

    def do_PUT(self) -> None:
        self._method("PUT")

    def do_DELETE(self) -> None:
        self._method("DELETE")

    def _method(self, method: str) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/admin/"):
            self._admin(method, path)
        else:
            self._plain(HTTPStatus.METHOD_NOT_ALLOWED, "the API is POST / with a JSON body\n")

    # the API

    def _api(self) -> None:
        started = time.monotonic()
        length = self._content_length()
        if length is None:
            return
        if length > MAX_BODY:
            # Not read, so the connection cannot be reused; the answer is still the real envelope.
            self.close_connection = True
            reply = error_reply(
                errors.REQUEST_SIZE_LIMIT_EXCEEDED, "the body exceeds 10 MB", UNKNOWN, str(uuid.uuid4())
            )
        else:
            parts = urlsplit(self.path)
            request = SignedRequest(
                method=self.command,
                path=parts.path,
                query=parts.query,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length),
            )
            reply = self.server.gateway.handle(request)
        if reply.delay > 0:
            self.server.stopping.wait(reply.delay)
        latency = time.monotonic() - started
        # Counted before the answer is written, so a client that asks for the figures next sees this request.
        self.server.stats.record(reply.action, reply.outcome, latency)
        with contextlib.suppress(OSError):  # the client gave up (a "timeout" fault does exactly this)
            self._send(reply.status, reply.body, reply.content_type)
        log.info(
            "action=%s outcome=%s status=%d latency_ms=%.1f", reply.action, reply.outcome, reply.status, latency * 1000
        )

    # the admin API

    def _admin(self, method: str, path: str) -> None:
        gateway = self.server.gateway
        route = (method, path.rstrip("/"))
        if route == ("GET", "/admin/filesystems"):
            self._json(HTTPStatus.OK, gateway.cloud.admin_snapshot())
        elif route == ("GET", "/admin/faults"):
            self._json(HTTPStatus.OK, gateway.faults.config.to_json())
        elif route == ("PUT", "/admin/faults"):
            length = self._content_length()
            if length is None:
                return
            if length > _MAX_ADMIN_BODY:
                self.close_connection = True
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
                return
            try:
                body = self.rfile.read(length)
                config = FaultConfig.from_json(json.loads(body or b"{}"), base=gateway.faults.baseline)
            except ValueError as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            gateway.faults.replace(config)
            log.info("faults replaced: %s", json.dumps(config.to_json(), sort_keys=True))
            self._json(HTTPStatus.OK, config.to_json())
        elif route == ("GET", "/admin/pgroups"):
            self._json(HTTPStatus.OK, gateway.cloud.admin_pgroups())
        elif route == ("POST", "/admin/pgroups"):
            wanted = self._admin_body()
            if wanted is None:
                return
            try:
                if not isinstance(wanted, dict):
                    raise ValueError("the body must be {PGroupId, Name}")
                group = gateway.cloud.add_pgroup(str(wanted.get("PGroupId", "")), str(wanted.get("Name", "")))
            except ValueError as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            self._json(HTTPStatus.OK, group)
        elif route == ("GET", "/admin/requests"):
            self._json(HTTPStatus.OK, self.server.stats.snapshot())
        elif route == ("DELETE", "/admin/requests"):
            self.server.stats.reset()
            self._json(HTTPStatus.OK, self.server.stats.snapshot())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no admin route {method} {path}"})

    # plumbing

    def _admin_body(self) -> object | None:
        """The JSON body of an admin call, or None after answering 400/413 for a bad one."""
        length = self._content_length()
        if length is None:
            return None
        if length > _MAX_ADMIN_BODY:
            self.close_connection = True
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return None
        try:
            parsed: object = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON"})
            return None
        return parsed

    def _content_length(self) -> int | None:
        """The declared body length (0 if none), or None after answering 400 for a malformed one."""
        raw = self.headers.get("Content-Length", "0").strip() or "0"
        if not raw.isdigit():
            self.close_connection = True
            self._plain(HTTPStatus.BAD_REQUEST, "bad Content-Length\n")
            return None
        return int(raw)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: HTTPStatus, data: object) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False, sort_keys=True).encode(), JSON)

    def _plain(self, status: HTTPStatus, text: str) -> None:
        self._send(status, text.encode(), "text/plain")


class Emulator:
    """A running emulator: the HTTP server thread and the life-cycle ticker."""

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.httpd = EmulatorHTTPServer(address, gateway)
        self._threads = [
            threading.Thread(target=self._serve, name="cfs-emulator-http", daemon=True),
            threading.Thread(target=self._tick, name="cfs-emulator-ticker", daemon=True),
        ]

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop accepting, release answers held back by faults, and close the socket."""
        self.httpd.stopping.set()
        if self._threads[0].is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5)

    def _serve(self) -> None:
        self.httpd.serve_forever(poll_interval=0.1)

    def _tick(self) -> None:
        while not self.httpd.stopping.wait(TICK_SECONDS):
            try:
                self.httpd.gateway.cloud.advance()
            except Exception:
                log.exception("life-cycle tick failed")
