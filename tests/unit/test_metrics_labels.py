"""Label values are bounded (pure decisions), the text format is written as Prometheus reads it, and a process
that installs no metrics counts nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cfs_csi.driver.health import Reply, page_for
from cfs_csi.metrics import record
from cfs_csi.metrics.csi import CsiMetrics


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("OK", "OK"),
        ("ResourceNotFound.FileSystemNotFound", "ResourceNotFound"),
        ("RequestLimitExceeded", "RequestLimitExceeded"),
        ("LimitExceeded.FileSystemNum", "LimitExceeded"),
        ("ClientNetworkError", "ClientNetworkError"),
        ("Cancelled", "Cancelled"),
        ("cfs-1234abcd", "other"),  # whatever a server sends is not a label value
        ("/var/lib/kubelet/pods/x", "other"),
        ("", "other"),
    ],
)
def test_error_category(code: str, label: str) -> None:
    assert record.error_category(code) == label


@pytest.mark.parametrize(
    ("argv0", "label"),
    [
        ("mount", "mount"),
        ("/usr/bin/umount", "umount"),
        ("/sbin/mount.nfs", "mount"),
        ("mount.cifs", "other"),
        ("umount.nfs", "other"),
        ("", "other"),
    ],
)
def test_command_label(argv0: str, label: str) -> None:
    assert record.command_label(argv0) == label


@pytest.mark.parametrize(
    ("line", "wanted"),
    [
        ("GET /metrics HTTP/1.1\r\n", "/metrics"),
        ("HEAD /metrics?x=1 HTTP/1.0\r\n", "/metrics"),
        ("GET /healthz HTTP/1.1\r\n", 404),  # not a page of this server
        ("POST /metrics HTTP/1.1\r\n", 405),
        ("GET /metrics\r\n", 400),
    ],
)
def test_pages(line: str, wanted: str | int) -> None:
    found = page_for(line, ("/metrics",))
    assert (found.status if isinstance(found, Reply) else found) == wanted


def test_every_component_renders_what_prometheus_parses_back() -> None:
    metrics = CsiMetrics("all")
    metrics.rpc("CreateVolume", "OK", 0.3)
    metrics.rpc("CreateVolume", "OK", 0.01)
    metrics.cloud_call("CreateCfsFileSystem", "RequestLimitExceeded", 0.02)
    metrics.cloud_retry("CreateCfsFileSystem", "RequestLimitExceeded", gave_up=False)
    metrics.mount_command("mount", "timeout", 90.0)
    text = metrics.exposition().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert "# TYPE cfs_csi_rpc_requests_total counter" in text  # the family line names the samples' _total
    [calls] = families["cfs_csi_rpc_requests"].samples
    assert (calls.labels, calls.value) == ({"method": "CreateVolume", "code": "OK"}, 2.0)
    buckets = {s.labels["le"]: s.value for s in families["cfs_csi_rpc_duration_seconds"].samples
               if s.name.endswith("_bucket")}  # fmt: skip
    assert (buckets["0.005"], buckets["0.025"], buckets["0.5"], buckets["+Inf"]) == (0, 1, 2, 2)
    throttled = families["cfs_csi_cloud_throttled"].samples
    assert [(s.labels, s.value) for s in throttled] == [({"action": "CreateCfsFileSystem"}, 1.0)]
    assert "_created" not in text


@pytest.mark.parametrize(
    ("component", "present", "absent"),
    [
        ("controller", "cfs_csi_cloud_requests_total", "cfs_csi_mount_command_duration_seconds"),
        ("node", "cfs_csi_mount_command_duration_seconds", "cfs_csi_cloud_requests_total"),
    ],
)
def test_each_component_registers_its_own_families(component: str, present: str, absent: str) -> None:
    metrics = CsiMetrics(component)
    text = metrics.exposition().decode()
    assert f"# TYPE {present} " in text and f"# TYPE {absent} " not in text
    assert f'cfs_csi_build_info{{component="{component}",version="0.1.0"}} 1.0' in text


def test_label_values_are_escaped() -> None:
    metrics = CsiMetrics("node")
    metrics.rpc('odd"name\\\n', "OK", 0.0)
    text = metrics.exposition().decode()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "cfs_csi_rpc_requests"]
    assert family.samples[0].labels["method"] == 'odd"name\\\n'


def test_the_core_loads_without_tls_or_an_http_server() -> None:
    """What the node plugin loads for its metrics: with ssl and OpenSSL refused, as ``serve --component=node``."""
    script = (
        "import sys\n"
        "for name in ('ssl', '_ssl', '_hashlib'): sys.modules[name] = None\n"
        "from cfs_csi.metrics.csi import CsiMetrics\n"
        "CsiMetrics('node')\n"
        "loaded = [n for n in ('prometheus_client', 'http.server', 'urllib.request', 'wsgiref', 'gzip', 'hashlib')\n"
        "          if sys.modules.get(n) is not None]\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_nothing_is_counted_until_metrics_are_installed() -> None:
    metrics = CsiMetrics("controller")
    record.rpc("Probe", "OK", 0.0)  # no sink installed: dropped
    record.install(metrics)
    try:
        record.rpc("Probe", "OK", 0.0)
        record.cloud_call("DescribeCfsFileSystems", "InternalError.Busy", 0.1)
    finally:
        record.install(None)
    record.rpc("Probe", "OK", 0.0)
    text = metrics.exposition().decode()
    assert 'cfs_csi_rpc_requests_total{code="OK",method="Probe"} 1.0' in text
    assert 'cfs_csi_cloud_requests_total{action="DescribeCfsFileSystems",error="InternalError"} 1.0' in text
