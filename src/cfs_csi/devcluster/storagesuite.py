"""Kubernetes' own storage conformance suite ("External Storage" e2e) against our driver on the dev node.

The suite is ``k8s.io/kubernetes/test/e2e`` compiled as a test binary (``e2e.test``, a cached tool), driven by a
test-driver YAML (``tests/e2e/testdrivers/``) that names our driver, a StorageClass and the capabilities we
really have. It creates claims, pods that write and read through the kubelet, several pods on one volume,
sub-paths, and checks through ``kubectl exec`` and pod logs.

This module builds the command line and reads the suite's JSON report back (pure), and runs it (I/O). Nothing
here decides what passes: a failed spec is a failed spec, and every skip is listed with the suite's reason.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUITE_TOOLS = ("e2e.test", "kubectl")
FOCUS = r"External.Storage"

# The only specs we keep out ourselves, each with why: they cannot run on the one dev node of this machine.
# Giving the node a PID namespace of its own (its holder as PID 1) would let the last one run: a follow-up.
# Everything else the focus selects runs, and the suite's own skips (capabilities we do not claim) are reported
# with its reason. Keys are literal text of the spec names.
SKIPPED: Mapping[str, str] = {
    "[Disruptive]": "stops or restarts the kubelet (or the node) under the test; the dev node is the cluster's only "
    "node and runs the driver, the control plane's helpers and the suite's own pods, so nothing would be left to "
    "reach it while it is down",
    "should provision storage with any volume data source [Serial]": "deploys the hello-populator and "
    "volume-data-source-validator images from registry.k8s.io/sig-storage; no registry is reachable here and the "
    "Go module proxy does not serve their sources (kubernetes-csi/lib-volume-populator, "
    "volume-data-source-validator), so they cannot be built either",
    "should provision correct filesystem size when restoring snapshot to larger size pvc": "compares `df` inside "
    "the restored volume with the source volume's; on the dev node every volume is a bind-mounted directory of the "
    "same host disk (no NFS here), so both show that disk's size whatever the driver does",
    "should not mount / map unused volumes in a pod": "checks the node's mount table from a host-exec pod with "
    "`nsenter --mount=/proc/1/ns/mnt`; on this machine PID 1 is the sandbox's own init, whose namespaces even root "
    "on the host cannot open (Permission denied), and the dev node shares the host's PID namespace",
}


def skip_regex(names: Iterable[str]) -> str:
    """The ``--ginkgo.skip`` regular expression that drops every spec whose name contains one of ``names``."""
    return "|".join(re.escape(name) for name in names)


def suite_argv(
    binary: Path,
    *,
    kubeconfig: Path,
    kubectl: Path,
    driver: Path,
    repo_root: Path,
    report: Path,
    focus: str = FOCUS,
    skip: str = skip_regex(SKIPPED),
    timeout: str = "2h",
) -> list[str]:
    """The ``e2e.test`` command line for one run of the focused subset.

    ``--repo-root`` is where the driver YAML's ``FromFile`` paths are relative to (the repository). The
    provider is the suite's default (``skeleton``: no cloud of the suite's own); the single node is the
    client node; nothing is pre-pulled (the images are imported into the node's containerd beforehand).
    """
    argv = [
        str(binary), f"--kubeconfig={kubeconfig}", f"--kubectl-path={kubectl}", f"--repo-root={repo_root}",
        f"-storage.testdriver={driver}", f"--ginkgo.focus={focus}", f"--ginkgo.json-report={report}",
        f"--ginkgo.timeout={timeout}", "--ginkgo.no-color", "--ginkgo.v",
        "--provider=skeleton", "--num-nodes=1", "--allowed-not-ready-nodes=0", "--minStartupPods=0",
        "--disable-log-dump", "--dump-logs-on-failure=false", f"--report-dir={report.parent}",
    ]  # fmt: skip
    if skip:
        argv.append(f"--ginkgo.skip={skip}")
    return argv


@dataclass(frozen=True)
class Spec:
    name: str
    state: str  # passed, failed, skipped, pending, panicked, interrupted, aborted, timedout
    reason: str = ""  # the failure or skip message
    seconds: float = 0.0


@dataclass(frozen=True)
class SuiteResult:
    """What the suite reported: the specs it selected, and setup nodes (BeforeSuite...) that failed."""

    specs: list[Spec] = field(default_factory=list)
    setup_failures: list[Spec] = field(default_factory=list)
    succeeded: bool = False

    @property
    def ran(self) -> list[Spec]:
        return [s for s in self.specs if s.state != "skipped"]

    @property
    def passed(self) -> list[Spec]:
        return [s for s in self.specs if s.state == "passed"]

    @property
    def failed(self) -> list[Spec]:
        return [s for s in self.specs if s.state not in ("passed", "skipped", "pending")]

    @property
    def skipped(self) -> list[Spec]:
        return [s for s in self.specs if s.state == "skipped"]


_FAILED_SETUP_STATES = {"failed", "panicked", "interrupted", "aborted", "timedout"}


def _name(report: Mapping[str, Any]) -> str:
    parts = [*(report.get("ContainerHierarchyTexts") or []), report.get("LeafNodeText") or ""]
    return " ".join(p for p in parts if p).strip()


def parse_report(text: str) -> SuiteResult:
    """Read ginkgo's JSON report (``--ginkgo.json-report``): a list with one suite report.

    Specs the focus or skip expression filtered out are reported by ginkgo as skipped *without* a message; they
    were never selected, so they are left out. Skips *with* a message are the suite's own decisions (a
    capability the driver does not claim, a size it does not support) and are kept with that message.
    """
    suites = json.loads(text)
    specs: list[Spec] = []
    setup: list[Spec] = []
    succeeded = bool(suites) and all(bool(s.get("SuiteSucceeded")) for s in suites)
    for suite in suites:
        for report in suite.get("SpecReports") or []:
            state = str(report.get("State") or "")
            message = str((report.get("Failure") or {}).get("Message") or "").strip()
            spec = Spec(_name(report), state, message, float(report.get("RunTime") or 0) / 1e9)
            if report.get("LeafNodeType") != "It":
                if state in _FAILED_SETUP_STATES:
                    setup.append(spec)
                continue
            if state == "skipped" and not message:
                continue  # filtered out by focus/skip: not part of the run
            specs.append(spec)
    return SuiteResult(specs, setup, succeeded)


def summary(mode: str, result: SuiteResult, seconds: float) -> str:
    """The figures the README quotes, then every failure and every skip with its reason."""
    lines = [
        f"External Storage e2e, {mode} mode: {len(result.specs)} selected, {len(result.ran)} run, "
        f"{len(result.passed)} passed, {len(result.failed)} failed, {len(result.skipped)} skipped, in {seconds:.0f}s"
    ]
    lines += [f"  SETUP FAILED {s.name}: {first_line(s.reason)}" for s in result.setup_failures]
    lines += [f"  FAILED {s.name} ({s.seconds:.0f}s): {first_line(s.reason)}" for s in result.failed]
    lines += [f"  skipped {s.name}: {first_line(s.reason)}" for s in result.skipped]
    return "\n".join(lines)


def first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --- I/O -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    result: SuiteResult
    seconds: float
    log: Path
    returncode: int


def run(argv: Sequence[str], report: Path, log: Path, timeout: float) -> Run:
    """Run the suite with its output in ``log``; the report is read even when specs failed (exit code 1)."""
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    started = time.monotonic()
    with log.open("wb") as out:
        try:
            code = subprocess.run(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=timeout, check=False).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            code = -1
    seconds = time.monotonic() - started
    if not report.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"the suite wrote no report (exit {code}); the end of {log}:\n{tail}")
    return Run(parse_report(report.read_text()), seconds, log, code)
