"""One place for what every RPC needs: its log lines, with secrets removed and long values cut, and CSI error codes.

At INFO a call that changes something logs one line saying what it decided (:func:`decision`): the volume or
snapshot it was about, what it made, and its time split into the cloud's and the driver's own. Reads, probes and
the node's per-pod calls log nothing at INFO. The whole request and response (every ``csi_secret`` field cleared)
are logged at DEBUG only: printing them with protobuf's ``text_format`` cost the controller about 0.35 ms of CPU
per CreateVolume, more than its own validation and the cloud client's signing together (issue 15). A failure is
a WARNING whatever the method.

Every string a caller sends is logged at most :data:`LOG_VALUE_LIMIT` characters long (the subject of a decision
line, :data:`~cfs_csi.volume.names.QUOTE_LIMIT`), with a marker giving its full length: a 1 MB name must not
become a 1 MB log line (or two), whatever RPC it arrives in.

Every call, whatever its outcome, is counted once in the metrics (:func:`cfs_csi.metrics.record.rpc`: method,
gRPC status name, time; a call cancelled by its caller or by the drain counts as ``CANCELLED``): one place for
the controller and the node.

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

from cfs_csi.cloud.deadline import Call, deadline_in
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.errors import CsiError, StatusCode, to_csi_error
from cfs_csi.driver.grpcserve import Abort, CallContext, Method, grpclib_status
from cfs_csi.logsetup import redact as redact_text
from cfs_csi.metrics import record as metrics
from cfs_csi.volume.names import cut

log = logging.getLogger("cfs_csi.rpc")

#: Longest value of a request or response field, or of an error message, that a log line carries.
LOG_VALUE_LIMIT = 256

#: Longest error message sent back to the caller.
MESSAGE_LIMIT = 2048

#: No decision line at INFO: called every few seconds by liveness probes and sidecars, or by the kubelet for
#: every pod that starts or stops (a node plugin's log line per call costs more than its work; issue 15), or
#: reads that change nothing. Their request and response are logged at DEBUG like every call's.
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
        "ListVolumes",
        "ListSnapshots",
        "GetCapacity",
        "ValidateVolumeCapabilities",
        "ControllerGetVolume",
    }
)

#: Request fields naming what a call is about, the first one set wins (CreateVolume's ``name``, DeleteVolume's
#: ``volume_id``, DeleteSnapshot's ``snapshot_id``).
_SUBJECT_FIELDS = ("name", "volume_id", "snapshot_id")

#: Characters a subject may show bare in a log line; anything else is shown quoted and escaped (``repr``), so a
#: hostile id cannot start a new log line or hide in spaces.
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-:/")


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


def shown(value: str) -> str:
    """An untrusted value fit for a log line: cut (:func:`~cfs_csi.volume.names.cut`), bare when it is made only
    of name characters, else quoted with everything but printable ASCII escaped."""
    short = cut(value)
    return short if short and all(char in _PLAIN for char in short) else ascii(short)


def subject(request: Message) -> str:
    """What a request is about (its name, volume id or snapshot id), fit for a log line; ``""`` if none."""
    fields = request.DESCRIPTOR.fields_by_name
    for name in _SUBJECT_FIELDS:
        if name in fields:
            value = getattr(request, name)
            if value:
                return shown(value)
    return ""


def outcome(response: Message) -> str:
    """What a successful call made or found: the volume or snapshot and its size, or ``"done"``."""
    fields = response.DESCRIPTOR.fields_by_name
    if "volume" in fields and response.HasField("volume"):
        volume = getattr(response, "volume")  # noqa: B009 - a field of some responses only
        return f"volume {shown(volume.volume_id)}, {volume.capacity_bytes} bytes"
    if "snapshot" in fields and response.HasField("snapshot"):
        snapshot = getattr(response, "snapshot")  # noqa: B009
        return f"snapshot {shown(snapshot.snapshot_id)}, {snapshot.size_bytes} bytes, ready {snapshot.ready_to_use}"
    if "capacity_bytes" in fields:
        return f"{getattr(response, 'capacity_bytes')} bytes"  # noqa: B009
    return "done"


def timing(seconds: float, call: Call) -> str:
    """A call's time, and how much of it went to the cloud (what is left is the driver's own)."""
    if not call.cloud_calls:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.1f} ms (cloud {call.cloud_seconds * 1000:.1f} ms in {call.cloud_calls} calls)"


def decision(method: str, request: Message, response: Message, seconds: float, call: Call) -> str:
    """The INFO line of a successful call that changes something (pure): what it was about, what came of it, and
    its time. No request field but the subject is read, so no secret and no parameter can reach it."""
    about = subject(request)
    return f"{method}{' ' + about if about else ''}: {outcome(response)} in {timing(seconds, call)}"


def intercept(method: str, inner: Method) -> Method:
    """``inner`` (a servicer's method named ``method``) with its calls logged and its errors turned into codes."""
    decides = method not in _QUIET

    async def call(request: Any, context: CallContext) -> Any:
        started = time.monotonic()
        record = Call()
        code = "CANCELLED"  # unless the call gets further: cancelled by its caller or by the drain
        try:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s request: %s", method, describe(request))
            with deadline_in(context.time_remaining()) as record:
                response = await inner(request, context)
            code = "OK" if context.code is None else context.code.name
            elapsed = time.monotonic() - started
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s done in %.1f ms: %s", method, elapsed * 1000, describe(response))
            if decides and log.isEnabledFor(logging.INFO):
                line = decision(method, request, response, elapsed, record)
                log.info("%s", line, extra={"volume": subject(request)})
            return response
        except Abort as abort:
            code = grpclib_status(abort.code).name
            raise
        except NotImplementedError:
            code = StatusCode.UNIMPLEMENTED.name
            await context.abort(StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this driver")
        except Exception as exc:
            error = to_csi_error(exc)
            if error is None:
                log.exception("%s failed unexpectedly", method)
                error = CsiError(StatusCode.INTERNAL, f"{method} failed unexpectedly; see the plugin's log")
            code = error.code.name
            about = subject(request)
            log.warning(
                "%s failed after %s%s: %s %s",
                method,
                timing(time.monotonic() - started, record),
                f" on {about}" if about else "",
                error.code.name,
                cut(error.message, 4 * LOG_VALUE_LIMIT),
                extra={"volume": about},
            )
            # Cut as well: a message quoting a huge value would pass gRPC's metadata limit (16 KiB), and the
            # caller would get RESOURCE_EXHAUSTED from its own library instead of our code and reason.
            # Redacted too: the message becomes a Kubernetes Event (csi-provisioner, kubelet) that namespaced
            # users read, and a cloud error may quote a credential; the log line is redacted by logsetup.
            await context.abort(error.code, redact_text(cut(error.message, MESSAGE_LIMIT)))
        finally:
            metrics.rpc(method, code, time.monotonic() - started)

    return call
