"""Reading the External Storage suite's report, and its command line: what counts as run, failed and skipped."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cfs_csi.devcluster import storagesuite
from cfs_csi.devcluster.storagesuite import SKIPPED, parse_report, skip_regex, suite_argv, summary


def spec(text: str, state: str, message: str = "", node: str = "It", seconds: float = 0) -> dict[str, Any]:
    report: dict[str, Any] = {
        "ContainerHierarchyTexts": ["External Storage [Driver: com.tencent.cloud.csi.cfs]", "[Testpattern: x] volumes"],
        "LeafNodeType": node, "LeafNodeText": text, "State": state, "RunTime": int(seconds * 1e9),
    }  # fmt: skip
    if message:
        report["Failure"] = {"Message": message, "Location": {"FileName": "x.go", "LineNumber": 1}}
    return report


def report(*specs: dict[str, Any], succeeded: bool = True) -> str:
    return json.dumps([{"SuiteDescription": "Kubernetes e2e suite", "SuiteSucceeded": succeeded,
                        "SpecReports": list(specs)}])  # fmt: skip


def test_filtered_specs_are_left_out_and_the_suites_own_skips_keep_their_reason() -> None:
    result = parse_report(report(
        spec("should store data", "passed", seconds=12.5),
        spec("should not run", "skipped"),  # outside the focus: ginkgo gives no message
        spec("should provision with snapshot", "skipped", "Driver does not support snapshots - skipping"),
        spec("should write files", "failed", "timed out waiting for pod\nmore detail"),
        spec("", "passed", node="SynchronizedBeforeSuite"),
    ))  # fmt: skip
    assert [s.state for s in result.specs] == ["passed", "skipped", "failed"]
    assert result.specs[0].name.endswith("volumes should store data") and result.specs[0].seconds == 12.5
    assert [s.reason for s in result.skipped] == ["Driver does not support snapshots - skipping"]
    assert [s.name.rsplit(" ", 2)[-2:] for s in result.failed] == [["write", "files"]]
    assert len(result.ran) == 2 and len(result.passed) == 1 and not result.setup_failures


def test_a_failed_setup_node_is_a_failure_even_with_no_spec_failed() -> None:
    result = parse_report(report(
        spec("", "failed", "nodes not schedulable", node="SynchronizedBeforeSuite"),
        spec("should store data", "skipped", "Spec skipped because an earlier spec failed"),
        spec("", "passed", node="ReportAfterSuite"),
        succeeded=False,
    ))  # fmt: skip
    assert [s.reason for s in result.setup_failures] == ["nodes not schedulable"]
    assert not result.succeeded and not result.passed


def test_every_kind_of_broken_spec_counts_as_failed() -> None:
    states = ["panicked", "interrupted", "aborted", "timedout", "failed"]
    result = parse_report(report(*(spec(f"spec {s}", s, "why") for s in states), spec("p", "pending")))
    assert [s.state for s in result.failed] == states


def test_summary_prints_the_figures_then_every_failure_and_skip_with_its_first_line() -> None:
    result = parse_report(report(
        spec("should store data", "passed"),
        spec("should fail", "failed", "line one\nline two"),
        spec("should skip", "skipped", "no block support"),
    ))  # fmt: skip
    lines = summary("dedicated", result, 61.7).splitlines()
    assert lines[0] == ("External Storage e2e, dedicated mode: 3 selected, 2 run, 1 passed, 1 failed, 1 skipped, "
                        "in 62s")  # fmt: skip
    assert lines[1].startswith("  FAILED ") and lines[1].endswith(": line one")
    assert lines[2].startswith("  skipped ") and lines[2].endswith(": no block support")


def test_the_skip_expression_matches_only_the_tagged_specs() -> None:
    pattern = re.compile(skip_regex(SKIPPED))
    assert pattern.search("subPath should unmount if pod is force deleted while kubelet is down [Disruptive] [Slow]")
    assert not pattern.search("volumes should store data [Slow]")
    assert not pattern.search("Disruptive without brackets")
    assert pattern.search("provisioning should provision storage with any volume data source [Serial]")
    assert not pattern.search("volume-lifecycle-performance should provision volumes at scale [Serial]")
    assert all(reason for reason in SKIPPED.values())  # each named with why


def test_the_command_line_points_the_suite_at_the_driver_the_cluster_and_the_report() -> None:
    argv = suite_argv(Path("/c/e2e.test"), kubeconfig=Path("/k/admin.kubeconfig"), kubectl=Path("/c/kubectl"),
                      driver=Path("/r/d.yaml"), repo_root=Path("/r"), report=Path("/o/dedicated.json"),
                      focus="External.Storage.*x")  # fmt: skip
    assert argv[0] == "/c/e2e.test"
    assert {"--kubeconfig=/k/admin.kubeconfig", "--kubectl-path=/c/kubectl", "--repo-root=/r",
            "-storage.testdriver=/r/d.yaml", "--ginkgo.focus=External.Storage.*x",
            "--ginkgo.json-report=/o/dedicated.json", "--report-dir=/o",
            f"--ginkgo.skip={skip_regex(SKIPPED)}"} <= set(argv)  # fmt: skip
    no_skip = suite_argv(Path("e"), kubeconfig=Path("k"), kubectl=Path("c"), driver=Path("d"), repo_root=Path("r"),
                         report=Path("o/r.json"), skip="")  # fmt: skip
    assert not [a for a in no_skip if a.startswith("--ginkgo.skip")]
    assert f"--ginkgo.focus={storagesuite.FOCUS}" in no_skip
