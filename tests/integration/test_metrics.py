"""``/metrics`` of the controller and the node plugin, scraped after real work and validated.

The controller creates and deletes file systems in the emulator over gRPC; its cloud counters are compared with
the emulator's own count of the requests it answered (``GET /admin/requests``). The node publishes, reads stats of
and unpublishes real bind mounts in a private mount namespace; its mount command counts are compared with a log
that a wrapper around the real ``mount``/``umount`` writes. Every scrape is checked by ``promtool check metrics``
(Prometheus' own linter, built from the Go module proxy) and parsed by prometheus_client's parser.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cfs_csi.client import CsiClient, mount_capability
from cfs_csi.csi import csi_pb2
from cfs_csi.metrics.record import error_category
from tests.conftest import CLOUD_ENV, Driver, Emulator, pods_dir, start_driver, stop_gracefully, tencent_driver_flags

#: StorageClass parameters of a dedicated volume in the emulator.
SEED = {"vpcid": "vpc-oilua6pt", "subnetid": "subnet-rtwb42lu", "zone": "ap-guangzhou-3", "pgroupid": "pgroupbasic"}
#: (sample name, sorted label items) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(port: int, promtool: Path | None) -> Samples:
    """GET /metrics, validated by promtool (when built) and parsed; every sample by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = response.read().decode()
    if promtool is not None:
        check = subprocess.run([str(promtool), "check", "metrics"], input=text, capture_output=True, text=True,
                               timeout=60, check=False)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr + text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, key
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(after: Samples, before: Samples, name: str) -> Counter[tuple[tuple[str, str], ...]]:
    """What moved in ``name`` between two scrapes, by labels (only non-zero changes)."""
    moved: Counter[tuple[tuple[str, str], ...]] = Counter()
    for (sample, labels), now in after.items():
        if sample == name and now != before.get((sample, labels), 0.0):
            moved[labels] = int(now - before.get((sample, labels), 0.0))
    return moved


def labels(**items: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(items.items()))


def assert_no_volume_labels(samples: Samples, *secrets: str) -> None:
    """No label value carries a volume id, name or path."""
    for _, items in samples:
        for _, text in items:
            assert "/" not in text and not any(secret in text for secret in secrets), items


# -- the controller -------------------------------------------------------------------------------------------


@pytest.fixture
def controller(mount_root: Path, emulator: Emulator) -> Iterator[tuple[Driver, int]]:
    port = free_port()
    running = start_driver(mount_root, "--component", "controller", *tencent_driver_flags(emulator),
                           "--metrics-port", str(port), env=CLOUD_ENV, name="metrics-controller")  # fmt: skip
    try:
        yield running, port
    finally:
        stop_gracefully(running)


def emulator_counts(emulator: Emulator) -> Counter[tuple[tuple[str, str], ...]]:
    """The emulator's requests since its last reset, as our labels: action and error category."""
    answered = emulator.admin("GET", "requests")
    assert isinstance(answered, dict)
    counts: Counter[tuple[tuple[str, str], ...]] = Counter()
    for action, outcomes in answered["by_action"].items():
        for outcome, n in outcomes.items():
            error = "OK" if outcome == "ok" else "ServerNetworkError" if outcome.startswith("http_") else outcome
            counts[labels(action=action, error=error_category(error))] += n
    return counts


