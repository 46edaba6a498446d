"""One place for what every RPC needs: a log line with secrets removed, and CSI error codes.

Servicers raise typed exceptions (:class:`~cfs_csi.driver.errors.CsiError`, ``InvalidArgument``,
``CloudError``, ``MountError``); this interceptor turns them into gRPC statuses. Anything else is a bug: it
is logged with its traceback here and the caller gets INTERNAL with no traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import text_format
from google.protobuf.message import Message

from cfs_csi.cloud.deadline import deadline_in
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.errors import CsiError, to_csi_error

log = logging.getLogger("cfs_csi.rpc")

#: Called every few seconds by liveness probes and sidecars: logged at debug level only.
_QUIET = frozenset(
    {
        "Probe",
        "GetPluginInfo",
        "GetPluginCapabilities",
        "NodeGetCapabilities",
        "ControllerGetCapabilities",
        "NodeGetVolumeStats",
    }
)


def redact(message: Message) -> Message:
    """A copy of ``message`` with every field marked ``csi_secret`` in csi.proto cleared, at any depth."""
    copy = type(message)()
    copy.CopyFrom(message)
    _clear_secrets(copy)
    return copy


def _clear_secrets(message: Message) -> None:
    for field, value in message.ListFields():
        if field.GetOptions().Extensions[csi_pb2.csi_secret]:  # type: ignore[index]
            message.ClearField(field.name)
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            if field.is_repeated:
                for item in value:
                    _clear_secrets(item)
            else:
                _clear_secrets(value)


def describe(message: Message) -> str:
    return text_format.MessageToString(redact(message), as_one_line=True)


Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class CsiInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        return grpc.unary_unary_rpc_method_handler(
            _wrap(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _wrap(method: str, inner: Handler) -> Handler:
    level = logging.DEBUG if method in _QUIET else logging.INFO

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.monotonic()
        try:
            if log.isEnabledFor(level):
                log.log(level, "%s request: %s", method, describe(request))
            with deadline_in(context.time_remaining()):
                response = await inner(request, context)
            if log.isEnabledFor(level):
                log.log(level, "%s done in %.3fs: %s", method, time.monotonic() - started, describe(response))
            return response
        except grpc.aio.AbortError:
            raise
        except NotImplementedError:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this driver")
        except Exception as exc:
            error = to_csi_error(exc)
            if error is None:
                log.exception("%s failed unexpectedly", method)
                error = CsiError(grpc.StatusCode.INTERNAL, f"{method} failed unexpectedly; see the plugin's log")
            log.warning(
                "%s failed after %.3fs: %s %s", method, time.monotonic() - started, error.code.name, error.message
            )
            await context.abort(error.code, error.message)

    return call
