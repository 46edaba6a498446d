"""Dedicated-mode benchmark: 50 PVCs to Bound (and deleted again) through the real csi-provisioner, and the floor.

Starts the dev control plane once (etcd, kube-apiserver, kube-controller-manager from the cached Go tools), then
for each variant a fresh controller pod's worth of processes: our controller (and the CFS emulator for the
tencent backend) and the real csi-provisioner sidecar on its socket. It creates 50 PVCs of one class at once
(the admin client has no rate limit), times first create to last Bound, then deletes them all and times until
the last PV is gone. Variants:

- ``emulator-1s``: the tencent backend, the emulator taking 1 s to create a file system (as the e2e tests);
- ``emulator-0s``: the same with a zero create delay;
- ``local``: the local backend (a directory per volume): a controller that does next to nothing, so what is
  left is the floor set by csi-provisioner and the control plane;

each with csi-provisioner's client defaults (``--kube-api-qps=5 --kube-api-burst=10``) and with the limits the
chart sets (``--qps``/``--burst`` of this script). ``--worker-threads`` is left at its default (100 > 50).

Prints one JSON document with every run. Needs root only for nothing; the Go tools must be cached
(``cfs-csi dev-cluster tools``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller_load import Emulator, start_controller, start_emulator, tencent_flags
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from cfs_csi.devcluster import cluster, tools
from cfs_csi.devcluster.cluster import Process, spawn

DRIVER = "com.tencent.cloud.csi.cfs"
CLASS = "cfs-bench"
PVCS = 50


@dataclass
class Variant:
    backend: str  # "tencent" or "local"
    create_delay: float
    qps: float
    burst: int

    @property
    def name(self) -> str:
        cloud = f"emulator-{self.create_delay:g}s" if self.backend == "tencent" else "local"
        return f"{cloud} qps={self.qps:g} burst={self.burst}"


@dataclass
class Pod:
    """What one controller pod runs: our controller, csi-provisioner, and the emulator for the tencent backend."""

    root: Path
    controller: subprocess.Popen[bytes]
    provisioner: Process
    emulator: Emulator | None

    def stop(self) -> None:
        self.provisioner.stop()
        self.controller.send_signal(signal.SIGTERM)
        self.controller.wait(30)
        if self.emulator is not None:
            self.emulator.process.terminate()
            self.emulator.process.wait(15)
        shutil.rmtree(self.root, ignore_errors=True)


def start_pod(variant: Variant, provisioner_bin: Path, kubeconfig: Path) -> Pod:
    root = Path(tempfile.mkdtemp(prefix="cfs-ded-"))
    emulator = None
    if variant.backend == "tencent":
        emulator = start_emulator(root, variant.create_delay)
        backend = tencent_flags(emulator)
    else:
        backend = ["--backend", "local"]
    controller, sock, _ = start_controller(root, backend)
    provisioner = spawn("csi-provisioner", [
        str(provisioner_bin), f"--csi-address={sock}", f"--kubeconfig={kubeconfig}", "--timeout=120s",
        "--leader-election=false", "--v=2", f"--kube-api-qps={variant.qps:g}", f"--kube-api-burst={variant.burst}",
    ], root)  # fmt: skip
    return Pod(root, controller, provisioner, emulator)


def pvc(name: str) -> Any:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}},
                 "storageClassName": CLASS},
    }  # fmt: skip


def wait(what: str, condition: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return time.monotonic()


def one_run(core: k8s.CoreV1Api, variant: Variant, provisioner_bin: Path, kubeconfig: Path, run: int) -> dict[str, Any]:
    namespace = f"bench-{run}-{int(time.time() * 1000) % 10**8}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    pod = start_pod(variant, provisioner_bin, kubeconfig)
    try:
        time.sleep(2)  # csi-provisioner connects, reads the driver name and starts its informers
        started = time.monotonic()
        for index in range(PVCS):
            core.create_namespaced_persistent_volume_claim(namespace, pvc(f"claim-{index}"))
        created = time.monotonic()
        first_bound: list[float] = []

        def all_bound() -> bool:
            claims: list[Any] = core.list_namespaced_persistent_volume_claim(namespace).items
            phases = [p.status.phase for p in claims]
            if not first_bound and "Bound" in phases:
                first_bound.append(time.monotonic())
            return phases.count("Bound") == PVCS

        bound = wait("50 PVCs bound", all_bound, 300)
        claims: list[Any] = core.list_namespaced_persistent_volume_claim(namespace).items
        volumes = [p.spec.volume_name for p in claims]
        delete_started = time.monotonic()
        core.delete_collection_namespaced_persistent_volume_claim(namespace)

        def all_gone() -> bool:
            listed: list[Any] = core.list_persistent_volume().items
            remaining = {pv.metadata.name for pv in listed}
            return not remaining.intersection(volumes)

        gone = wait("their PVs deleted", all_gone, 300)
        return {
            "variant": variant.name,
            "creates_sent_s": round(created - started, 2),
            "first_bound_s": round(first_bound[0] - started, 2),
            "all_bound_s": round(bound - started, 2),
            "all_deleted_s": round(gone - delete_started, 2),
            "provisioner_restarts": 0 if pod.provisioner.alive() else 1,
        }
    finally:
        pod.stop()
        with contextlib.suppress(ApiException):
            core.delete_namespace(namespace)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="runs of every variant, interleaved")
    parser.add_argument("--qps", type=float, default=20, help="the raised --kube-api-qps to compare (the chart's)")
    parser.add_argument("--burst", type=int, default=40, help="the raised --kube-api-burst to compare (the chart's)")
    parser.add_argument("--variants", default="emulator-1s,emulator-0s,local", help="comma-separated subset")
    args = parser.parse_args()
    chosen = set(args.variants.split(","))
    clouds = [("tencent", 1.0, "emulator-1s"), ("tencent", 0.0, "emulator-0s"), ("local", 0.0, "local")]
    variants = [Variant(backend, delay, qps, burst) for backend, delay, key in clouds if key in chosen
                for qps, burst in ((5.0, 10), (args.qps, args.burst))]  # fmt: skip
    binaries = tools.ensure([*cluster.CONTROL_PLANE_TOOLS, "csi-provisioner"])
    plane = cluster.start(Path(tempfile.mkdtemp(prefix="cfs-ded-plane-")), binaries, remove_root=True)
    try:
        api = k8s_config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
        core, storage = k8s.CoreV1Api(api), k8s.StorageV1Api(api)
        csi_driver: Any = {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                           "metadata": {"name": DRIVER}, "spec": {"attachRequired": False}}  # fmt: skip
        storage.create_csi_driver(csi_driver)
        storage_class: Any = {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": CLASS},
            "provisioner": DRIVER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
            "parameters": {"vpcid": "vpc-oilua6pt", "subnetid": "subnet-rtwb42lu", "zone": "ap-guangzhou-3"},
        }  # fmt: skip
        storage.create_storage_class(storage_class)
        runs = []
        for run in range(args.runs):
            for variant in variants:
                result = one_run(core, variant, binaries["csi-provisioner"], plane.kubeconfig, run)
                print(json.dumps(result), file=sys.stderr, flush=True)
                runs.append(result)
    finally:
        plane.stop()
    summary = {}
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant.name]
        summary[variant.name] = {
            key: {"median": statistics.median(r[key] for r in mine), "min": min(r[key] for r in mine),
                  "max": max(r[key] for r in mine)}
            for key in ("first_bound_s", "all_bound_s", "all_deleted_s")
        }  # fmt: skip
    print(json.dumps({"pvcs": PVCS, "summary": summary, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
