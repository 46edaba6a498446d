"""Serve gRPC servicers written for ``grpc.aio`` (``async def Method(self, request, context)``) with grpclib.

Why: grpcio's C core alone keeps a bare ``grpc.aio`` server at about 33 MiB of RSS, more than the node plugin's
whole budget (31 MB, issue 15); grpclib is pure Python on the ``h2`` HTTP/2 state machine, and a call costs about
the same (~1 ms) in either. The servicers stay as they are: this module builds grpclib's handler table from the
protobuf service descriptor (``/csi.v1.Node/NodePublishVolume`` -> request and response classes) and calls each
method with a small :class:`CallContext` that offers what our servicers, the generated servicer base classes and
the interceptor use of grpc.aio's context: ``time_remaining``, ``abort``, ``set_code`` and ``set_details``.

What grpc.aio did for us and grpclib does not, done here:

- requests larger than :data:`MAX_MESSAGE` (gRPC's default receive limit, 4 MiB) are refused with
  RESOURCE_EXHAUSTED before their body is read, instead of buffered whole;
- :meth:`GrpcServer.stop` drains: new calls get UNAVAILABLE, calls in flight get up to ``grace`` seconds, and only
  then are the rest cancelled (grpclib's own ``close`` cancels at once), their callers told UNAVAILABLE.

Deadlines are grpclib's: a call is cancelled when the caller's ``grpc-timeout`` passes, and the caller gets
DEADLINE_EXCEEDED, as with grpc.aio. A method missing from a servicer answers UNIMPLEMENTED through the same path
as a method that raises ``NotImplementedError``, so the interceptor words both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from grpclib.const import Cardinality, Status
from grpclib.const import Handler as GrpclibHandler
from grpclib.exceptions import GRPCError
from grpclib.metadata import Deadline
from grpclib.server import Server, Stream

log = logging.getLogger(__name__)

#: Largest request accepted, in bytes: gRPC's default receive limit (grpc.aio enforced it for us).
MAX_MESSAGE = 4 * 1024 * 1024

#: Seconds :meth:`GrpcServer.stop` waits for cancelled calls to finish after the grace period.
CANCEL_WAIT = 10.0

_HEAD = struct.Struct(">?I")  # gRPC's length prefix: compressed flag, message length


class Abort(Exception):
    """Raised by :meth:`CallContext.abort`: the call ends with ``code`` and ``details``."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def grpclib_status(code: object) -> Status:
    """grpclib's status for an ``int``-valued code (our ``StatusCode``) or an enum member naming one (grpc's)."""
    if isinstance(code, int):
        return Status(code)
    return Status[str(getattr(code, "name", code))]


class CallContext:
    """What a servicer method gets as ``context``: the part of grpc.aio's ``ServicerContext`` we use."""

    __slots__ = ("_deadline", "code", "details")

    def __init__(self, deadline: Deadline | None) -> None:
        self._deadline = deadline
        #: Set by :meth:`set_code` / :meth:`set_details` (the generated base classes do, before raising
        #: ``NotImplementedError``); a non-OK code set by a method that then returns is what the caller gets.
        self.code: Status | None = None
        self.details: str | None = None

    def time_remaining(self) -> float | None:
        """Seconds until the caller's deadline; None when it set none."""
        return None if self._deadline is None else self._deadline.time_remaining()

    async def abort(self, code: int, details: str) -> NoReturn:
        """End the call with ``code`` and ``details`` (raises, as grpc.aio's does)."""
        raise Abort(code, details)

    def set_code(self, code: object) -> None:
        self.code = grpclib_status(code)

    def set_details(self, details: str) -> None:
        self.details = details


#: A servicer method, bound: ``await method(request, context)`` returns the response.
Method = Callable[[Any, CallContext], Awaitable[Any]]
#: Wraps every method of a service (the CSI interceptor): ``wrap(method_name, method)``.
Wrap = Callable[[str, Method], Method]


def message_classes(service: ServiceDescriptor, method: str) -> tuple[type[Message], type[Message]]:
    """The request and response classes of ``service``'s ``method``."""
    descriptor = service.methods_by_name[method]
    request: type[Message] = message_factory.GetMessageClass(descriptor.input_type)
    response: type[Message] = message_factory.GetMessageClass(descriptor.output_type)
    return request, response


def method_path(service: ServiceDescriptor, method: str) -> str:
    """The HTTP/2 path of a call: ``/csi.v1.Node/NodePublishVolume``."""
    return f"/{service.full_name}/{method}"


