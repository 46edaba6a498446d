"""The chart against the real API server.

- Every rendered object passes a server-side dry-run (the Tcfs CRD applied for real first).
- RBAC: each component runs for real with its service account's token (csi-provisioner and our controller,
  the operator, a sub-directory provisioner) through both provisioning modes. The API server's audit log records
  every call the account made; none may be refused, and every rule the chart grants must have been used (or be
  listed below with the reason the run cannot use it). What an account may do is read back by impersonating it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from cfs_csi.devcluster.cluster import ControlPlane
from tests.conftest import start_emulator
from tests.e2e.conftest import NAMESPACE, Kube, Operator, apply, pv_gone, start_dedicated, wait_for
from tests.e2e.test_chart_render import CURRENT, RELEASES, render
from tests.e2e.test_dedicated import bound, pvc_body, seed
from tests.e2e.test_operator import claim
from tests.e2e.test_subdir import Share

# Everything optional switched on, so that every template produces its objects.
FULL = {"examples.enabled": "true", "controller.replicas": "2", "cloud.credentials.secretId": "AKIDexample",
        "cloud.credentials.secretKey": "example-key"}  # fmt: skip
# API versions of old releases that this (current) API server no longer serves.
UNSERVED = {
    "1.13.0": {("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition")},
    "1.16.0": {("storage.k8s.io/v1beta1", "CSIDriver")},
    "1.20.0": set(),
    CURRENT: set(),
}
SEED_TCFS = {
    "apiVersion": "tcfsoperator.k8s.io/v1alpha1", "kind": "Tcfs",
    "metadata": {"name": "cfs-share", "namespace": NAMESPACE},
    "spec": {"pgroupid": "pgroup-lrquouvl", "provisionername": "com.tencent.cloud.csi.tcfs.cfs-share",
             "reclaimpolicy": "Retain", "storagetype": "SD", "subnetid": "subnet-rtwb42lu", "vpcid": "vpc-oilua6pt",
             "zone": "ap-guangzhou-3"},
}  # fmt: skip

Rule = tuple[str, str, str]  # (API group, resource[/subresource], verb)


def sa_user(name: str) -> str:
    return f"system:serviceaccount:{NAMESPACE}:{name}"


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_every_rendered_object_passes_a_server_side_dry_run(
    crd: None, dynamic: DynamicClient, helm: Path, release: str
) -> None:
    objects = render(helm, release, **{k.replace(".", "__"): v for k, v in FULL.items()})
    unserved = set()
    for body in objects:
        try:
            applied = apply(dynamic, body, dry_run=True)
        except ResourceNotFoundError:
            unserved.add((body["apiVersion"], body["kind"]))
            continue
        assert applied.metadata.name == body["metadata"]["name"]
    assert unserved == UNSERVED[release]
    assert apply(dynamic, SEED_TCFS, dry_run=True).spec.provisionername == SEED_TCFS["spec"]["provisionername"]


# --- RBAC -------------------------------------------------------------------------------------------------------

# Rules the chart grants that the run below cannot exercise, each with the reason it is granted anyway.
REPEATED_EVENT = "the event recorder patches the count of an event that repeats (a claim that keeps failing)"
EARLIER_WARNING = ("a restarted operator or provisioner looks for the warning it posted before (once per warning); "
                   "the run posts no warning")  # fmt: skip
RESIZER = "csi-resizer (on by default) cannot run here: its module is not served by the Go module proxy"
UNEXERCISED: dict[str, dict[Rule, str]] = {
    "cfs-csi-controller": {
        ("", "events", "patch"): REPEATED_EVENT,
        ("", "events", "list"): EARLIER_WARNING,
        ("", "persistentvolumeclaims", "update"): "csi-provisioner takes the selected node off a "
        "WaitForFirstConsumer claim it could not provision there",
        ("apps", "deployments", "delete"): "the operator stops the provisioner of a file system the cloud says is gone",
        ("", "persistentvolumeclaims", "delete"): "the operator removes the share claim of a previous file system",
        ("tcfsoperator.k8s.io", "tcfs", "patch"): "the operator removes the finalizer the kopf-based operator left on "
        "Tcfs objects it made (an upgrade from it)",
        ("", "persistentvolumeclaims/status", "patch"): RESIZER,
        ("", "pods", "list"): RESIZER,
        ("", "pods", "watch"): RESIZER,
        ("tcfsoperator.k8s.io", "tcfs/finalizers", "update"): "not a call but an admission check: with "
        "OwnerReferencesPermissionEnforcement (on in the test API server) the operator's Deployment is refused "
        "without it",
    },
    "cfs-csi-subdir-provisioner": {("", "events", "patch"): REPEATED_EVENT, ("", "events", "list"): EARLIER_WARNING},
    "cfs-csi-node": {},  # no API access at all
}


# Rules granted cluster-wide for a component the run cannot start, that another one uses in its own namespace only.
CLUSTER_WIDE_FOR_OTHERS: dict[str, set[Rule]] = {
    # csi-resizer reads claims everywhere; the operator reads only its share claims, in its own namespace.
    "cfs-csi-controller": {("", "persistentvolumeclaims", "get")},
}


def token_kubeconfig(kube: Kube, plane: ControlPlane, account: str, path: Path) -> Path:
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    token = kube.core.create_namespaced_service_account_token(account, NAMESPACE, request).status.token
    cluster = {"server": plane.server, "certificate-authority": str(plane.pki.ca_cert)}
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "dev", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "dev", "user": account}}],
    }))  # fmt: skip
    return path


def granted(plane: ControlPlane, user: str, namespace: str) -> set[Rule]:
    """What ``user`` may do in ``namespace``, read by impersonating it (SelfSubjectRulesReview)."""
    api = k8s_config.new_client_from_config(config_file=str(plane.kubeconfig))
    api.set_default_header("Impersonate-User", user)
    review = k8s.V1SelfSubjectRulesReview(spec=k8s.V1SelfSubjectRulesReviewSpec(namespace=namespace))
    status = k8s.AuthorizationV1Api(api).create_self_subject_rules_review(review).status
    assert not status.incomplete, status.evaluation_error
    return {(g, r, v) for rule in status.resource_rules for g in rule.api_groups or [""]
            for r in rule.resources or [] for v in rule.verbs}  # fmt: skip


def audited_calls(plane: ControlPlane, user: str) -> list[dict[str, Any]]:
    calls = []
    for line in plane.audit_log.read_text().splitlines():
        event = json.loads(line)
        if event["user"]["username"] == user and "impersonatedUser" not in event and event.get("objectRef"):
            ref = event["objectRef"]
            resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            calls.append({"rule": (ref.get("apiGroup", ""), resource, event["verb"]),
                          "namespace": ref.get("namespace", ""), "code": event["responseStatus"]["code"]})  # fmt: skip
    return calls


@pytest.fixture(scope="module")
def accounts(kube: Kube, dynamic: DynamicClient, helm: Path, crd: None) -> Iterator[None]:
    """The chart's service accounts and RBAC, applied for real (plus a bare account: the baseline)."""
    kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    bodies = [o for o in render(helm) if o["kind"] in kinds]
    bodies.append(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody", "namespace": NAMESPACE}}
    )
    for body in bodies:
        apply(dynamic, body, dry_run=False)
    yield
    for body in reversed(bodies):
        dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"]).delete(
            name=body["metadata"]["name"], namespace=body["metadata"].get("namespace"))  # fmt: skip


