"""The CSI conformance suite (kubernetes-csi/csi-test ``csi-sanity``) against ``cfs-csi serve --backend local``.

csi-sanity skips a test itself when the driver does not advertise the capability it needs. Every skip it
reports must be listed below with the reason it does not apply; any other skip fails this test, so a
capability that silently disappears is noticed.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CLOUD_ENV, Driver, start_driver, start_emulator, tencent_driver_flags

NO_GROUP_SNAPSHOTS = "no group snapshots: CFS snapshots one file system at a time, with no consistency group"
NO_ATTACH = "NFS needs no attach step: the CSIDriver says attachRequired: false, so no ControllerPublish"
NO_STAGE = "an NFS mount has no device to stage; every publish mounts directly"
NEWER_SPEC = (
    "health RPCs added to CSI after the version we implement; health is reported as VolumeCondition by "
    "NodeGetVolumeStats, ListVolumes and ControllerGetVolume"
)

#: csi-sanity's skip message -> why it does not apply to this driver.
ALLOWED_SKIPS = {
    "GetSnapshot not supported": (
        "GetSnapshot was added to CSI after the version we implement; ListSnapshots by snapshot_id answers it"
    ),
    "SNAPSHOT_ACCESSIBILITY_CONSTRAINTS not supported": (
        "added to CSI after the version we implement; CFS volumes and snapshots carry no topology"
    ),
    "GroupControllerService not supported": NO_GROUP_SNAPSHOTS + " (group snapshots are the only group RPCs)",
    "ControllerModifyVolume not supported": "no VolumeAttributesClass: a CFS file system's parameters are fixed",
    "Modify volume not supported": "no VolumeAttributesClass: a CFS file system's parameters are fixed",
    "Modify Volume not supported": "no VolumeAttributesClass: a CFS file system's parameters are fixed",
    "GetCapacity not supported": "CFS is elastic: there is no pool whose free capacity could be reported",
    "ControllerPublishVolume not supported": NO_ATTACH,
    "ControllerUnpublishVolume not supported": NO_ATTACH,
    "Controller Publish, UnpublishVolume not supported": NO_ATTACH,
    "NodeStageVolume not supported": NO_STAGE,
    "NodeUnstageVolume not supported": NO_STAGE,
    "ControllerGetVolumeHealth not supported": NEWER_SPEC,
    "ControllerListVolumeHealth not supported": NEWER_SPEC,
    "NodeGetVolumeHealth not supported": NEWER_SPEC,
    "NodeGetStorageHealth not supported": NEWER_SPEC,
}


def csi_sanity() -> str:
    path = os.environ.get("CSI_SANITY", "")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("csi-sanity is not installed: run the tests through scripts/test.sh (it builds and caches it)")
    return path


def run_sanity(
    driver: Driver, work: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[str, list[dict[str, object]]]:
    report = work / "sanity-report.json"
    argv = [
        csi_sanity(),
        f"--csi.endpoint={driver.endpoint}",
        # Below the kubelet's pods directory: the node plugin refuses targets anywhere else.
        f"--csi.mountdir={driver.pods / 'sanity-mnt'}",
        f"--csi.stagingdir={driver.pods / 'sanity-stage'}",
        "--csi.testvolumesize=10737418240",
        f"--ginkgo.json-report={report}",
        "--ginkgo.no-color",
        *extra,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    output = result.stdout + result.stderr
    summary = [line for line in output.splitlines() if "Passed" in line and "Failed" in line]
    with capsys.disabled():
        print("\ncsi-sanity:", summary[-1] if summary else "(no summary line)")
    specs = [spec for suite in json.loads(report.read_text()) for spec in suite["SpecReports"]]
    assert result.returncode == 0, output[-20000:] + "\n--- driver log ---\n" + driver.log_text()[-5000:]
    return output, specs


@pytest.fixture(params=["local", "tencent"])
def any_driver(request: pytest.FixtureRequest, mount_root: Path) -> Iterator[tuple[Driver, list[str]]]:
    """The driver on the local backend, or on the tencent backend against the CFS emulator."""
    if request.param == "local":
        local = start_driver(mount_root)
        try:
            yield local, []
        finally:
            local.stop()
        return
    emulator = start_emulator(mount_root, "--create-delay", "0.1")
    params = mount_root / "params.yaml"
    params.write_text("vpcid: vpc-oilua6pt\nsubnetid: subnet-rtwb42lu\nzone: ap-guangzhou-3\n")
    driver = start_driver(
        mount_root, *tencent_driver_flags(emulator), "--cloud-poll-interval", "0.1", env=CLOUD_ENV, name="tencent"
    )
    try:
        yield driver, [f"--csi.testvolumeparameters={params}"]
    finally:
        driver.stop()
        leftovers = emulator.file_systems()
        emulator.stop()
        assert leftovers == [], "csi-sanity left file systems in the cloud"


@pytest.mark.sanity
def test_csi_sanity_passes_with_only_listed_skips(
    any_driver: tuple[Driver, list[str]], mount_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    driver, extra = any_driver
    # Secrets on every call that carries them: none may show up in the driver's (debug-level) log.
    secrets = mount_root / "secrets.yaml"
    kinds = ("CreateVolumeSecret", "DeleteVolumeSecret", "ControllerValidateVolumeCapabilitiesSecret",
             "NodePublishVolumeSecret")  # fmt: skip
    secrets.write_text("".join(f"{kind}:\n  secretKey: S3CR3T-{kind}\n" for kind in kinds))
    _, specs = run_sanity(driver, mount_root, capsys, f"--csi.secrets={secrets}", *extra)
    passed = [spec for spec in specs if spec["State"] == "passed"]
    skipped = [spec for spec in specs if spec["State"] == "skipped"]
    unexpected = sorted(
        {
            f"{spec['LeafNodeText']}: {_skip_message(spec)}"
            for spec in skipped
            if _skip_message(spec) not in ALLOWED_SKIPS
        }
    )
    assert unexpected == [], "csi-sanity skipped tests that apply to this driver:\n" + "\n".join(unexpected)
    assert len(passed) >= 50, f"only {len(passed)} csi-sanity tests passed"
    # The snapshot and expansion specs ran and passed (issue 16), not merely "not skipped".
    passed_text = [_full_text(spec) for spec in passed]
    assert sum("Snapshot" in text for text in passed_text) >= 15, passed_text
    assert sum("ExpandVolume" in text for text in passed_text) >= 3, passed_text
    # And the clone specs (a volume from a volume, through a temporary snapshot on tencent).
    assert sum("source volume" in text for text in passed_text) >= 2, passed_text
    log = driver.log_text()
    assert "CreateVolume request" in log and "NodePublishVolume request" in log
    assert "S3CR3T" not in log


def _skip_message(spec: dict[str, object]) -> str:
    failure = spec.get("Failure")
    return str(failure.get("Message", "")) if isinstance(failure, dict) else ""


def _full_text(spec: dict[str, object]) -> str:
    containers = spec.get("ContainerHierarchyTexts")
    return " ".join([*(map(str, containers) if isinstance(containers, list) else []), str(spec.get("LeafNodeText"))])
