"""``--log-format json`` (issue 17): every line a component writes is one JSON object, parsed here line by line.

The controller runs for real (tencent backend against the CFS emulator, gRPC over a unix socket) with a cloud
secret in its environment; after a CreateVolume, a failing call and a DeleteVolume its whole stderr must be JSON
objects with time, level, component, logger and message, the decision lines must name the volume in a field of
their own, and the secret must appear nowhere. The formatter's table of fields is tested apart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from cfs_csi import logsetup
from cfs_csi.cli import component_name
from cfs_csi.client import CsiClient
from cfs_csi.csi import csi_pb2
from cfs_csi.volume.capacity import GIB
from tests.conftest import CLOUD_ENV, SECRET_KEY, start_emulator, tencent_driver_flags
from tests.seed import SEED_PARAMS

REQUIRED = {"time", "level", "component", "logger", "message"}


def parsed(text: str) -> list[dict[str, object]]:
    """Every line of ``text`` as a JSON object (fails on the first line that is not one)."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            pytest.fail(f"line {number} is not JSON ({exc}): {line!r}")
        assert isinstance(value, dict), f"line {number} is not an object: {line!r}"
        assert value.keys() >= REQUIRED, f"line {number} lacks {REQUIRED - value.keys()}: {line!r}"
        lines.append(value)
    return lines


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **CLOUD_ENV})


async def test_the_controller_writes_only_json_lines_naming_the_volume(tmp_path: Path) -> None:
    emulator = start_emulator(tmp_path)
    sock = tmp_path / "controller.sock"
    log = tmp_path / "controller.log"
    argv = [
        sys.executable, "-m", "cfs_csi", "--log-level", "INFO", "--log-format", "json", "serve",
        "--component", "controller", "--endpoint", f"unix://{sock}", *tencent_driver_flags(emulator),
    ]  # fmt: skip
    process = spawn(argv, log)
    try:
        async with CsiClient(f"unix://{sock}") as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    await client.identity.Probe(csi_pb2.ProbeRequest(), timeout=5)
                    break
                except grpc.RpcError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"controller did not start:\n{log.read_text()}")
                    await asyncio.sleep(0.1)
            volume = await client.create_volume("pvc-json-logs", SEED_PARAMS, 10 * GIB)
            with pytest.raises(grpc.RpcError):
                await client.create_volume("pvc-json-bad", {**SEED_PARAMS, "storagetype": "XX"}, 10 * GIB)
            await client.delete_volume(volume.volume_id)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        emulator.stop()
    text = log.read_text()
    lines = parsed(text)
    assert SECRET_KEY not in text
    assert {line["component"] for line in lines} == {"cfs-csi-controller"}
    assert {line["level"] for line in lines} <= {"INFO", "WARNING"}
    by_volume = {(line["level"], line.get("volume")) for line in lines}
    assert ("INFO", "pvc-json-logs") in by_volume  # CreateVolume's decision
    assert ("INFO", volume.volume_id) in by_volume  # DeleteVolume's
    assert ("WARNING", "pvc-json-bad") in by_volume  # the refused call


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, {}),
        ({"volume": "cfs-1"}, {"volume": "cfs-1"}),
        ({"claim": "ns/c", "tcfs": ""}, {"claim": "ns/c"}),  # an empty subject is left out
        ({"target": 7}, {"target": "7"}),
    ],
)
def test_json_lines_carry_the_subject_fields_the_record_has(extra: dict[str, object], expected: dict[str, str]) -> None:
    record = logging.LogRecord("cfs_csi.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    record.__dict__.update(extra)
    line = json.loads(logsetup.JsonFormatter("cfs-csi-node").format(record))
    assert line.pop("time").endswith("Z")
    assert line == {"level": "WARNING", "component": "cfs-csi-node", "logger": "cfs_csi.x", "message": "hello world",
                    **expected}  # fmt: skip


def test_an_exception_is_one_json_field_not_extra_lines() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("cfs_csi.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = logsetup.JsonFormatter("c").format(record)
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exception"]


@pytest.mark.parametrize(
    ("command", "component", "expected"),
    [
        ("serve", "controller", "cfs-csi-controller"),
        ("serve", "node", "cfs-csi-node"),
        ("serve", "all", "cfs-csi"),
        ("operator", None, "cfs-csi-operator"),
        ("subdir-provisioner", None, "cfs-csi-subdir-provisioner"),
        ("emulator", None, "cfs-emulator"),
        ("client", None, "cfs-csi"),
    ],
)
def test_component_names(command: str, component: str | None, expected: str) -> None:
    assert component_name(command, component) == expected


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logsetup.formatter("xml", "c")
