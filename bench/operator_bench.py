"""The shared-mode operator on the dev control plane: start-up, memory and CPU, before/after in one run.

One control plane (etcd, kube-apiserver, kube-controller-manager from ``cfs_csi.devcluster``) and one CFS
emulator (no create delay) serve every run; runs alternate between the variants. The Tcfs CRD is installed once
before the first run, so every start finds it (each start still passes ``--install-crd``, as the chart's default
does not; the call is answered 409). Each run:

1. a fresh shared StorageClass and one claim of it exist before the operator starts;
2. the operator starts (``python -m cfs_csi operator`` with a service account's token, so that the audit log
   records its calls): start to Lease held, and start to that class's Tcfs Ready (its Deployment created);
3. 3 s later: idle RSS and the CPU the start-up took;
4. N more shared classes with a claim each, at once: to all N Tcfs Ready with their Deployments, CPU per Tcfs,
   API calls per Tcfs (audit log; watches not counted), RSS after;
5. ``--idle`` seconds with N+1 Tcfs (the 30 s resync passes): CPU and API calls per Tcfs per pass, RSS after.

Printed: one line per run, then a table per variant (median, and min-max over runs). Needs root (it runs the Go
control plane) and the tools ``cfs-csi dev-cluster tools`` builds. Example, before/after in one run::

    mkdir -p /tmp/before && git archive <commit> src | tar -x -C /tmp/before
    .venv/bin/python bench/operator_bench.py --runs 3 --classes 20 --variant before=/tmp/before/src --variant after
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from shared_bench import (  # the same measurements as shared mode's bench
    account_kubeconfig,
    audit_offset,
    audited_calls,
    cpu_s,
    rss_mb,
    stop_group,
    wait,
)

from cfs_csi.devcluster import cluster, tools

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "kube-system"
ACCOUNT = "bench-operator"
USER = f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
GROUP, VERSION, PLURAL = "tcfsoperator.k8s.io", "v1alpha1", "tcfs"
LEASE = "cfs-csi-operator"
CLOUD_ENV = {"TENCENTCLOUD_API_SECRET_ID": "AKIDbenchoperator000000000000000000", "TENCENTCLOUD_API_SECRET_KEY": "k"}
PARAMETERS = {"subdir-share": "true", "vpcid": "vpc-oilua6pt", "subnetid": "subnet-rtwb42lu",
              "pgroupid": "pgroup-lrquouvl", "storagetype": "SD", "zone": "ap-guangzhou-3"}  # fmt: skip


def ready_condition(tcfs: dict[str, Any]) -> bool:
    conditions = (tcfs.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@dataclass
class Run:
    variant: str
    lease: float = 0.0  # start to Lease held
    first: float = 0.0  # start to the first Tcfs Ready and its Deployment
    start_cpu: float = 0.0  # CPU seconds from exec to 3 s after the first Tcfs was Ready
    rss_idle: float = 0.0
    all_ready: float = 0.0  # N classes made to all N Tcfs Ready with Deployments
    cpu_per_tcfs_ms: float = 0.0
    calls_per_tcfs: float = 0.0
    rss_after: float = 0.0
    idle_cpu_per_tcfs_pass_ms: float = 0.0
    idle_calls_per_tcfs_pass: float = 0.0
    rss_after_idle: float = 0.0


class Bench:
    def __init__(self, plane: cluster.ControlPlane, root: Path, emulator_url: str, classes: int, idle: float) -> None:
        self.plane, self.root, self.emulator_url = plane, root, emulator_url
        self.classes, self.idle = classes, idle
        self.api = k8s_config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
        self.core: Any = k8s.CoreV1Api(self.api)
        self.storage: Any = k8s.StorageV1Api(self.api)
        self.apps: Any = k8s.AppsV1Api(self.api)
        self.custom: Any = k8s.CustomObjectsApi(self.api)
        self.kubeconfig = self._account()
        self._install_crd()
        self.counter = 0
        self.log_level = "INFO"

    def _account(self) -> Path:
        return account_kubeconfig(self.api, self.plane, self.root / "bench.kubeconfig", ACCOUNT)

    def _install_crd(self) -> None:
        crd = yaml.safe_load((REPO / "src" / "cfs_csi" / "operator" / "tcfs-crd.yaml").read_text())
        k8s.ApiextensionsV1Api(self.api).create_custom_resource_definition(crd)

        def served() -> bool:
            try:
                self.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
            except ApiException:
                return False
            return True

        wait("the Tcfs API served", served, 60, 0.1)

    def audit_offset(self) -> int:
        return audit_offset(self.plane)

    def audited(self, start: int) -> Counter[str]:
        return audited_calls(self.plane, start, USER)

    def make_class(self, name: str) -> None:
        self.storage.create_storage_class({
            "metadata": {"name": name}, "provisioner": f"com.tencent.cloud.csi.tcfs.{name}",
            "reclaimPolicy": "Delete", "parameters": PARAMETERS})  # fmt: skip
        self.core.create_namespaced_persistent_volume_claim("default", {
            "metadata": {"name": name}, "spec": {"storageClassName": name, "accessModes": ["ReadWriteMany"],
                                                 "resources": {"requests": {"storage": "1Gi"}}}})  # fmt: skip

    def ready(self, names: set[str]) -> bool:
        """Every Tcfs of ``names`` Ready, and a Deployment for each."""
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
        done = {t["metadata"]["name"] for t in items if ready_condition(t)}
        if not names <= done:
            return False
        deployments = {d.metadata.name for d in self.apps.list_namespaced_deployment(NAMESPACE).items}
        return {f"com.tencent.cloud.csi.tcfs.{n}" for n in names} <= deployments

    def lease_held(self) -> bool:
        try:
            lease = k8s.CoordinationV1Api(self.api).read_namespaced_lease(LEASE, NAMESPACE)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return bool(lease.spec and lease.spec.holder_identity)

    def start(self, variant: str, source: Path | None) -> subprocess.Popen[bytes]:
        env = {**os.environ, **CLOUD_ENV, "PYTHONPATH": str(source or REPO / "src")}
        state = self.root / f"state-{self.counter}"
        state.mkdir()
        argv = [sys.executable, "-m", "cfs_csi", "--log-level", self.log_level, "operator",
                f"--kubeconfig={self.kubeconfig}", f"--namespace={NAMESPACE}", "--install-crd", "--backend=tencent",
                f"--cfs-endpoint={self.emulator_url}", "--region=ap-guangzhou", "--zone=ap-guangzhou-3",
                "--cluster-id=cls-bench", "--cloud-poll-interval=0.2", f"--state-dir={state}"]  # fmt: skip
        log = (self.root / f"operator-{variant}-{self.counter}.log").open("wb")
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def run(self, variant: str, source: Path | None) -> Run:
        self.counter += 1
        prefix = f"b{self.counter}"
        first = f"{prefix}-first"
        self.make_class(first)
        result = Run(variant)
        started = time.monotonic()
        process = self.start(variant, source)
        log = self.root / f"operator-{variant}-{self.counter}.log"
        names = [f"{prefix}-{index:03d}" for index in range(self.classes)]
        try:

            def alive(condition: Any) -> Any:
                if process.poll() is not None:
                    raise RuntimeError(f"{variant} exited: {log.read_text()[-3000:]}")
                return condition()

            wait("the Lease held", lambda: alive(self.lease_held), 120, 0.02)
            result.lease = time.monotonic() - started
            wait("the first Tcfs Ready", lambda: alive(lambda: self.ready({first})), 120, 0.05)
            result.first = time.monotonic() - started
            time.sleep(3)
            result.start_cpu = cpu_s(process.pid)
            result.rss_idle = rss_mb(process.pid)

            offset, made = self.audit_offset(), time.monotonic()
            for name in names:
                self.make_class(name)
            wait(f"{self.classes} Tcfs Ready", lambda: alive(lambda: self.ready(set(names))), 600, 0.2)
            result.all_ready = time.monotonic() - made
            result.cpu_per_tcfs_ms = (cpu_s(process.pid) - result.start_cpu) * 1000 / self.classes
            result.calls_per_tcfs = sum(self.audited(offset).values()) / self.classes
            result.rss_after = rss_mb(process.pid)

            if self.idle:
                time.sleep(2)  # late work of the burst
                cpu, offset = cpu_s(process.pid), self.audit_offset()
                time.sleep(self.idle)
                passes = self.idle / 30.0
                tcfs = self.classes + 1
                result.idle_cpu_per_tcfs_pass_ms = (cpu_s(process.pid) - cpu) * 1000 / tcfs / passes
                result.idle_calls_per_tcfs_pass = sum(self.audited(offset).values()) / tcfs / passes
                result.rss_after_idle = rss_mb(process.pid)
        finally:
            stop_group(process, 20)
            self.clean([first, *names])
        return result

    def clean(self, names: list[str]) -> None:
        """Everything a run made, deleted outright (not left to the garbage collector, which may take minutes)."""
        for name in names:
            with contextlib.suppress(ApiException):
                self.core.delete_namespaced_persistent_volume_claim(name, "default")
            with contextlib.suppress(ApiException):
                self.storage.delete_storage_class(name)
        with contextlib.suppress(ApiException):
            k8s.CoordinationV1Api(self.api).delete_namespaced_lease(LEASE, NAMESPACE)
        for item in self.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]:
            if item["metadata"].get("finalizers"):  # kopf's, which only a running kopf operator removes
                self.custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, item["metadata"]["name"],
                                                           {"metadata": {"finalizers": None}})  # fmt: skip
            with contextlib.suppress(ApiException):
                self.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, item["metadata"]["name"])
        for deployment in self.apps.list_namespaced_deployment(NAMESPACE).items:
            with contextlib.suppress(ApiException):
                self.apps.delete_namespaced_deployment(deployment.metadata.name, NAMESPACE)
        for claim in self.core.list_namespaced_persistent_volume_claim(NAMESPACE).items:
            with contextlib.suppress(ApiException):
                self.core.delete_namespaced_persistent_volume_claim(claim.metadata.name, NAMESPACE)
        for pv in self.core.list_persistent_volume().items:
            with contextlib.suppress(ApiException):
                self.core.delete_persistent_volume(pv.metadata.name)

        def gone() -> bool:
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
            return not items and not self.apps.list_namespaced_deployment(NAMESPACE).items

        try:
            wait("the run's Tcfs and Deployments deleted", gone, 120)
        except TimeoutError:
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
            left = [(i["metadata"]["name"], i["metadata"].get("finalizers")) for i in items]
            deployments = self.apps.list_namespaced_deployment(NAMESPACE).items
            left += [(d.metadata.name, d.metadata.finalizers) for d in deployments]
            raise TimeoutError(f"left behind: {left}") from None


COLUMNS = [
    ("Lease s", "lease", 2), ("first Ready s", "first", 2), ("start CPU s", "start_cpu", 2),
    ("RSS idle MB", "rss_idle", 1), ("N Ready s", "all_ready", 1), ("CPU ms/Tcfs", "cpu_per_tcfs_ms", 1),
    ("calls/Tcfs", "calls_per_tcfs", 1), ("RSS after N MB", "rss_after", 1),
    ("idle CPU ms/Tcfs/pass", "idle_cpu_per_tcfs_pass_ms", 2), ("idle calls/Tcfs/pass", "idle_calls_per_tcfs_pass", 2),
    ("RSS after idle MB", "rss_after_idle", 1),
]  # fmt: skip


def table(runs: list[Run]) -> str:
    lines = ["| variant | runs | " + " | ".join(c[0] for c in COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for variant in dict.fromkeys(r.variant for r in runs):
        mine = [r for r in runs if r.variant == variant]
        cells = []
        for _, attr, digits in COLUMNS:
            values = [getattr(r, attr) for r in mine]
            spread = f" ({min(values):.{digits}f}-{max(values):.{digits}f})" if len(values) > 1 else ""
            cells.append(f"{statistics.median(values):.{digits}f}{spread}")
        lines.append(f"| {variant} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per variant, alternated")
    parser.add_argument("--classes", type=int, default=20, help="shared classes made at once per run (N)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds measured idle with N+1 Tcfs (0: skip)")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME or NAME=SOURCE_DIR (another tree's src/); default: this tree as 'ours'")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    parser.add_argument("--log-level", default="INFO", help="of the operators started (their logs: --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (operator logs) at the end")
    args = parser.parse_args()
    variants: list[tuple[str, Path | None]] = []
    for text in args.variant or ["ours"]:
        label, _, source = text.partition("=")
        variants.append((label, Path(source).resolve() if source else None))
    binaries = tools.ensure(cluster.CONTROL_PLANE_TOOLS)
    root = Path(tempfile.mkdtemp(prefix="cfs-operator-bench-"))
    plane = cluster.start(root / "plane", binaries)
    emulator_log = (root / "emulator.log").open("w")
    emulator = subprocess.Popen(
        [sys.executable, "-m", "cfs_csi.emulator", "--listen", "127.0.0.1:0", "--state", str(root / "emulator.db"),
         "--export-root", str(root / "exports"), "--create-delay", "0"],
        stdout=subprocess.PIPE, stderr=emulator_log, text=True, env={**os.environ, **CLOUD_ENV},
    )  # fmt: skip
    runs: list[Run] = []
    try:
        assert emulator.stdout is not None
        first = emulator.stdout.readline().strip()
        if "http://" not in first:
            raise RuntimeError(f"emulator did not start: {first!r}")
        bench = Bench(plane, root, first[first.index("http://") :].rstrip("/"), args.classes, args.idle)
        bench.log_level = args.log_level
        for index in range(args.runs):
            for label, source in variants:
                r = bench.run(label, source)
                runs.append(r)
                print(f"[{datetime.now():%H:%M:%S}] run {index + 1} {label}: Lease {r.lease:.2f}s, first Ready "
                      f"{r.first:.2f}s, start CPU {r.start_cpu:.2f}s, RSS idle {r.rss_idle:.1f} MB; {args.classes} "
                      f"Ready in {r.all_ready:.1f}s, {r.cpu_per_tcfs_ms:.1f} ms CPU and {r.calls_per_tcfs:.1f} "
                      f"calls/Tcfs, RSS {r.rss_after:.1f} MB; idle {r.idle_cpu_per_tcfs_pass_ms:.2f} ms CPU and "
                      f"{r.idle_calls_per_tcfs_pass:.2f} calls/Tcfs/pass, RSS {r.rss_after_idle:.1f} MB",
                      flush=True)  # fmt: skip
    finally:
        emulator.terminate()
        emulator.wait(10)
        plane.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\noperator, {args.classes} shared classes per run, {args.runs} runs per variant, alternated; machine "
          f"{os.cpu_count()} CPUs, shared with other work\n")  # fmt: skip
    print(table(runs))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in runs], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
