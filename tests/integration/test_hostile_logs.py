"""Issue 11, finding 14: at ``--log-level DEBUG`` no secret id, key, session token or signature reaches any
output of any process, while the credentials really travel.

The controller runs with the CVM instance role, its temporary keys and session token served by a stand-in
for the Tencent metadata service (the only part of the cloud besides CFS that this path talks to); the CFS
emulator requires exactly that token (``--session-token``), so a request that did not carry it would fail.
Everything each process writes, stdout and stderr, is then searched.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from cfs_csi.client import CsiClient
from cfs_csi.volume.capacity import GIB
from tests.conftest import SECRET_ID, SECRET_KEY, start_driver, start_emulator, stop_gracefully, tencent_driver_flags
from tests.cvm_metadata import instance_role, leaks
from tests.seed import SEED_PARAMS as SEED

ROLE = "cfs-csi-test-role"
#: A fresh token per run: nothing can pass by printing a constant.
SESSION_TOKEN = "tok" + secrets.token_urlsafe(96)
CREDENTIALS = {"secret id": SECRET_ID, "secret key": SECRET_KEY, "session token": SESSION_TOKEN}


@pytest.fixture
def metadata_url() -> Iterator[str]:
    with instance_role(ROLE, SECRET_ID, SECRET_KEY, SESSION_TOKEN) as url:
        yield url


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
    assert {name: leaks(text, CREDENTIALS) for name, text in outputs.items()} == {name: [] for name in outputs}

    controller = outputs["controller (stdout and stderr)"]
    # The SDK's DEBUG dump of each request is there, with the credentials redacted, not dropped.
    lowered = controller.lower()
    assert "sendrequest" in lowered and "x-tc-action: createcfsfilesystem" in lowered
    assert "x-tc-token: [redacted]" in lowered and "authorization: [redacted]" in lowered
    assert "credentials from CVM instance role " + ROLE in controller
    assert "action=DeleteCfsFileSystem outcome=ok" in outputs["emulator stderr"]
