"""The grpclib adapter (driver/grpcserve.py) with the CSI interceptor, over a real unix socket, called by grpcio.

What grpc.aio did for the servicers must still hold on the wire: every exception type answers its CSI code with
the message redacted and cut, the caller's deadline reaches the servicer, unknown and unimplemented methods answer
UNIMPLEMENTED, oversized requests are refused, and a stop drains calls in flight before it cancels them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from cfs_csi.cloud.deadline import remaining
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.csi import csi_pb2, csi_pb2_grpc
from cfs_csi.driver.errors import CsiError, StatusCode
from cfs_csi.driver.grpcserve import MAX_MESSAGE, CallContext, GrpcServer
from cfs_csi.driver.interceptor import MESSAGE_LIMIT, intercept
from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.volume.capacity import CapacityError
from cfs_csi.volume.errors import InvalidArgument

SERVICES = csi_pb2.DESCRIPTOR.services_by_name


class _Servicer:
    """A Controller whose DeleteVolume fails as its volume_id says (see ``FAILURES``), and a slow ListVolumes."""

    def __init__(self) -> None:
        self.remaining: list[float | None] = []
        self.backend_remaining: list[float] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False

    async def DeleteVolume(self, request: csi_pb2.DeleteVolumeRequest, context: CallContext) -> Any:
        self.remaining.append(context.time_remaining())
        make = FAILURES.get(request.volume_id)
        if make is not None:
            failure = make()
            if isinstance(failure, BaseException):
                raise failure
            await context.abort(*failure)
        return csi_pb2.DeleteVolumeResponse()

    async def ControllerGetCapabilities(self, request: Any, context: CallContext) -> Any:
        self.backend_remaining.append(remaining(-1.0))  # what the interceptor recorded for the backends
        return csi_pb2.ControllerGetCapabilitiesResponse()

    async def ListVolumes(self, request: csi_pb2.ListVolumesRequest, context: CallContext) -> Any:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return csi_pb2.ListVolumesResponse()

    async def ValidateVolumeCapabilities(self, request: Any, context: CallContext) -> Any:
        context.set_code(StatusCode.FAILED_PRECONDITION)  # set without raising: what the caller gets all the same
        context.set_details("set, not raised")
        return csi_pb2.ValidateVolumeCapabilitiesResponse()

    async def GetCapacity(self, request: Any, context: CallContext) -> Any:
        raise NotImplementedError


FAILURES: dict[str, Callable[[], BaseException | tuple[int, str]]] = {
    "csi": lambda: CsiError(StatusCode.ALREADY_EXISTS, "exists"),
    "csi-grpc-code": lambda: CsiError(grpc.StatusCode.ABORTED, "grpc's enum, matched by name"),
    "invalid": lambda: InvalidArgument("bad name"),
    "capacity": lambda: CapacityError("too big"),
    "cloud-pending": lambda: CloudError(ErrorKind.PENDING, "creating"),
    "cloud-denied": lambda: CloudError(ErrorKind.DENIED, "no"),
    "mount-timeout": lambda: MountError(MountErrorKind.TIMEOUT, "hung"),
    "mount-stale": lambda: MountError(MountErrorKind.STALE, "stale"),
    "bug": lambda: ZeroDivisionError("division by zero in a servicer"),
    "abort": lambda: (StatusCode.PERMISSION_DENIED, "aborted by the servicer"),
    "long": lambda: CsiError(StatusCode.INVALID_ARGUMENT, "x" * 100_000),
    "secret": lambda: CloudError(ErrorKind.UNAUTHENTICATED, "Signature=" + "ab" * 32),
}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[_Servicer, GrpcServer, str]]:
    servicer = _Servicer()
    server = GrpcServer()
    server.add(SERVICES["Controller"], servicer, intercept)
    await server.start(str(tmp_path / "csi.sock"))
    try:
        yield servicer, server, f"unix://{tmp_path / 'csi.sock'}"
    finally:
        servicer.release.set()
        await server.stop(None)


async def _error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


@pytest.mark.parametrize(
    ("volume_id", "code", "in_details"),
    [
        ("csi", grpc.StatusCode.ALREADY_EXISTS, "exists"),
        ("csi-grpc-code", grpc.StatusCode.ABORTED, "matched by name"),
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT, "bad name"),
        ("capacity", grpc.StatusCode.OUT_OF_RANGE, "too big"),
        ("cloud-pending", grpc.StatusCode.ABORTED, "creating"),
        ("cloud-denied", grpc.StatusCode.PERMISSION_DENIED, "no"),
        ("mount-timeout", grpc.StatusCode.DEADLINE_EXCEEDED, "hung"),
        ("mount-stale", grpc.StatusCode.INTERNAL, "stale"),
        ("bug", grpc.StatusCode.INTERNAL, "DeleteVolume failed unexpectedly; see the plugin's log"),
        ("abort", grpc.StatusCode.PERMISSION_DENIED, "aborted by the servicer"),
    ],
)
async def test_each_failure_answers_its_code(
    served: tuple[_Servicer, GrpcServer, str], volume_id: str, code: grpc.StatusCode, in_details: str
) -> None:
    _, _, endpoint = served
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = csi_pb2_grpc.ControllerStub(channel)
        error = await _error(stub.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id), timeout=10))
    assert error.code() == code
    assert in_details in (error.details() or "")
    assert "Traceback" not in (error.details() or "") and "ZeroDivisionError" not in (error.details() or "")


async def test_messages_are_cut_and_redacted_on_the_wire(served: tuple[_Servicer, GrpcServer, str]) -> None:
    _, _, endpoint = served
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = csi_pb2_grpc.ControllerStub(channel)
        long = await _error(stub.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="long"), timeout=10))
        secret = await _error(stub.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="secret"), timeout=10))
    assert long.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert MESSAGE_LIMIT // 2 < len(long.details() or "") <= MESSAGE_LIMIT + 40
    assert "100000" in (long.details() or "")  # the cut says how long the message was
    assert secret.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "ab" * 32 not in (secret.details() or "")


async def test_the_callers_deadline_reaches_the_servicer_and_the_backends(
    served: tuple[_Servicer, GrpcServer, str],
) -> None:
    servicer, _, endpoint = served
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = csi_pb2_grpc.ControllerStub(channel)
        await stub.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="ok"), timeout=30)
        await stub.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="ok"))
        await stub.ControllerGetCapabilities(csi_pb2.ControllerGetCapabilitiesRequest(), timeout=9)
        await stub.ControllerGetCapabilities(csi_pb2.ControllerGetCapabilitiesRequest())
    first, second = servicer.remaining
    assert first is not None and 20 < first <= 30.5  # the header rounds up a little
    assert second is None
    with_deadline, without = servicer.backend_remaining
    assert 0 < with_deadline <= 9.5
    assert without == -1.0  # no deadline: the backends' default


async def test_unimplemented_unknown_and_set_code(served: tuple[_Servicer, GrpcServer, str]) -> None:
    _, _, endpoint = served
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = csi_pb2_grpc.ControllerStub(channel)
        missing = await _error(stub.CreateSnapshot(csi_pb2.CreateSnapshotRequest(), timeout=10))
        raised = await _error(stub.GetCapacity(csi_pb2.GetCapacityRequest(), timeout=10))
        unknown = await _error(
            csi_pb2_grpc.NodeStub(channel).NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=10)
        )  # a service this server does not serve
        set_code = await _error(
            stub.ValidateVolumeCapabilities(csi_pb2.ValidateVolumeCapabilitiesRequest(), timeout=10)
        )
    assert missing.code() == grpc.StatusCode.UNIMPLEMENTED
    assert missing.details() == "CreateSnapshot is not implemented by this driver"
    assert raised.code() == grpc.StatusCode.UNIMPLEMENTED
    assert raised.details() == "GetCapacity is not implemented by this driver"
    assert unknown.code() == grpc.StatusCode.UNIMPLEMENTED
    assert set_code.code() == grpc.StatusCode.FAILED_PRECONDITION and set_code.details() == "set, not raised"


async def test_an_oversized_request_is_refused_and_the_server_goes_on(
    served: tuple[_Servicer, GrpcServer, str],
) -> None:
    _, _, endpoint = served
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = csi_pb2_grpc.ControllerStub(channel)
        huge = csi_pb2.DeleteVolumeRequest(volume_id="v" * (MAX_MESSAGE + 1))
        error = await _error(stub.DeleteVolume(huge, timeout=30))
        fitting = csi_pb2.DeleteVolumeRequest(volume_id="v" * (MAX_MESSAGE - 16))
        await stub.DeleteVolume(fitting, timeout=30)
        await stub.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="ok"), timeout=10)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(MAX_MESSAGE) in (error.details() or "")


async def test_stop_lets_a_call_in_flight_finish_and_refuses_new_ones(
    served: tuple[_Servicer, GrpcServer, str],
) -> None:
    servicer, server, endpoint = served
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = csi_pb2_grpc.ControllerStub(channel)
        slow = asyncio.ensure_future(stub.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=30))
        await asyncio.wait_for(servicer.started.wait(), 10)
        stopping = asyncio.ensure_future(server.stop(grace=20))
        await asyncio.sleep(0.2)
        refused = await _error(stub.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="ok"), timeout=10))
        assert not stopping.done()  # still draining: the slow call is in flight
        servicer.release.set()
        await slow
        await asyncio.wait_for(stopping, 10)
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert not servicer.cancelled


async def test_stop_cancels_what_is_still_running_after_the_grace_period(
    served: tuple[_Servicer, GrpcServer, str],
) -> None:
    servicer, server, endpoint = served
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = csi_pb2_grpc.ControllerStub(channel)
        slow = asyncio.ensure_future(stub.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=30))
        await asyncio.wait_for(servicer.started.wait(), 10)
        await asyncio.wait_for(server.stop(grace=0.3), 15)
        assert servicer.cancelled
        error = await _error(slow)
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # at once, not at the caller's deadline


@pytest.mark.parametrize(
    ("method", "level"),
    [("DeleteVolume", logging.INFO), ("ControllerGetCapabilities", logging.DEBUG)],
)
async def test_per_call_logs_keep_their_levels(
    served: tuple[_Servicer, GrpcServer, str], caplog: pytest.LogCaptureFixture, method: str, level: int
) -> None:
    _, _, endpoint = served
    caplog.set_level(logging.DEBUG, logger="cfs_csi.rpc")
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = csi_pb2_grpc.ControllerStub(channel)
        if method == "DeleteVolume":
            await stub.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="ok"), timeout=10)
        else:
            await stub.ControllerGetCapabilities(csi_pb2.ControllerGetCapabilitiesRequest(), timeout=10)
        await _error(stub.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="csi"), timeout=10))
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "cfs_csi.rpc"]
    # Every request and response at DEBUG; a call that changes something also logs one INFO line (its decision).
    assert (logging.DEBUG, f"{method} request: " + ('volume_id: "ok"' if method == "DeleteVolume" else "")) in lines
    assert any(lvl == logging.DEBUG and msg.startswith(f"{method} done in ") for lvl, msg in lines)
    info = [msg for lvl, msg in lines if lvl == logging.INFO]
    assert [msg.startswith("DeleteVolume ok: done in ") for msg in info] == ([True] if level == logging.INFO else [])
    assert any(lvl == logging.WARNING and msg.startswith("DeleteVolume failed after ") for lvl, msg in lines)


def test_streaming_methods_are_refused_when_the_server_is_built() -> None:
    from google.protobuf import descriptor_pb2, descriptor_pool

    proto = descriptor_pb2.FileDescriptorProto(name="streams_test.proto", package="streamstest")
    proto.message_type.add(name="M")
    service = proto.service.add(name="S")
    service.method.add(name="Watch", input_type=".streamstest.M", output_type=".streamstest.M", server_streaming=True)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    with pytest.raises(ValueError, match="only unary"):
        GrpcServer().add(pool.FindServiceByName("streamstest.S"), object())


# -- no grpcio in the node ------------------------------------------------------------------------------------

_GRPC_MODULES = "sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.'))"


def test_the_serving_modules_import_no_grpcio() -> None:
    """Everything the node plugin serves with (CSI server, interceptor, errors, health, identity, registration)
    loads without grpcio."""
    code = (
        "import cfs_csi.driver.server, cfs_csi.driver.grpcserve, cfs_csi.driver.interceptor, cfs_csi.driver.errors,"
        " cfs_csi.driver.health, cfs_csi.driver.identity, cfs_csi.registration.server\n"
        f"import sys; print({_GRPC_MODULES})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_the_node_process_imports_no_grpcio(tmp_path: Path) -> None:
    """``serve --component=node`` as the chart runs it (registration and health port on), started and stopped."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print({_GRPC_MODULES}))\n"
        "from cfs_csi import cli\n"
        f"sys.exit(cli.main(['serve', '--component=node', '--mounter=nfs', '--endpoint=unix://{tmp_path}/csi.sock',"
        f" '--state-dir={tmp_path}/state', '--kubelet-dir={tmp_path}/kubelet', '--health-port={port}']))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            if (tmp_path / "csi.sock").exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        started = (tmp_path / "csi.sock").exists()
    finally:
        process.terminate()
        out, err = process.communicate(timeout=60)
    assert started and process.returncode == 0, err
    assert out.strip().splitlines()[-1] == "[]"