async def receive(stream: Stream[Any, Any], request_type: type[Message], limit: int = MAX_MESSAGE) -> Message:
    """The one request message of a unary call, refused before its body is read when longer than ``limit``.

    grpclib's own ``recv_message`` reads any length into memory; this reads the 5-byte prefix first (through the
    HTTP/2 stream grpclib keeps as ``Stream._stream``; grpclib is pinned, and a test sends an oversized request).
    """
    raw = stream._stream
    head = await raw.recv_data(_HEAD.size)
    if len(head) < _HEAD.size:
        raise GRPCError(Status.INTERNAL, "the call carried no request message")
    compressed, length = _HEAD.unpack(head)
    if compressed:
        raise GRPCError(Status.UNIMPLEMENTED, "compressed messages are not supported")
    if length > limit:
        raise GRPCError(Status.RESOURCE_EXHAUSTED, f"request of {length} bytes is larger than the limit ({limit})")
    body = await raw.recv_data(length)
    if len(body) < length:
        raise GRPCError(Status.INTERNAL, "the request message was cut short")
    try:
        return request_type.FromString(body)
    except DecodeError:
        raise GRPCError(Status.INTERNAL, "the request message could not be parsed") from None


async def _unimplemented(request: Any, context: CallContext) -> Any:
    raise NotImplementedError


class GrpcServer:
    """A grpclib server of unary services on a unix socket, with a draining :meth:`stop`."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._mapping: dict[str, GrpclibHandler] = {}
        self._max_message = max_message
        self._server: Server | None = None
        self._calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._cancelling = False

    def add(self, service: ServiceDescriptor, servicer: object, wrap: Wrap | None = None) -> None:
        """Serve every method of ``service`` from ``servicer``'s method of the same name (missing: UNIMPLEMENTED)."""
        for descriptor in service.methods:
            if descriptor.client_streaming or descriptor.server_streaming:
                raise ValueError(f"{service.full_name}.{descriptor.name} streams: only unary methods are served")
            method: Method = getattr(servicer, descriptor.name, _unimplemented)
            if wrap is not None:
                method = wrap(descriptor.name, method)
            request, response = message_classes(service, descriptor.name)
            self._mapping[method_path(service, descriptor.name)] = GrpclibHandler(
                self._unary(descriptor.name, method, request), Cardinality.UNARY_UNARY, request, response
            )

    def __mapping__(self) -> dict[str, GrpclibHandler]:
        """grpclib's handler table (its ``IServable`` protocol)."""
        return self._mapping

    def _unary(self, name: str, method: Method, request_type: type[Message]) -> Callable[[Stream[Any, Any]], Any]:
        async def handle(stream: Stream[Any, Any]) -> None:
            if self._draining:
                raise GRPCError(Status.UNAVAILABLE, "the server is stopping")
            self._calls += 1
            self._idle.clear()
            try:
                request = await receive(stream, request_type, self._max_message)
                context = CallContext(stream.deadline)
                try:
                    response = await method(request, context)
                except asyncio.CancelledError:
                    if not self._cancelling:
                        raise  # the caller cancelled, or its deadline passed: grpclib answers (or nobody listens)
                    # Cancelled by stop() after the grace period: answer, or the caller would wait for its deadline
                    # on a connection that stays open (grpclib's close() does not end connections).
                    raise GRPCError(Status.UNAVAILABLE, "the server stopped before the call finished") from None
                except Abort as abort:
                    raise GRPCError(grpclib_status(abort.code), abort.details) from None
                except NotImplementedError:
                    raise GRPCError(Status.UNIMPLEMENTED, f"{name} is not implemented") from None
                if context.code is not None and context.code is not Status.OK:
                    raise GRPCError(context.code, context.details)
                await stream.send_message(response)
            finally:
                self._calls -= 1
                if not self._calls:
                    self._idle.set()

        return handle

    async def start(self, path: str, sock: socket.socket | None = None) -> None:
        """Listen on the unix socket ``path`` (a file already there is replaced: the caller checks first), or
        accept on ``sock``, a socket already bound there and listening (connections waiting in its backlog are
        accepted from now on)."""
        if self._server is not None:
            raise RuntimeError("already started")
        server = Server([self])
        if sock is None:
            await server.start(path=path)
        else:
            await server.start(sock=sock)
        self._server = server

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls (UNAVAILABLE), let those in flight finish for up to ``grace`` seconds, cancel the rest,
        and close the socket. ``grace`` None: wait as long as they take."""
        self._draining = True
        server, self._server = self._server, None
        if server is None:
            return
        if self._calls:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        if self._calls:
            log.warning("cancelling %d calls still running after %.1fs", self._calls, grace or 0)
        self._cancelling = True
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), CANCEL_WAIT)
        except TimeoutError:
            log.warning("calls still running %.0fs after they were cancelled", CANCEL_WAIT)

    @property
    def calls(self) -> int:
        """Calls in flight."""
        return self._calls