def container_image(kube: Kube, name: str) -> str:
    image: str = kube.apps.read_namespaced_deployment(name, NAMESPACE).spec.template.spec.containers[0].image
    return image


@pytest.fixture(scope="module")
def exercised(
    accounts: None, kube: Kube, control_plane: ControlPlane, go_tools: dict[str, Path]
) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Run every component as its service account through both modes; return each account's audited calls."""
    root = Path(tempfile.mkdtemp(prefix="cfs-rbac-"))
    controller_kc = token_kubeconfig(kube, control_plane, "cfs-csi-controller", root / "controller.kubeconfig")
    subdir_kc = token_kubeconfig(kube, control_plane, "cfs-csi-subdir-provisioner", root / "subdir.kubeconfig")
    namespace = kube.namespace("rbac")
    for lease in ("cfs-csi-operator", "com.tencent.cloud.csi.tcfs.rbac-share"):  # so that creating them is seen too
        with contextlib.suppress(ApiException):
            k8s.CoordinationV1Api(kube.api).delete_namespaced_lease(lease, NAMESPACE)

    # Dedicated mode: csi-provisioner + our controller.
    dedicated = start_dedicated(go_tools, controller_kc)
    try:
        sc = seed("storageclass-cfs-normal.yaml")
        sc["metadata"]["name"] = "rbac-normal"
        kube.create(sc)
        kube.create(pvc_body("dedicated", namespace, "rbac-normal"))
        pvc = wait_for("the dedicated claim bound", lambda: bound(kube, namespace, "dedicated"), timeout=90)
        kube.core.delete_namespaced_persistent_volume_claim("dedicated", namespace)
        wait_for("its PV deleted", lambda: pv_gone(kube, pvc.spec.volume_name), timeout=90)
        kube.storage.delete_storage_class("rbac-normal")
    finally:
        dedicated.stop()

    # Shared mode: the operator (controller account) and a sub-directory provisioner (its own account).
    emulator = start_emulator(root, "--create-delay", "0.5")
    operator = Operator(root, control_plane, emulator, kubeconfig=controller_kc)
    share = None
    try:
        share = Share(kube, operator, root, "rbac-share", reclaim="Delete")
        share.start_provisioner(subdir_kc)
        kube.create(claim("shared", "rbac-share", namespace))
        pvc = wait_for("the shared claim bound", lambda: bound(kube, namespace, "shared"), timeout=90)
        kube.core.delete_namespaced_persistent_volume_claim("shared", namespace)
        wait_for("its PV deleted", lambda: pv_gone(kube, pvc.spec.volume_name), timeout=90)
        # An upgrade to another image: the operator replaces the provisioner Deployment.
        operator.process.stop()
        operator.image = "cfs-csi:upgraded"
        operator.process = operator.start()
        wait_for("the Deployment replaced", lambda: container_image(kube, share.provisioner_name) == operator.image,
                 timeout=60)  # fmt: skip
    finally:
        if share is not None:
            share.stop()
        operator.process.stop()
        print("--- operator log (tail) ---\n" + operator.process.tail(40))
        emulator.stop()
        shutil.rmtree(root, ignore_errors=True)
    yield {account: audited_calls(control_plane, sa_user(account)) for account in UNEXERCISED}


