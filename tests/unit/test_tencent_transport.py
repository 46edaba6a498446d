"""The HTTP transport to the CFS API: against a real asyncio server on loopback, scripted per request."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from cfs_csi.cloud.tencent.sdkapi import mark_sniffio_absent
from cfs_csi.cloud.tencent.transport import Head, HttpPool, TransportError, encode_request, keeps_alive, parse_head

JSON_OK = b'{"Response": {"RequestId": "r"}}'

#: What the server does with one request: return the bytes to write, or None to close without answering.
Script = Callable[[bytes], bytes | None]


def answer(body: bytes = JSON_OK, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Server:
    """Counts connections and requests; each request is answered by the next script (the last one repeats)."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self.close_after_each = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))  # fmt: skip
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                script = self.scripts[min(len(self.requests), len(self.scripts)) - 1]
                reply = script(request)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after_each or b"Connection: close" in reply or b"X-Then-Close" in reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(*scripts: Script) -> AsyncIterator[Server]:
    server = Server(*scripts)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def pool_for(server: Server) -> HttpPool:
    return HttpPool("http", "127.0.0.1", server.port)


async def post(pool: HttpPool, body: bytes = b"{}", timeout: float = 5) -> tuple[int, bytes]:
    head, content = await pool.exchange(encode_request("127.0.0.1", [("Content-Type", "application/json")], body),
                                        timeout)  # fmt: skip
    return head.status, content


def ok(_: bytes) -> bytes:
    return answer()


async def test_connections_are_reused_and_each_request_is_one_write() -> None:
    async with serving(ok) as server:
        pool = pool_for(server)
        for i in range(5):
            assert await post(pool, f'{{"n": {i}}}'.encode()) == (200, JSON_OK)
    assert (server.connections, pool.connections_opened, len(server.requests)) == (1, 1, 5)
    assert server.requests[3].endswith(b'{"n": 3}')


async def test_concurrent_requests_get_their_own_connections_then_share_the_pool() -> None:
    async with serving(ok) as server:
        pool = pool_for(server)
        await asyncio.gather(*(post(pool) for _ in range(4)))
        await asyncio.gather(*(post(pool) for _ in range(4)))
    assert server.connections == pool.connections_opened == 4


@pytest.mark.parametrize(
    ("reply", "body", "reused"),
    [
        ("content-length", JSON_OK, True),
        ("chunked", b'{"Response": {"RequestId": "chunks"}}', True),
        ("close", JSON_OK, False),
        ("until-eof", b'{"Response": {}}', False),
        ("http/1.0", JSON_OK, False),
    ],
)
async def test_answer_framings(reply: str, body: bytes, reused: bool) -> None:
    def script(_: bytes) -> bytes:
        if reply == "chunked":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]))
            return answer(chunks + b"0\r\n\r\n", "Transfer-Encoding: chunked")
        if reply == "close":
            return answer(body, "Connection: close")
        if reply == "until-eof":
            return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + body
        if reply == "http/1.0":
            return answer(body, "X-Then-Close: 1").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
        return answer(body)

    async with serving(script) as server:
        pool = pool_for(server)
        assert await post(pool) == (200, body)
        assert await post(pool) == (200, body)
    assert pool.connections_opened == (1 if reused else 2)


async def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    hang_up_after = answer(JSON_OK, "X-Then-Close: 1")  # a keep-alive answer, then the server hangs up
    async with serving(lambda _: hang_up_after, ok) as server:
        pool = pool_for(server)
        await post(pool)
        await asyncio.sleep(0.05)  # the hang-up reaches the idle connection
        assert await post(pool) == (200, JSON_OK)
    assert server.connections == pool.connections_opened == 2
    assert len(server.requests) == 2  # seen closed before use: nothing sent into it


async def test_a_connection_idle_past_its_expiry_is_not_used() -> None:
    async with serving(ok) as server:
        pool = HttpPool("http", "127.0.0.1", server.port, keepalive_expiry=0.05)
        await post(pool)
        await asyncio.sleep(0.1)
        await post(pool)
    assert server.connections == pool.connections_opened == 2


