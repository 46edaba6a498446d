"""Issue 11, finding 14, for the shared-mode components: the operator and the sub-directory provisioner run at
``--log-level DEBUG`` with service-account tokens (as in a pod), the operator's cloud keys come from the CVM
instance role with a session token, and a share is prepared and a claim provisioned and deleted. No output of
any process shows a cloud secret id, key, session token, request signature or Kubernetes token.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from cfs_csi.devcluster.cluster import ControlPlane, Process, spawn
from tests.conftest import SECRET_ID, SECRET_KEY, start_emulator
from tests.cvm_metadata import instance_role, leaks
from tests.e2e.conftest import NAMESPACE, Kube, delete_every_tcfs, pv_gone, wait_for
from tests.e2e.test_operator import claim, delete_class, deployment, ready_tcfs, share_class

ROLE = "cfs-csi-e2e-role"
SESSION_TOKEN = "tok" + secrets.token_urlsafe(96)
ACCOUNT = "cfs-csi-log-test"
CLASS = "logs-share"


@pytest.fixture
def account_kubeconfig(kube: Kube, control_plane: ControlPlane) -> Iterator[tuple[Path, str]]:
    """A kubeconfig with a service-account token (bound to cluster-admin: what is checked here is the logs,
    RBAC is test_chart_apiserver's), and the token."""
    root = Path(tempfile.mkdtemp(prefix="cfs-logs-sa-"))
    kube.core.create_namespaced_service_account(
        NAMESPACE, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=ACCOUNT))
    )
    binding = k8s.V1ClusterRoleBinding(
        metadata=k8s.V1ObjectMeta(name=ACCOUNT),
        role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
        subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=ACCOUNT, namespace=NAMESPACE)],
    )
    k8s.RbacAuthorizationV1Api(kube.api).create_cluster_role_binding(binding)
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    token: str = kube.core.create_namespaced_service_account_token(ACCOUNT, NAMESPACE, request).status.token
    path = root / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "dev", "cluster": {"server": control_plane.server,
                                                 "certificate-authority": str(control_plane.pki.ca_cert)}}],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "dev", "user": ACCOUNT}}],
    }))  # fmt: skip
    try:
        yield path, token
    finally:
        k8s.RbacAuthorizationV1Api(kube.api).delete_cluster_role_binding(ACCOUNT)
        kube.core.delete_namespaced_service_account(ACCOUNT, NAMESPACE)
        shutil.rmtree(root, ignore_errors=True)


def _bound(kube: Kube, name: str) -> k8s.V1PersistentVolumeClaim | None:
    pvc = kube.core.read_namespaced_persistent_volume_claim(name, "default")
    return pvc if pvc.status.phase == "Bound" else None


def _claim_gone(kube: Kube, name: str) -> bool:
    try:
        kube.core.read_namespaced_persistent_volume_claim(name, "default")
    except ApiException as exc:
        return exc.status == 404
    return False


def test_operator_and_provisioner_debug_logs_hold_no_credential(
    kube: Kube, account_kubeconfig: tuple[Path, str]
) -> None:
    kubeconfig, kube_token = account_kubeconfig
    root = Path(tempfile.mkdtemp(prefix="cfs-logs-"))
    emulator = start_emulator(root, "--log-level", "DEBUG", "--session-token", SESSION_TOKEN, "--create-delay", "0.3")
    processes: list[Process] = []
    try:
        with instance_role(ROLE, SECRET_ID, SECRET_KEY, SESSION_TOKEN) as metadata_url:
            processes.append(spawn("operator", [
                sys.executable, "-m", "cfs_csi", "--log-level", "DEBUG", "operator", f"--kubeconfig={kubeconfig}",
                f"--namespace={NAMESPACE}", "--install-crd", "--provisioner-image=cfs-csi:test", "--backend=tencent",
                f"--cfs-endpoint={emulator.url}", "--region=ap-guangzhou", "--zone=ap-guangzhou-3",
                "--cluster-id=cls-test", "--cloud-poll-interval=0.3", f"--state-dir={root}",
                f"--metadata-url={metadata_url}",
            ], root))  # fmt: skip
            body = share_class(CLASS)
            body["reclaimPolicy"] = "Delete"
            kube.create(body)
            kube.create(claim(f"{CLASS}-trigger", CLASS))
            status = wait_for("the share's Tcfs Ready", lambda: ready_tcfs(kube, CLASS), timeout=120)["status"]
            provisioner = f"com.tencent.cloud.csi.tcfs.{CLASS}"
            container = wait_for("its Deployment", lambda: deployment(kube, provisioner)).spec.template.spec.containers[
                0
            ]
            env = {e.name: e.value for e in container.env if e.value is not None}
            # The pod would have the share mounted here: the emulator's directory of the file system.
            env["SHARE_MOUNT_PATH"] = str(emulator.export_root / status["cfsserver"] / status["cfsfilesystemid"])
            processes.append(spawn("provisioner", [
                sys.executable, "-m", "cfs_csi", "--log-level", "DEBUG", "subdir-provisioner",
                f"--kubeconfig={kubeconfig}", f"--namespace={NAMESPACE}",
            ], root, env={**env, "POD_NAMESPACE": NAMESPACE}))  # fmt: skip
            kube.create(claim("logs-1", CLASS))
            pv_name = wait_for("logs-1 bound", lambda: _bound(kube, "logs-1"), timeout=90).spec.volume_name
            kube.core.delete_namespaced_persistent_volume_claim("logs-1", "default")
            wait_for("logs-1 and its PV deleted", lambda: _claim_gone(kube, "logs-1") and pv_gone(kube, pv_name),
                     timeout=90)  # fmt: skip
    finally:
        for process in processes:
            process.stop()
        emulator.stop()
        delete_class(kube, CLASS)
        delete_every_tcfs(kube)
    try:
        assert emulator.process.stdout is not None
        outputs = {process.name: process.log.read_text(errors="replace") for process in processes}
        outputs["emulator stderr"] = (root / "emulator.log").read_text(errors="replace")
        outputs["emulator stdout"] = emulator.process.stdout.read()
        credentials = {"secret id": SECRET_ID, "secret key": SECRET_KEY, "session token": SESSION_TOKEN,
                       "service-account token": kube_token, "its signature": kube_token.rsplit(".", 1)[-1]}  # fmt: skip
        assert {name: leaks(text, credentials) for name, text in outputs.items()} == {name: [] for name in outputs}

        # The operator really used the role (and the SDK logged its requests, redacted); both ran at DEBUG.
        operator = outputs["operator"].lower()
        assert f"credentials from cvm instance role {ROLE}" in operator
        assert "x-tc-action: createcfsfilesystem" in operator and "x-tc-token: [redacted]" in operator
        assert " DEBUG " in outputs["provisioner"] and "logs-1" in outputs["provisioner"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
