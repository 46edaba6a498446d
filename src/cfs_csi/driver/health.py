"""A minimal asyncio HTTP server: the liveness endpoint (``GET /healthz``), so the pods need no livenessprobe
sidecar, and the metrics endpoint (``GET /metrics``, :mod:`cfs_csi.metrics`) on a port of its own.

``/healthz`` answers 200 when the plugin's own CSI socket answers ``Probe`` with "ready" (the call goes through
the real socket, as the kubelet's and the sidecars' calls do: a wedged gRPC server fails it) and every extra
check passes (the node's registration socket is in place); 503 otherwise, with a one-line reason. The port is
reachable from the node's network (the node pod uses the host network), so the server answers nothing but its
pages, reads at most a few KiB per request with a deadline, and says nothing secret.

Parsing a request into a page is a pure function; :class:`HttpServer` does the I/O, one page per path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

READ_LIMIT = 8192  # bytes of request line + headers
READ_TIMEOUT = 5.0
PROBE_TIMEOUT = 10.0

#: A check: None when fine, else why not (one line, no secrets).
Check = Callable[[], Awaitable[str | None]]


TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    body: str | bytes
    content_type: str = TEXT


#: A page: what ``GET`` of its path answers.
Page = Callable[[], Awaitable[Reply]]


def page_for(request_line: str, paths: Collection[str]) -> Reply | str:
    """The path of one of ``paths`` that a ``GET``/``HEAD`` request line asks for, else the error reply (pure)."""
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return Reply(400, "Bad Request", "bad request\n")
    method, target = parts[0], parts[1].split("?", 1)[0]
    if target not in paths:
        return Reply(404, "Not Found", "not found\n")
    if method not in ("GET", "HEAD"):
        return Reply(405, "Method Not Allowed", "method not allowed\n")
    return target


def route(request_line: str) -> Reply | None:
    """The reply for a request line that is not a health check; None for ``GET``/``HEAD /healthz``."""
    found = page_for(request_line, ("/healthz",))
    return None if isinstance(found, str) else found


def verdict(problems: Sequence[str]) -> Reply:
    if problems:
        return Reply(503, "Service Unavailable", "; ".join(problems) + "\n")
    return Reply(200, "OK", "ok\n")


def render(reply: Reply, head_only: bool = False) -> bytes:
    body = reply.body.encode() if isinstance(reply.body, str) else reply.body
    head = (
        f"HTTP/1.1 {reply.status} {reply.reason}\r\nContent-Type: {reply.content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + body


def csi_probe(socket_path: str, timeout: float = PROBE_TIMEOUT) -> Check:
    """A check that calls ``Probe`` on our own CSI socket (with grpclib's client: the node loads no grpcio).

    gRPC and protobuf are imported here, not with the module: a component that serves only pages of its own
    (``/metrics``) loads neither."""
    from grpclib.client import Channel, UnaryUnaryMethod
    from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

    from cfs_csi.csi import csi_pb2

    async def check() -> str | None:
        channel = Channel(path=socket_path)
        probe = UnaryUnaryMethod(channel, "/csi.v1.Identity/Probe", csi_pb2.ProbeRequest, csi_pb2.ProbeResponse)
        try:
            response = await probe(csi_pb2.ProbeRequest(), timeout=timeout)
        except GRPCError as exc:
            return f"CSI Probe failed: {exc.status.name}"
        except TimeoutError:
            return "CSI Probe failed: DEADLINE_EXCEEDED"
        except (OSError, ProtocolError, StreamTerminatedError):  # no socket, nobody listening, connection lost
            return "CSI Probe failed: UNAVAILABLE"
        finally:
            channel.close()
        # CSI: an absent "ready" means ready.
        if response.HasField("ready") and not response.ready.value:
            return "CSI Probe: not ready"
        return None

    return check


class HttpServer:
    """Serves ``pages`` (path -> page) on ``port``, one request per connection."""

    def __init__(
        self, port: int, pages: Mapping[str, Page], host: str | None = None, sock: socket.socket | None = None
    ) -> None:
        """``sock``: a socket already listening on ``port`` (bound early, :func:`cfs_csi.driver.listen.listen_tcp`),
        served instead of binding ``host``:``port`` here."""
        self._port, self._host, self._pages, self._sock = port, host, dict(pages), sock
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        if self._sock is not None:
            self._server = await asyncio.start_server(self._handle, sock=self._sock, limit=READ_LIMIT)
        else:
            self._server = await asyncio.start_server(self._handle, self._host, self._port, limit=READ_LIMIT)
        log.info("serving %s on port %d", " and ".join(sorted(self._pages)), self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                line = (await reader.readline()).decode("latin-1")
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: read (bounded by the stream's limit) and ignored
            found = page_for(line, self._pages)
            reply = await self._pages[found]() if isinstance(found, str) else found
            writer.write(render(reply, head_only=line.startswith("HEAD ")))
            await writer.drain()
        except (TimeoutError, ValueError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a slow, oversized or vanished client gets nothing
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


#: The metrics page's type: Prometheus' text format, version 0.0.4 (:mod:`cfs_csi.metrics.exposition`).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_server(port: int, exposition: Callable[[], bytes], sock: socket.socket | None = None) -> HttpServer:
    """``GET /metrics`` on ``port`` (or ``sock``, bound early): ``exposition()`` at each request."""

    async def page() -> Reply:
        return Reply(200, "OK", exposition(), METRICS_CONTENT_TYPE)

    return HttpServer(port, {"/metrics": page}, sock=sock)


async def start_health(port: int, check: Check) -> HttpServer | None:
    """With ``port``: ``GET /healthz`` there, started, failing while ``check()`` names a problem; None without
    (the operator's and the sub-directory provisioner's ``--health-port``)."""
    if not port:
        return None
    server = HealthServer(port, [check])
    await server.start()
    return server


class HealthServer(HttpServer):
    """``/healthz``: 200 while every check passes, else 503 with the problems."""

    def __init__(
        self, port: int, checks: Sequence[Check], host: str | None = None, sock: socket.socket | None = None
    ) -> None:
        super().__init__(port, {"/healthz": self._healthz}, host, sock)
        self._checks = list(checks)

    async def _problems(self) -> list[str]:
        found = []
        for check in self._checks:
            problem = await check()
            if problem:
                found.append(problem)
        return found

    async def _healthz(self) -> Reply:
        problems = await self._problems()
        if problems:
            log.warning("health check failed: %s", "; ".join(problems))
        return verdict(problems)