async def test_controller_counts_calls_and_cloud_requests(
    controller: tuple[Driver, int], emulator: Emulator, promtool: Path | None
) -> None:
    driver, port = controller
    before = scrape(port, promtool)
    assert value(before, "cfs_csi_build_info", component="controller", version="0.1.0") == 1
    emulator.admin("DELETE", "requests")
    async with CsiClient(driver.endpoint) as csi:
        volumes = [await csi.create_volume(f"pvc-metrics-{n}", SEED, 10 * 1024**3) for n in range(2)]
        await csi.create_volume("pvc-metrics-0", SEED, 10 * 1024**3)  # idempotent: found by name
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await csi.create_volume("pvc-metrics-bad", {**SEED, "storagetype": "no-such-type"})
        for volume in volumes:
            await csi.delete_volume(volume.volume_id)
        await csi.delete_volume(volumes[0].volume_id)  # idempotent
    after = scrape(port, promtool)
    rpcs = delta(after, before, "cfs_csi_rpc_requests_total")
    assert rpcs == {
        labels(method="CreateVolume", code="OK"): 3,
        labels(method="CreateVolume", code=bad.value.code().name): 1,
        labels(method="DeleteVolume", code="OK"): 3,
    }
    for method in ("CreateVolume", "DeleteVolume"):
        assert delta(after, before, "cfs_csi_rpc_duration_seconds_count")[labels(method=method)] == (
            sum(n for items, n in rpcs.items() if ("method", method) in items)
        )
    cloud = delta(after, before, "cfs_csi_cloud_requests_total")
    assert cloud == emulator_counts(emulator)
    assert {dict(items)["action"] for items in cloud} >= {"CreateCfsFileSystem", "DeleteCfsFileSystem"}
    for items, n in cloud.items():
        action = dict(items)["action"]
        histogram = delta(after, before, "cfs_csi_cloud_request_duration_seconds_count")[labels(action=action)]
        assert histogram == sum(m for other, m in cloud.items() if dict(other)["action"] == action) >= n
    assert_no_volume_labels(after, "pvc-metrics", *(v.volume_id for v in volumes))


async def test_controller_counts_throttling_and_retries(
    controller: tuple[Driver, int], emulator: Emulator, promtool: Path | None
) -> None:
    driver, port = controller
    before = scrape(port, promtool)
    emulator.admin("DELETE", "requests")
    emulator.admin("PUT", "faults", {"throttle_rate": 1.0, "actions": ["DescribeCfsFileSystems"]})
    async with CsiClient(driver.endpoint) as csi:
        request = csi_pb2.CreateVolumeRequest(
            name="pvc-throttled", volume_capabilities=[mount_capability()], parameters=SEED
        )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await csi.controller.CreateVolume(request, timeout=4)
    after = scrape(port, promtool)
    answered = emulator_counts(emulator)
    throttled = answered[labels(action="DescribeCfsFileSystems", error="RequestLimitExceeded")]
    assert throttled >= 2  # retried at least once within the call's deadline
    assert delta(after, before, "cfs_csi_cloud_throttled_total") == {labels(action="DescribeCfsFileSystems"): throttled}
    retried = delta(after, before, "cfs_csi_cloud_retries_total")
    exhausted = delta(after, before, "cfs_csi_cloud_retries_exhausted_total")
    key = labels(action="DescribeCfsFileSystems", error="RequestLimitExceeded")
    assert set(retried) == {key} and set(exhausted) <= {key}
    # Every throttled answer was either retried or given up on (the last one, unless the deadline cut it short).
    assert retried[key] + exhausted[key] in (throttled, throttled - 1)
    code = failed.value.code().name
    assert delta(after, before, "cfs_csi_rpc_requests_total") == {labels(method="CreateVolume", code=code): 1}


# -- the node -------------------------------------------------------------------------------------------------

#: Runs the real command after writing its name to $CFS_CSI_TEST_COMMANDS; fails at once ("forced") when the
#: file $CFS_CSI_TEST_FAIL exists, and outlives the mount timeout when $CFS_CSI_TEST_HANG exists.
WRAPPER = """\
echo "$(basename "$0")" >> "$CFS_CSI_TEST_COMMANDS"
if [ -e "$CFS_CSI_TEST_FAIL" ]; then echo "$(basename "$0"): forced failure" >&2; exit 32; fi
if [ -e "$CFS_CSI_TEST_HANG" ]; then exec sleep 30; fi
exec {real} "$@"
"""


@pytest.fixture
def node(mount_root: Path) -> Iterator[tuple[Driver, int, Path]]:
    bin_dir = mount_root / "bin"
    bin_dir.mkdir()
    for command in ("mount", "umount"):
        real = shutil.which(command)
        assert real is not None
        wrapper = bin_dir / command
        wrapper.write_text("#!/bin/sh\n" + WRAPPER.format(real=real))
        wrapper.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "CFS_CSI_TEST_COMMANDS": str(mount_root / "commands"),
           "CFS_CSI_TEST_FAIL": str(mount_root / "fail"), "CFS_CSI_TEST_HANG": str(mount_root / "hang")}  # fmt: skip
    port = free_port()
    running = start_driver(mount_root, "--component", "node", "--metrics-port", str(port), "--mount-timeout", "1",
                           env=env, name="metrics-node")  # fmt: skip
    try:
        yield running, port, mount_root
    finally:
        (mount_root / "fail").unlink(missing_ok=True)
        (mount_root / "hang").unlink(missing_ok=True)
        stop_gracefully(running)


