"""``/healthz`` of the operator and of a sub-directory provisioner on the real control plane (issue 17 item 4), and
the provisioner's JSON log (item 2).

Both answer 200 once their Lease loop and watches run; the decision that a stuck loop fails it is table-tested in
tests/unit/test_kube_liveness.py (a hung watch cannot be made here without stopping the shared API server).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx

from cfs_csi.devcluster.cluster import ControlPlane, free_port
from tests.e2e.conftest import Kube, Operator, wait_for
from tests.e2e.test_operator import claim
from tests.e2e.test_subdir import Share, _bound


def healthy(port: int) -> bool:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.text == "ok\n"


def test_operator_and_provisioner_report_healthy_loops(
    kube: Kube, operator: Operator, control_plane: ControlPlane
) -> None:
    operator_port = free_port()
    # A second operator (its own directory, the fixture's emulator), waiting for the Lease the fixture's holds.
    watcher = Operator(Path(tempfile.mkdtemp(prefix="cfs-op-health-")), control_plane, operator.emulator,
                       extra=[f"--health-port={operator_port}"])  # fmt: skip
    share = Share(kube, operator, operator.root, "cfs-health")
    provisioner_port = free_port()
    provisioner = share.start_provisioner(
        control_plane.kubeconfig, "p", f"--health-port={provisioner_port}", log_format="json"
    )
    try:
        # A second operator waits for the Lease the fixture's holds: waiting is alive too (its Lease loop beats).
        wait_for("the waiting operator healthy", lambda: healthy(operator_port), timeout=60)
        kube.create(claim("health-1", "cfs-health"))
        wait_for("health-1 bound", lambda: _bound(kube, "default", "health-1"), timeout=90)
        wait_for("the provisioner healthy", lambda: healthy(provisioner_port), timeout=30)
        answer = httpx.get(f"http://127.0.0.1:{provisioner_port}/metrics", timeout=5)
        assert answer.status_code == 404  # the health port serves /healthz only
        # Its log, one JSON object per line: a story an operator can follow, one INFO line per decision.
        lines = [json.loads(line) for line in provisioner.log.read_text().splitlines()]
        assert {line["component"] for line in lines} == {"cfs-csi-subdir-provisioner"}
        info = [line["message"] for line in lines if line["level"] == "INFO"]
        claims = [m.split(" for ", 1)[1].split(" ", 1)[0] for m in info if m.startswith("provisioned ")]
        assert sorted(claims) == ["default/cfs-health-trigger", "default/health-1"]  # one line per claim, once
        # Besides those: start-up and the Lease (not a line per event or per resync).
        assert len(info) - len(claims) <= 4, "\n".join(info)
    finally:
        share.stop()
        watcher.process.stop()
        shutil.rmtree(watcher.root, ignore_errors=True)


def test_a_claim_that_keeps_failing_shows_one_counted_event(
    kube: Kube, operator: Operator, control_plane: ControlPlane
) -> None:
    """Issue 17 item 3: the provisioner's warning is not repeated per retry or resync, and not per restart."""
    share = Share(kube, operator, operator.root, "cfs-failing", directoryQuota="required")
    share.start_provisioner(control_plane.kubeconfig, "p", "--resync=2")
    body = claim("tiny", "cfs-failing")
    body["spec"]["resources"]["requests"]["storage"] = "1Gi"  # under CFS's 10 GiB minimum: required cannot be met

    def failures() -> list[Any]:
        return [e for e in kube.events_for("default", "tiny") if e.reason == "ProvisioningFailed"]

    kube.create(body)
    try:
        wait_for("the failure counted at least 3 times on one Event",
                 lambda: [e for e in failures() if (e.count or 1) >= 3], timeout=60)  # fmt: skip
        [event] = failures()
        share.processes[-1].stop()
        share.start_provisioner(control_plane.kubeconfig, "q", "--resync=2")  # knows nothing of the Event
        wait_for("counted again after the restart",
                 lambda: [e for e in failures() if (e.count or 1) > (event.count or 1)], timeout=60)  # fmt: skip
        assert [e.metadata.name for e in failures()] == [event.metadata.name]
    finally:
        kube.core.delete_namespaced_persistent_volume_claim("tiny", "default")
        share.stop()
