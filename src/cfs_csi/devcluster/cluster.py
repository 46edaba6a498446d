"""Start etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, and tear them down again.

Everything lives under one directory (certificates, etcd data, logs, kubeconfig); processes are stopped by
pid, in reverse order, even when the caller's test failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from cfs_csi.devcluster.pki import Pki, create_pki

log = logging.getLogger(__name__)

CONTROL_PLANE_TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def spawn(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Process:
    """Start ``argv`` in its own process group with output in ``<log_dir>/<name>.log``."""
    log_path = log_dir / f"{name}.log"
    out: IO[bytes]
    with log_path.open("ab") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env={**os.environ, **(env or {})})  # fmt: skip
    return Process(name, popen, log_path)


@dataclass
class ControlPlane:
    root: Path
    server: str
    kubeconfig: Path
    pki: Pki
    processes: list[Process] = field(default_factory=list)
    remove_root: bool = False

    @property
    def audit_log(self) -> Path:
        """JSON lines, one per request made with a service-account token (see :data:`AUDIT_POLICY`)."""
        return self.root / "logs" / "audit.log"

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.remove_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def check(self) -> None:
        """Raise if a component died (with the end of its log)."""
        for process in self.processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited ({process.popen.returncode}):\n{process.tail()}")


# Audit only what service accounts do: that is how tests learn which calls a component really makes, without
# logging the much larger traffic of the admin and controller-manager certificates.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


def write_kubeconfig(path: Path, server: str, pki: Pki, cert: Path, key: Path, user: str) -> None:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: dev\n  cluster:\n    server: {server}\n    certificate-authority: {pki.ca_cert}\n"
        f"users:\n- name: {user}\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n"
        f"contexts:\n- name: dev\n  context:\n    cluster: dev\n    user: {user}\n"
        "current-context: dev\n"
    )


def _wait(what: str, ready: object, process: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited while starting:\n{process.tail()}")
        try:
            if callable(ready) and ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s:\n{process.tail()}")


def start(root: Path, tools: dict[str, Path], timeout: float = 180, remove_root: bool = False) -> ControlPlane:
    """Start the control plane under ``root``; on any failure everything started is stopped again."""
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    pki = create_pki(root / "pki")
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    plane = ControlPlane(root, server, root / "admin.kubeconfig", pki, remove_root=remove_root)
    try:
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = spawn("etcd", [
            str(tools["etcd"]), "--name=dev", f"--data-dir={root / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=dev=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level=warn",
        ], logs)  # fmt: skip
        plane.processes.append(etcd)
        _wait("etcd", lambda: httpx.get(f"{etcd_url}/health", timeout=2).status_code == 200, etcd, timeout)

        audit_policy = root / "audit-policy.yaml"
        audit_policy.write_text(AUDIT_POLICY)
        apiserver = spawn("kube-apiserver", [
            str(tools["kube-apiserver"]), f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", f"--secure-port={api_port}", "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none", f"--cert-dir={root / 'apiserver'}",
            f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            # Node first, as real clusters run it: a kubelet (devcluster.node) acts as system:node:<name>.
            "--authorization-mode=Node,RBAC", "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",  # as every real cluster runs it: CSI node plugins are privileged
            # As hardened clusters run it: an owner reference that blocks the owner's deletion needs the right
            # to update the owner's finalizers, which RBAC tests must then show.
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement,NodeRestriction",
            # How the API server reaches a kubelet for logs and exec: by the address the node reports (127.0.0.1),
            # verifying the kubelet's serving certificate and presenting its own client certificate.
            f"--kubelet-client-certificate={pki.kubelet_client_cert}", f"--kubelet-client-key={pki.kubelet_client_key}",
            f"--kubelet-certificate-authority={pki.ca_cert}", "--kubelet-preferred-address-types=InternalIP",
            "--enable-priority-and-fairness=false", "--profiling=false", "--v=1",
            f"--audit-policy-file={audit_policy}", f"--audit-log-path={plane.audit_log}", "--audit-log-mode=blocking",
        ], logs)  # fmt: skip
        plane.processes.append(apiserver)
        write_kubeconfig(plane.kubeconfig, server, pki, pki.admin_cert, pki.admin_key, "admin")

        tls = ssl.create_default_context(cafile=str(pki.ca_cert))
        tls.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))

        def api_ready() -> bool:
            return httpx.get(f"{server}/readyz", timeout=3, verify=tls).status_code == 200

        _wait("kube-apiserver", api_ready, apiserver, timeout)

        kcm_config = root / "kcm.kubeconfig"
        write_kubeconfig(kcm_config, server, pki, pki.controller_manager_cert, pki.controller_manager_key, "kcm")
        plane.processes.append(spawn("kube-controller-manager", [
            str(tools["kube-controller-manager"]), f"--kubeconfig={kcm_config}",
            f"--authentication-kubeconfig={kcm_config}", f"--authorization-kubeconfig={kcm_config}",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0",
            f"--service-account-private-key-file={pki.service_account_key}", f"--root-ca-file={pki.ca_cert}",
            "--use-service-account-credentials=false", "--controllers=*", "--v=1",
        ], logs))  # fmt: skip
        time.sleep(1)
        plane.check()
    except BaseException:
        plane.stop()
        raise
    log.info("control plane up: %s (kubeconfig %s)", server, plane.kubeconfig)
    return plane