@pytest.mark.parametrize("account", sorted(UNEXERCISED))
def test_each_account_may_make_exactly_the_calls_its_component_makes(
    exercised: dict[str, list[dict[str, Any]]], control_plane: ControlPlane, account: str
) -> None:
    calls = exercised[account]
    refused = sorted({(c["rule"], c["namespace"]) for c in calls if c["code"] == 403})
    assert not refused, f"{account} was refused: {refused}"

    baseline = granted(control_plane, sa_user("nobody"), "default")
    cluster_wide = granted(control_plane, sa_user(account), "default") - baseline
    own_namespace = granted(control_plane, sa_user(account), NAMESPACE) - baseline - cluster_wide
    used_anywhere = {c["rule"] for c in calls}
    used_beyond_own = {c["rule"] for c in calls if c["namespace"] != NAMESPACE}
    unused = {rule for rule in cluster_wide | own_namespace if rule not in used_anywhere}
    assert unused == set(UNEXERCISED[account]), f"granted but never used by {account}: {sorted(unused)}"
    narrower = {rule for rule in cluster_wide - used_beyond_own - CLUSTER_WIDE_FOR_OTHERS.get(account, set())
                if rule in used_anywhere}  # fmt: skip
    assert not narrower, f"{account} uses these only in {NAMESPACE}; a Role would do: {sorted(narrower)}"