def commands_run(root: Path) -> Counter[str]:
    log = root / "commands"
    return Counter(log.read_text().split()) if log.exists() else Counter()


def local_volume(driver: Driver, fsid: str) -> csi_pb2.Volume:
    """A volume of the local backend's layout: its export directory exists, as the controller would make it."""
    (driver.state_dir / "local" / "exports" / "127.0.0.1" / fsid).mkdir(parents=True)
    return csi_pb2.Volume(volume_id=f"local-{fsid}", volume_context={"host": "127.0.0.1", "fsid": fsid})


async def rpc_code(call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    return str(error.value.code().name)


async def test_node_counts_calls_mount_commands_and_stats(
    node: tuple[Driver, int, Path], promtool: Path | None
) -> None:
    driver, port, root = node
    before = scrape(port, promtool)
    assert value(before, "cfs_csi_build_info", component="node", version="0.1.0") == 1
    volume = local_volume(driver, "fsmetrics1")
    target = pods_dir(root) / "pod-uid" / "volumes" / "kubernetes.io~csi" / "pv-metrics" / "mount"
    async with CsiClient(driver.endpoint) as csi:
        await csi.publish(volume, str(target))
        await csi.publish(volume, str(target))  # idempotent
        published = scrape(port, promtool)
        for _ in range(3):
            await csi.stats(volume.volume_id, str(target))
        stats = scrape(port, promtool)
        missing = await rpc_code(csi.stats(volume.volume_id, str(pods_dir(root) / "nowhere")))
        await csi.unpublish(volume.volume_id, str(target))
        (root / "fail").touch()
        failed = await rpc_code(csi.publish(volume, str(pods_dir(root) / "other-pod" / "mount")))
        (root / "fail").unlink()
        (root / "hang").touch()
        timed_out = await rpc_code(csi.publish(volume, str(pods_dir(root) / "third-pod" / "mount")))
        (root / "hang").unlink()
    after = scrape(port, promtool)

    assert delta(stats, published, "cfs_csi_volume_stats_duration_seconds_count") == {labels(outcome="ok"): 3}
    assert delta(after, before, "cfs_csi_rpc_requests_total") == Counter({
        labels(method="NodePublishVolume", code="OK"): 2,
        labels(method="NodeGetVolumeStats", code="OK"): 3,
        labels(method="NodeGetVolumeStats", code=missing): 1,
        labels(method="NodeUnpublishVolume", code="OK"): 1,
        labels(method="NodePublishVolume", code=failed): 1,
    } | ({labels(method="NodePublishVolume", code=timed_out): 1} if timed_out != failed else {}))  # fmt: skip
    if timed_out == failed:
        assert delta(after, before, "cfs_csi_rpc_requests_total")[labels(method="NodePublishVolume", code=failed)] == 2

    ran = commands_run(root)
    mounts = delta(after, before, "cfs_csi_mount_command_duration_seconds_count")
    assert sum(n for items, n in mounts.items() if ("command", "mount") in items) == ran["mount"]
    # The bind mounter unmounts with umount2(2) (issue 15): no umount process runs, and the one unpublish's
    # system call is counted as the umount it replaces.
    assert ran["umount"] == 0
    assert sum(n for items, n in mounts.items() if ("command", "umount") in items) == 1
    assert mounts[labels(command="mount", outcome="failed")] == 1
    assert mounts[labels(command="mount", outcome="timeout")] == 1
    assert mounts[labels(command="mount", outcome="ok")] == ran["mount"] - 2 >= 1
    assert mounts[labels(command="umount", outcome="ok")] == 1
    assert value(after, "cfs_csi_mount_commands_running", state="running") == 0
    assert value(after, "cfs_csi_volume_stats_hung_probes") == 0
    assert_no_volume_labels(after, "fsmetrics1", "pod-uid")
