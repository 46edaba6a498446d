"""Issue 11, finding 14: at ``--log-level DEBUG`` no secret id, key, session token or signature reaches any
output of any process, while the credentials really travel.

The controller runs with the CVM instance role, its temporary keys and session token served by a stand-in
for the Tencent metadata service (the only part of the cloud besides CFS that this path talks to); the CFS
emulator requires exactly that token (``--session-token``), so a request that did not carry it would fail.
Everything each process writes, stdout and stderr, is then searched.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cfs_csi.client import CsiClient
from cfs_csi.volume.capacity import GIB
from tests.conftest import SECRET_ID, SECRET_KEY, start_driver, start_emulator, stop_gracefully, tencent_driver_flags
from tests.seed import SEED_PARAMS as SEED

ROLE = "cfs-csi-test-role"
#: A fresh token per run: nothing can pass by printing a constant.
SESSION_TOKEN = "tok" + secrets.token_urlsafe(96)
#: The TC3 signature (64 hex digits) after ``Signature=``, in any spelling a log line could use.
SIGNATURE = re.compile(r"Signature\W{0,3}[0-9a-f]{16,}", re.IGNORECASE)
HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


class _MetadataHandler(BaseHTTPRequestHandler):
    """``/latest/meta-data/cam/security-credentials/[<role>]`` as a CVM with an instance role answers it."""

    def do_GET(self) -> None:
        base = "/latest/meta-data/cam/security-credentials/"
        if self.path == base:
            body = ROLE.encode()
        elif self.path == base + ROLE:
            body = json.dumps({
                "TmpSecretId": SECRET_ID, "TmpSecretKey": SECRET_KEY, "Token": SESSION_TOKEN,
                "ExpiredTime": int(time.time()) + 3600, "Expiration": "", "Code": "Success",
            }).encode()  # fmt: skip
        else:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test's own output is not what is checked."""


@pytest.fixture
def metadata_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MetadataHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/latest/meta-data/"
    finally:
        server.shutdown()
        server.server_close()


def leaks(text: str) -> list[str]:
    """What of the credentials ``text`` shows (empty: nothing)."""
    found = [name for name, value in (("secret id", SECRET_ID), ("secret key", SECRET_KEY),
                                      ("session token", SESSION_TOKEN)) if value in text]  # fmt: skip
    found += [f"signature {m.group()!r}" for m in SIGNATURE.finditer(text)]
    found += [f"64-hex value {m.group()!r}" for m in HEX64.finditer(text)]
    return found


async def test_debug_logs_of_a_create_and_delete_with_a_session_token_hold_no_credential(
    mount_root: Path, metadata_url: str
) -> None:
    stray = [name for name in os.environ if name.startswith("TENCENTCLOUD_") or name.startswith("TKE_")]
    assert not stray, f"unset {stray}: the controller must take the instance role's keys"
    emulator = start_emulator(mount_root, "--log-level", "DEBUG", "--session-token", SESSION_TOKEN)
    driver = None
    try:
        # The controller is the component that holds cloud credentials (the node plugin never has any).
        driver = start_driver(mount_root, *tencent_driver_flags(emulator), "--metadata-url", metadata_url,
                              "--component", "controller", name="controller")  # fmt: skip
        async with CsiClient(driver.endpoint) as client:
            volume = await client.create_volume("pvc-hostile-logs", SEED, 10 * GIB)
            assert [fs["FileSystemId"] for fs in emulator.file_systems()] == [volume.volume_id]
            await client.delete_volume(volume.volume_id)
        assert emulator.file_systems() == []  # the signed, token-carrying calls really went through
    finally:
        if driver is not None:
            stop_gracefully(driver)
        emulator.stop()
    assert emulator.process.stdout is not None
    outputs = {
        "controller (stdout and stderr)": driver.log_text(),
        "emulator stderr": (mount_root / "emulator.log").read_text(errors="replace"),
        "emulator stdout": emulator.process.stdout.read(),
    }
    assert {name: leaks(text) for name, text in outputs.items()} == {name: [] for name in outputs}

    controller = outputs["controller (stdout and stderr)"]
    # The SDK's DEBUG dump of each request is there, with the credentials redacted, not dropped.
    lowered = controller.lower()
    assert "sendrequest" in lowered and "x-tc-action: createcfsfilesystem" in lowered
    assert "x-tc-token: [redacted]" in lowered and "authorization: [redacted]" in lowered
    assert "credentials from CVM instance role " + ROLE in controller
    assert "action=DeleteCfsFileSystem outcome=ok" in outputs["emulator stderr"]
