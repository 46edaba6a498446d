"""One place for what every RPC needs: a log line with secrets removed and long values cut, and CSI error codes.

Every string a caller sends is logged at most :data:`LOG_VALUE_LIMIT` characters long, with a marker giving
its full length: a 1 MB name must not become a 1 MB log line (or two), whatever RPC it arrives in.

Servicers raise typed exceptions (:class:`~cfs_csi.driver.errors.CsiError`, ``InvalidArgument``,
``CloudError``, ``MountError``); :func:`intercept` turns them into gRPC statuses. Anything else is a bug: it
is logged with its traceback here and the caller gets INTERNAL with no traceback.

:func:`intercept` wraps each servicer method where the server is built
(:meth:`cfs_csi.driver.grpcserve.GrpcServer.add`), so it needs no gRPC library of its own.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from cfs_csi.cloud.deadline import deadline_in
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.errors import CsiError, StatusCode, to_csi_error
from cfs_csi.driver.grpcserve import Abort, CallContext, Method
from cfs_csi.logsetup import redact as redact_text
from cfs_csi.volume.names import cut

log = logging.getLogger("cfs_csi.rpc")

#: Longest value of a request or response field, or of an error message, that a log line carries.
LOG_VALUE_LIMIT = 256

#: Longest error message sent back to the caller.
MESSAGE_LIMIT = 2048

#: Logged at debug level only: called every few seconds by liveness probes and sidecars, or by the kubelet for
#: every pod that starts or stops (a node plugin's log line per call costs more than its work; issue 15). A
#: failure is logged at warning level whatever the method.
_QUIET = frozenset(
    {
        "Probe",
        "GetPluginInfo",
        "GetPluginCapabilities",
        "NodeGetCapabilities",
        "ControllerGetCapabilities",
        "NodeGetVolumeStats",
        "NodeGetInfo",
        "NodePublishVolume",
        "NodeUnpublishVolume",
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


def _cut_value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_STRING:
        return cut(value, LOG_VALUE_LIMIT)
    if field.type == FieldDescriptor.TYPE_BYTES and len(value) > LOG_VALUE_LIMIT:
        return value[:LOG_VALUE_LIMIT] + f"...[{len(value)} bytes]".encode()
    return value


def _cut_long_values(message: Message) -> None:
    """Shorten, in place, every string and bytes value (map keys and values too) past the log limit."""
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            for key in list(value):
                item = value[key]
                if value_field.message_type is not None:
                    _cut_long_values(item)
                    continue
                short = _cut_value(value_field, item)
                new_key = _cut_value(key_field, key)
                if new_key != key or short != item:
                    del value[key]
                    value[new_key] = short
        elif field.message_type is not None:
            for item in value if field.is_repeated else [value]:
                _cut_long_values(item)
        elif field.is_repeated:
            value[:] = [_cut_value(field, item) for item in value]
        else:
            setattr(message, field.name, _cut_value(field, value))


def describe(message: Message) -> str:
    """The message on one line, with secrets removed and long values cut (for log lines)."""
    copy = redact(message)
    _cut_long_values(copy)
    return text_format.MessageToString(copy, as_one_line=True)


def intercept(method: str, inner: Method) -> Method:
    """``inner`` (a servicer's method named ``method``) with its calls logged and its errors turned into codes."""
    level = logging.DEBUG if method in _QUIET else logging.INFO

    async def call(request: Any, context: CallContext) -> Any:
        started = time.monotonic()
        try:
            if log.isEnabledFor(level):
                log.log(level, "%s request: %s", method, describe(request))
            with deadline_in(context.time_remaining()):
                response = await inner(request, context)
            if log.isEnabledFor(level):
                log.log(level, "%s done in %.3fs: %s", method, time.monotonic() - started, describe(response))
            return response
        except Abort:
            raise
        except NotImplementedError:
            await context.abort(StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this driver")
        except Exception as exc:
            error = to_csi_error(exc)
            if error is None:
                log.exception("%s failed unexpectedly", method)
                error = CsiError(StatusCode.INTERNAL, f"{method} failed unexpectedly; see the plugin's log")
            log.warning(
                "%s failed after %.3fs: %s %s",
                method,
                time.monotonic() - started,
                error.code.name,
                cut(error.message, 4 * LOG_VALUE_LIMIT),
            )
            # Cut as well: a message quoting a huge value would pass gRPC's metadata limit (16 KiB), and the
            # caller would get RESOURCE_EXHAUSTED from its own library instead of our code and reason.
            # Redacted too: the message becomes a Kubernetes Event (csi-provisioner, kubelet) that namespaced
            # users read, and a cloud error may quote a credential; the log line is redacted by logsetup.
            await context.abort(error.code, redact_text(cut(error.message, MESSAGE_LIMIT)))

    return call
