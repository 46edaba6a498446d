"""Shared mode on the dev control plane: our sub-directory provisioner against a do-nothing one (the floor).

One control plane (etcd, kube-apiserver, kube-controller-manager from ``cfs_csi.devcluster``) serves every run;
runs alternate between the variants. Each run: a fresh shared StorageClass (reclaim Delete, ``onDelete:
delete``), a directory standing in for the share, one claim made before the provisioner starts, the provisioner
started with a service account's token (so that the API server's audit log records every call it makes), then
N claims at once, all Bound, all deleted, every PV gone. Printed per variant (median, and min-max over runs):

- bind: creation of the N claims to the last Bound; delete: deleting them to the last PV gone;
- first: the Lease held (polled every 20 ms) to the first claim Bound (the claim is made, and marked for the
  provisioner by kube-controller-manager, before the provisioner starts);
- RSS idle (after the first claim, 3 s quiet) and after the run; CPU (user+system) of the provisioner process
  from before the N claims to after the last PV is gone, per claim;
- API calls per claim (bind phase) and per delete (delete phase), from the audit log, watches not counted;
  ``404/del``: calls per delete answered 404 (work done twice).

Needs root (it runs the Go control plane) and the tools ``cfs-csi dev-cluster tools`` builds. Example::

    unshare --mount --propagation private env CFS_CSI_MOUNT_NS=private .venv/bin/python bench/shared_bench.py \\
        --runs 3 --claims 200 --variant ours --variant floor

``--variant before=/path/to/src`` runs ``cfs-csi subdir-provisioner`` from another source tree (e.g. a
``git archive`` of an older commit), for before/after figures in one run. ``--entry provisioner`` starts ours
as ``python -m cfs_csi.provisioner`` instead of ``python -m cfs_csi subdir-provisioner``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from cfs_csi.devcluster import cluster, tools

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "kube-system"
ACCOUNT = "bench-provisioner"
USER = f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
SERVER, FSID = "10.0.0.9", "bench0fs"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(what: str, condition: Any, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def account_kubeconfig(api: Any, plane: cluster.ControlPlane, path: Path, account: str) -> Path:
    """A cluster-admin service account ``account`` in NAMESPACE, and a kubeconfig at ``path`` with its token: the
    API server's audit log records its calls apart from the bench's own admin ones."""
    core: Any = k8s.CoreV1Api(api)
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": account}})
    rbac: Any = k8s.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role_binding({
        "metadata": {"name": account}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                   "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]})  # fmt: skip
    request = {"spec": {"audiences": [], "expirationSeconds": 86400}}
    token = core.create_namespaced_service_account_token(account, NAMESPACE, request).status.token
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "dev", "cluster": {"server": plane.server,
                                                 "certificate-authority": str(plane.pki.ca_cert)}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "dev", "user": account}}],
    }))  # fmt: skip
    return path


def stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop a process started in its own session, and all it started: SIGTERM, then SIGKILL after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def audit_offset(plane: cluster.ControlPlane) -> int:
    return plane.audit_log.stat().st_size if plane.audit_log.exists() else 0


def audited_calls(plane: cluster.ControlPlane, start: int, user: str) -> Counter[str]:
    """The calls ``user`` made since ``start`` (bytes into the audit log), watches left out, as
    ``"<verb> <resource>[/<subresource>] <code>"``."""
    calls: Counter[str] = Counter()
    with plane.audit_log.open("rb") as log:
        log.seek(start)
        for line in log:
            event = json.loads(line)
            if event["user"]["username"] != user or event["stage"] != "ResponseComplete":
                continue
            if event["verb"] == "watch":
                continue
            ref = event.get("objectRef") or {}
            code = (event.get("responseStatus") or {}).get("code", 0)
            sub = "/" + ref["subresource"] if ref.get("subresource") else ""
            calls[f"{event['verb']} {ref.get('resource', '?')}{sub} {code}"] += 1
    return calls


@dataclass
class Run:
    variant: str
    bind: float = 0.0
    delete: float = 0.0
    first: float = 0.0
    rss_idle: float = 0.0
    rss_after: float = 0.0
    cpu_per_claim_ms: float = 0.0
    cpu_bind_ms: float = 0.0  # the part of it until the last claim was Bound
    calls_per_claim: float = 0.0
    calls_per_delete: float = 0.0
    not_found_per_delete: float = 0.0
    calls: dict[str, Counter[str]] = field(default_factory=dict)


class Bench:
    def __init__(self, plane: cluster.ControlPlane, root: Path, claims: int) -> None:
        self.plane, self.root, self.claims = plane, root, claims
        self.api = k8s_config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
        # Any: plain dicts as bodies (the client accepts them), and no None checks on what a bench just made.
        self.core: Any = k8s.CoreV1Api(self.api)
        self.storage: Any = k8s.StorageV1Api(self.api)
        self.kubeconfig = self._account()
        self.counter = 0
        self.profile: Path | None = None

    def _account(self) -> Path:
        return account_kubeconfig(self.api, self.plane, self.root / "bench.kubeconfig", ACCOUNT)

    def claim(self, name: str, storage_class: str, namespace: str) -> None:
        self.core.create_namespaced_persistent_volume_claim(namespace, {
            "metadata": {"name": name}, "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteMany"],
                                                 "resources": {"requests": {"storage": "1Gi"}}}})  # fmt: skip

    def phase(self, namespace: str, name: str) -> str:
        return str(self.core.read_namespaced_persistent_volume_claim(name, namespace).status.phase)

    def audit_offset(self) -> int:
        return audit_offset(self.plane)

    def audited(self, start: int) -> Counter[str]:
        return audited_calls(self.plane, start, USER)

    def start(self, variant: str, source: Path | None, name: str, share: Path, entry: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PROVISIONER_NAME": name, "NFS_SERVER": SERVER, "NFS_PATH": f"/{FSID}/",
               "SHARE_MOUNT_PATH": str(share), "POD_NAMESPACE": NAMESPACE}  # fmt: skip
        if variant == "floor":
            argv = [sys.executable, str(REPO / "bench" / "shared_floor.py"), str(self.kubeconfig)]
        else:
            env["PYTHONPATH"] = str(source or REPO / "src")
            flags = ["subdir-provisioner", f"--kubeconfig={self.kubeconfig}", f"--namespace={NAMESPACE}"]
            profile = ["-m", "cProfile", "-o", str(self.root / f"{name}.prof")] if self.profile else []
            if entry == "provisioner":
                argv = [sys.executable, *profile, "-m", "cfs_csi.provisioner", "--log-level", "INFO", *flags[1:]]
            else:
                argv = [sys.executable, *profile, "-m", "cfs_csi", "--log-level", "INFO", *flags]
        log = (self.root / f"{name}.log").open("wb")
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def lease_held(self, name: str) -> bool:
        try:
            lease = k8s.CoordinationV1Api(self.api).read_namespaced_lease(name, NAMESPACE)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return bool(lease.spec and lease.spec.holder_identity)

    def run(self, variant: str, source: Path | None, entry: str) -> Run:
        self.counter += 1
        klass = f"bench-{self.counter}"
        name = f"com.tencent.cloud.csi.tcfs.{klass}"
        namespace = f"bench-{self.counter}"
        share = self.root / "share" / klass
        share.mkdir(parents=True)
        self.core.create_namespace({"metadata": {"name": namespace}})
        self.storage.create_storage_class({
            "metadata": {"name": klass}, "provisioner": name, "reclaimPolicy": "Delete",
            "parameters": {"subdir-share": "true", "onDelete": "delete"}})  # fmt: skip
        self.claim("first", klass, namespace)

        def annotated() -> bool:
            claim = self.core.read_namespaced_persistent_volume_claim("first", namespace)
            return (claim.metadata.annotations or {}).get("volume.kubernetes.io/storage-provisioner") == name

        # kube-controller-manager marks the claim for its provisioner first; after the previous run's clean-up
        # that can take seconds, which is the control plane's time and not the provisioner's start-up.
        wait("the first claim marked for its provisioner", annotated, 120, 0.05)
        result = Run(variant)
        process = self.start(variant, source, name, share, entry)
        try:
            wait("the Lease held", lambda: self.lease_held(name) or process.poll() is not None, 60, 0.02)
            held = time.monotonic()
            if process.poll() is not None:
                raise RuntimeError(f"{variant} exited: {(self.root / f'{name}.log').read_text()[-3000:]}")
            wait("the first claim Bound", lambda: self.phase(namespace, "first") == "Bound", 60, 0.02)
            result.first = time.monotonic() - held
            time.sleep(3)
            result.rss_idle = rss_mb(process.pid)
            cpu_before, offset = cpu_s(process.pid), self.audit_offset()
            started = time.monotonic()
            for index in range(self.claims):
                self.claim(f"claim-{index:03d}", klass, namespace)

            def all_bound() -> bool:
                items = self.core.list_namespaced_persistent_volume_claim(namespace).items
                return len(items) == self.claims + 1 and all(c.status.phase == "Bound" for c in items)

            wait(f"{self.claims} claims Bound", all_bound, 900)
            result.bind = time.monotonic() - started
            result.cpu_bind_ms = (cpu_s(process.pid) - cpu_before) * 1000 / self.claims
            bind_calls = self.audited(offset)
            offset = self.audit_offset()
            started = time.monotonic()
            self.core.delete_collection_namespaced_persistent_volume_claim(namespace)

            def all_gone() -> bool:
                pvs: list[Any] = self.core.list_persistent_volume().items
                return not any(pv.spec.storage_class_name == klass for pv in pvs)

            wait("every PV deleted", all_gone, 900)
            result.delete = time.monotonic() - started
            time.sleep(2)  # late work (a second pass over a deleted PV) shows in the calls and the CPU
            result.cpu_per_claim_ms = (cpu_s(process.pid) - cpu_before) * 1000 / self.claims
            result.rss_after = rss_mb(process.pid)
            delete_calls = self.audited(offset)
            result.calls = {"bind": bind_calls, "delete": delete_calls}
            result.calls_per_claim = sum(bind_calls.values()) / self.claims
            deletes = self.claims + 1
            result.calls_per_delete = sum(delete_calls.values()) / deletes
            result.not_found_per_delete = sum(n for k, n in delete_calls.items() if k.endswith(" 404")) / deletes
            if variant != "floor" and any(share.iterdir()):
                left = sorted(p.name for p in share.iterdir())
                if left != [".cfs-csi-provisioner"]:
                    raise RuntimeError(f"{variant} left directories on the share: {left[:5]}")
        finally:
            stop_group(process, 15)
            if self.profile and (self.root / f"{name}.prof").exists():
                shutil.copy(self.root / f"{name}.prof", self.profile / f"{variant}-{self.counter}.prof")
            self.storage.delete_storage_class(klass)
            self.core.delete_namespace(namespace)

            def namespace_gone() -> bool:
                try:
                    self.core.read_namespace(namespace)
                except ApiException as exc:
                    return bool(exc.status == 404)
                return False

            wait("the run's namespace deleted", namespace_gone, 300)  # its clean-up must not slow the next run
        return result

    def operator(self, variant: str, source: Path | None) -> tuple[float, float]:
        """(seconds from start to the Lease held, idle RSS in MB 3 s later) of ``cfs-csi operator``."""
        env = {**os.environ, "PYTHONPATH": str(source or REPO / "src"), "TENCENTCLOUD_API_SECRET_ID": "AKIDbench",
               "TENCENTCLOUD_API_SECRET_KEY": "bench-key"}  # fmt: skip
        state = self.root / f"operator-{variant}-{self.counter}"
        state.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "cfs_csi", "--log-level", "INFO", "operator", f"--kubeconfig={self.kubeconfig}",
                f"--namespace={NAMESPACE}", "--install-crd", "--backend=tencent", "--cfs-endpoint=http://127.0.0.1:9",
                "--region=ap-guangzhou", "--zone=ap-guangzhou-3", "--cluster-id=cls-bench",
                f"--state-dir={state}"]  # fmt: skip
        log = (state / "operator.log").open("wb")
        started = time.monotonic()
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait("the operator's Lease", lambda: self.lease_held("cfs-csi-operator") or process.poll() is not None,
                 120, 0.02)  # fmt: skip
            if process.poll() is not None:
                raise RuntimeError(f"operator exited: {(state / 'operator.log').read_text()[-3000:]}")
            held = time.monotonic() - started
            time.sleep(3)
            return held, rss_mb(process.pid)
        finally:
            stop_group(process, 20)
            with contextlib.suppress(ApiException):
                k8s.CoordinationV1Api(self.api).delete_namespaced_lease("cfs-csi-operator", NAMESPACE)


def table(runs: list[Run]) -> str:
    columns = [("bind s", "bind", 1), ("delete s", "delete", 1), ("first s", "first", 2),
               ("RSS idle MB", "rss_idle", 1), ("RSS after MB", "rss_after", 1),
               ("CPU ms/claim", "cpu_per_claim_ms", 1), ("calls/claim", "calls_per_claim", 2),
               ("calls/delete", "calls_per_delete", 2), ("404/delete", "not_found_per_delete", 2)]  # fmt: skip
    variants = list(dict.fromkeys(r.variant for r in runs))
    floor = [r for r in runs if r.variant == "floor"]
    lines = ["| variant | runs | " + " | ".join(c[0] for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]  # fmt: skip
    for variant in variants:
        mine = [r for r in runs if r.variant == variant]
        cells = []
        for _, attr, digits in columns:
            values = [getattr(r, attr) for r in mine]
            median = statistics.median(values)
            spread = f" ({min(values):.{digits}f}-{max(values):.{digits}f})" if len(values) > 1 else ""
            cells.append(f"{median:.{digits}f}{spread}")
        lines.append(f"| {variant} | {len(mine)} | " + " | ".join(cells) + " |")
    if floor:
        floor_bind = statistics.median(r.bind for r in floor)
        floor_delete = statistics.median(r.delete for r in floor)
        for variant in variants:
            if variant == "floor":
                continue
            mine = [r for r in runs if r.variant == variant]
            lines.append(f"\n{variant} vs floor: bind {statistics.median(r.bind for r in mine) / floor_bind:.3f}x, "
                         f"delete {statistics.median(r.delete for r in mine) / floor_delete:.3f}x")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per variant, alternated")
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="ours | floor | NAME=SOURCE_DIR (another tree's src/); default: ours and floor",
    )
    parser.add_argument("--entry", choices=("cli", "provisioner"), default="cli")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    parser.add_argument(
        "--operator",
        type=int,
        default=0,
        metavar="N",
        help="also start the operator N times per variant but floor: start to Lease, idle RSS",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run ours under cProfile (main thread only) and keep the profiles in this directory",
    )
    args = parser.parse_args()
    variants: list[tuple[str, Path | None]] = []
    for text in args.variant or ["ours", "floor"]:
        label, _, source = text.partition("=")
        variants.append((label, Path(source) if source else None))
    binaries = tools.ensure(cluster.CONTROL_PLANE_TOOLS)
    root = Path(tempfile.mkdtemp(prefix="cfs-shared-bench-"))
    plane = cluster.start(root / "plane", binaries)
    runs: list[Run] = []
    operators: dict[str, list[tuple[float, float]]] = {}
    try:
        bench = Bench(plane, root, args.claims)
        bench.profile = args.profile
        for index in range(args.runs):
            for label, source in variants:
                result = bench.run(label, source, args.entry)
                runs.append(result)
                print(f"[{datetime.now():%H:%M:%S}] run {index + 1} {label}: bind {result.bind:.1f}s delete "
                      f"{result.delete:.1f}s first {result.first:.2f}s RSS {result.rss_idle:.1f}/"
                      f"{result.rss_after:.1f} MB CPU {result.cpu_per_claim_ms:.1f} ms/claim ({result.cpu_bind_ms:.1f} "
                      f"binding) calls/delete "
                      f"{result.calls_per_delete:.2f} (404 {result.not_found_per_delete:.2f}) "
                      f"{dict(result.calls['delete'])}", flush=True)  # fmt: skip
        for index in range(args.operator):
            for label, source in variants:
                if label == "floor":
                    continue
                held, rss = bench.operator(label, source)
                operators.setdefault(label, []).append((held, rss))
                print(f"operator {index + 1} {label}: Lease held {held:.2f}s after start, idle RSS {rss:.1f} MB",
                      flush=True)  # fmt: skip
    finally:
        plane.stop()
        shutil.rmtree(root, ignore_errors=True)
    for label, figures in operators.items():
        starts, sizes = [f[0] for f in figures], [f[1] for f in figures]
        print(f"\noperator {label} ({len(figures)} starts): start to Lease {statistics.median(starts):.2f}s "
              f"({min(starts):.2f}-{max(starts):.2f}), idle RSS {statistics.median(sizes):.1f} MB "
              f"({min(sizes):.1f}-{max(sizes):.1f})")  # fmt: skip
    print(
        f"\nshared mode, {args.claims} claims, {args.runs} runs per variant, alternated; machine "
        f"{os.cpu_count()} CPUs, shared with other work\n"
    )
    print(table(runs))
    if args.json:
        args.json.write_text(json.dumps([{**r.__dict__, "calls": {k: dict(v) for k, v in r.calls.items()}}
                                         for r in runs], indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