async def test_a_request_the_server_dropped_on_a_reused_connection_is_sent_once_more() -> None:
    async with serving(ok, lambda _: None, ok) as server:
        pool = pool_for(server)
        await post(pool)
        assert await post(pool, b'{"again": 1}') == (200, JSON_OK)
    assert server.connections == pool.connections_opened == 2
    assert [r.endswith(b'{"again": 1}') for r in server.requests] == [False, True, True]


async def test_a_fresh_connection_without_an_answer_is_an_error_not_a_loop() -> None:
    async with serving(lambda _: None) as server:
        with pytest.raises(TransportError, match="without answering"):
            await post(pool_for(server))
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "before its body"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "reading the answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "inside its headers"),
        (b"<html>not http</html>\r\n\r\n", "status line"),
    ],
)
async def test_broken_answers_are_transport_errors(reply: bytes, error: str) -> None:
    async with serving(lambda _: reply) as server:
        server.close_after_each = True  # the answer is all there will be
        with pytest.raises(TransportError, match=error):
            await post(pool_for(server))


async def test_timeouts_and_refusals_are_transport_errors() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        await asyncio.sleep(5)
        writer.close()

    listener = await asyncio.start_server(never, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    pool = HttpPool("http", "127.0.0.1", port)
    with pytest.raises(TransportError, match=r"timed out after 0\.2 s waiting for the answer"):
        await post(pool, timeout=0.2)
    listener.close()
    await listener.wait_closed()
    with pytest.raises(TransportError, match="cannot connect"):
        await post(pool)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nA: b\r\nContent-Length: 3\r\n\r\n",
         Head(200, [(b"A", b"b"), (b"Content-Length", b"3")], True)),
        (b"HTTP/1.0 502 Bad Gateway\r\n\r\n", Head(502, [], False)),
        (b"HTTP/1.1 200 OK\r\nX-Empty:\r\n\r\n", Head(200, [(b"X-Empty", b"")], True)),
    ],
)  # fmt: skip
def test_parse_head(raw: bytes, expected: Head) -> None:
    assert parse_head(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [b"HTTP/2 200\r\n\r\n", b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", b"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n"],
)  # fmt: skip
def test_malformed_heads_are_transport_errors(raw: bytes) -> None:
    with pytest.raises(TransportError):
        parse_head(raw)


@pytest.mark.parametrize(
    ("version", "connection", "alive"),
    [(b"HTTP/1.1", None, True), (b"HTTP/1.1", b"close", False), (b"HTTP/1.1", b"Keep-Alive", True),
     (b"HTTP/1.0", None, False), (b"HTTP/1.0", b"keep-alive", True)],
)  # fmt: skip
def test_keeps_alive(version: bytes, connection: bytes | None, alive: bool) -> None:
    headers = [(b"Connection", connection)] if connection is not None else []
    assert keeps_alive(Head(200, headers, version == b"HTTP/1.1")) is alive


def test_the_request_is_one_buffer_with_host_headers_and_length() -> None:
    data = encode_request("cfs.example:8443", [("Content-Type", "application/json"), ("X-TC-Action", "A")], b"body")
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.split(b"\r\n") == [b"POST / HTTP/1.1", b"Host: cfs.example:8443", b"Content-Type: application/json",
                                    b"X-TC-Action: A", b"Content-Length: 4"]  # fmt: skip
    assert body == b"body"


def test_sniffio_is_recorded_absent_only_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sniffio", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert mark_sniffio_absent() is True
    assert sys.modules["sniffio"] is None
    with pytest.raises(ImportError):
        importlib.import_module("sniffio")
    monkeypatch.delitem(sys.modules, "sniffio")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())  # installed: left to the import
    assert mark_sniffio_absent() is False
    assert "sniffio" not in sys.modules
