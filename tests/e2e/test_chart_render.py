"""The Helm chart, rendered by the real helm for the Kubernetes releases the seed's deployment spans."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cfs_csi.devcluster import helm as chart
from tests.e2e.conftest import EXAMPLES

CURRENT = "1.37.2"
COMMON = {
    ("v1", "ServiceAccount", "cfs-csi-controller"),
    ("v1", "ServiceAccount", "cfs-csi-node"),
    ("v1", "ServiceAccount", "cfs-csi-subdir-provisioner"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "cfs-csi-controller"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "cfs-csi-controller"),
    ("rbac.authorization.k8s.io/v1", "Role", "cfs-csi-controller"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "cfs-csi-controller"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "cfs-csi-subdir-provisioner"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "cfs-csi-subdir-provisioner"),
    ("rbac.authorization.k8s.io/v1", "Role", "cfs-csi-subdir-provisioner"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "cfs-csi-subdir-provisioner"),
    ("apps/v1", "Deployment", "csi-provisioner-cfsplugin"),
    ("apps/v1", "DaemonSet", "csi-nodeplugin-cfsplugin"),
}
ATTACHER = {
    ("v1", "ServiceAccount", "cfs-csi-attacher"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "cfs-csi-attacher"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "cfs-csi-attacher"),
    ("apps/v1", "Deployment", "csi-attacher-cfsplugin"),
}
CRD_V1BETA1 = ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", "tcfs.tcfsoperator.k8s.io")
CRD_V1 = ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "tcfs.tcfsoperator.k8s.io")
DRIVER = "com.tencent.cloud.csi.cfs"
SIDECAR_RBAC = {
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "cfs-csi-controller-sidecars"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "cfs-csi-controller-sidecars"),
}

# Kubernetes release -> (objects beyond COMMON, csi-provisioner image tag, CSIDriver spec or None)
RELEASES: dict[str, tuple[set[tuple[str, str, str]], str, dict[str, Any] | None]] = {
    "1.13.0": (ATTACHER | {CRD_V1BETA1}, "v1.6.0", None),
    "1.16.0": (
        {CRD_V1, ("storage.k8s.io/v1beta1", "CSIDriver", DRIVER)} | SIDECAR_RBAC,
        "v1.6.0",
        {"attachRequired": False, "podInfoOnMount": False, "volumeLifecycleModes": ["Persistent"]},
    ),
    # None: the seed's spec
    "1.20.0": ({CRD_V1, ("storage.k8s.io/v1", "CSIDriver", DRIVER)} | SIDECAR_RBAC, "v6.4.0", None),
    CURRENT: ({CRD_V1, ("storage.k8s.io/v1", "CSIDriver", DRIVER)} | SIDECAR_RBAC, "v6.4.0", None),
}


def render(helm: Path, kube: str | None = CURRENT, **values: str) -> list[dict[str, Any]]:
    return chart.objects(chart.template(helm, kube, {k.replace("__", "."): v for k, v in values.items()}))


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod(owner: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = owner["spec"]["template"]["spec"]
    return spec


def container(owner: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in pod(owner)["containers"] if c["name"] == name]
    return found


def seed_csidriver_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / "csidriver.yaml").read_text())["spec"]
    return spec


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_each_release_gets_its_objects_api_versions_and_sidecars(helm: Path, release: str) -> None:
    extra, provisioner_tag, driver_spec = RELEASES[release]
    objects = render(helm, release)
    assert {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects} == COMMON | extra
    controller = one(objects, "Deployment", "csi-provisioner-cfsplugin")
    assert container(controller, "csi-provisioner")["image"].endswith(f"/csi-provisioner:{provisioner_tag}")
    drivers = [o for o in objects if o["kind"] == "CSIDriver"]
    if drivers:
        assert drivers[0]["spec"] == (driver_spec or seed_csidriver_spec())
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "CSIDriver"}
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] not in cluster_scoped} == {"kube-system"}


def test_current_csidriver_is_the_seeds_object(helm: Path) -> None:
    driver = one(render(helm), "CSIDriver", DRIVER)
    seed = yaml.safe_load((EXAMPLES / "csidriver.yaml").read_text())
    assert (driver["apiVersion"], driver["spec"]) == (seed["apiVersion"], seed["spec"])
    assert driver["spec"] == {
        "attachRequired": False, "fsGroupPolicy": "File", "podInfoOnMount": False, "requiresRepublish": False,
        "storageCapacity": False, "volumeLifecycleModes": ["Persistent"],
    }  # fmt: skip
    assert one(render(helm, csiDriver__fsGroupPolicy="None"), "CSIDriver", DRIVER)["spec"]["fsGroupPolicy"] == "None"


def test_the_old_crd_serves_the_same_resource(helm: Path) -> None:
    old = one(render(helm, "1.13.0"), "CustomResourceDefinition", "tcfs.tcfsoperator.k8s.io")["spec"]
    new = one(render(helm), "CustomResourceDefinition", "tcfs.tcfsoperator.k8s.io")["spec"]
    assert (old["group"], old["names"], old["scope"]) == (new["group"], new["names"], new["scope"])
    [version] = new["versions"]
    assert old["version"] == version["name"] and old["subresources"] == version["subresources"]
    new_spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    old_spec = old["validation"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert set(old_spec) == set(new_spec)
    for name, field in old_spec.items():
        assert field.get("enum") == new_spec[name].get("enum"), name


def test_manifests_are_the_default_render(helm: Path) -> None:
    assert chart.MANIFEST.read_text() == chart.manifest(helm), "run python scripts/render_manifests.py"


def test_examples_are_the_seeds_objects(helm: Path) -> None:
    kinds = {"StorageClass", "PersistentVolumeClaim", "VolumeSnapshotClass"}
    rendered = [o for o in render(helm, examples__enabled="true") if o["kind"] in kinds]
    files = ["storageclass-cfs-normal", "storageclass-cfs-share", "pvc-cfs-normal", "pvc-cfs-share-1"]
    assert rendered == [yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()) for name in files]
    assert not [o for o in render(helm) if o["kind"] in kinds]
    with_snapshots = render(helm, examples__enabled="true", controller__snapshotter="true")
    [snapshot_class] = [o for o in with_snapshots if o["kind"] == "VolumeSnapshotClass"]
    assert snapshot_class == yaml.safe_load((EXAMPLES / "volumesnapshotclass-cfs.yaml").read_text())
    assert all(o["allowVolumeExpansion"] is True for o in rendered if o["kind"] == "StorageClass")


@pytest.mark.parametrize(
    ("release", "resizer", "snapshotter"),
    [
        ("1.13.0", None, None),  # no CSI expansion, no snapshots: neither sidecar
        ("1.16.0", "v2.2.1", None),
        ("1.20.0", "v2.2.1", "v6.3.1"),
        (CURRENT, "v2.2.1", "v8.7.0"),
    ],
)
def test_resizer_and_snapshotter_sidecars_follow_the_release(
    helm: Path, release: str, resizer: str | None, snapshotter: str | None
) -> None:
    objects = render(helm, release, controller__snapshotter="true")
    controller = one(objects, "Deployment", "csi-provisioner-cfsplugin")
    images = {c["name"]: c["image"].rsplit(":", 1)[1] for c in pod(controller)["containers"]}
    assert images.get("csi-resizer") == resizer
    assert images.get("csi-snapshotter") == snapshotter
    roles = [o for o in objects if (o["kind"], o["metadata"]["name"]) == ("ClusterRole", "cfs-csi-controller-sidecars")]
    groups = {group for role in roles for rule in role["rules"] for group in rule["apiGroups"]}
    assert ("snapshot.storage.k8s.io" in groups) is (snapshotter is not None)
    assert bool(roles) is (resizer is not None or snapshotter is not None)
    for name in ("csi-resizer", "csi-snapshotter"):
        if name in images:
            args = container(controller, name)["args"]
            assert args == ["--csi-address=/csi/csi.sock", "--timeout=120s", "--v=2"]


def test_sidecars_can_be_left_out_and_elect_a_leader_with_more_replicas(helm: Path) -> None:
    objects = render(helm, controller__resizer="false")
    names = [c["name"] for c in pod(one(objects, "Deployment", "csi-provisioner-cfsplugin"))["containers"]]
    assert names == ["csi-provisioner", "csi-cfs", "tcfs-operator"]
    assert not [o for o in objects if o["metadata"]["name"] == "cfs-csi-controller-sidecars"]
    objects = render(helm, controller__snapshotter="true", controller__replicas="2")
    controller = one(objects, "Deployment", "csi-provisioner-cfsplugin")
    for name in ("csi-resizer", "csi-snapshotter"):
        assert container(controller, name)["args"][-2:] == [
            "--leader-election", "--leader-election-namespace=$(POD_NAMESPACE)"]  # fmt: skip


def test_controller_pod(helm: Path) -> None:
    controller = one(render(helm), "Deployment", "csi-provisioner-cfsplugin")
    spec = pod(controller)
    assert [c["name"] for c in spec["containers"]] == ["csi-provisioner", "csi-resizer", "csi-cfs", "tcfs-operator"]
    assert spec["serviceAccountName"] == "cfs-csi-controller"
    assert spec["securityContext"]["runAsNonRoot"] is True
    for c in spec["containers"]:
        assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    sidecar = container(controller, "csi-provisioner")["args"]
    assert "--csi-address=/csi/csi.sock" in sidecar and "--timeout=120s" in sidecar
    assert not [a for a in sidecar if "leader-election" in a]  # one replica: nothing to elect
    plugin = container(controller, "csi-cfs")["args"]
    assert plugin[:3] == ["serve", "--component=controller", "--endpoint=unix:///csi/csi.sock"]
    assert "--backend=tencent" in plugin and "--no-probe-cloud" in plugin  # liveness must not hang on the cloud
    assert "--delete-vendor-volumes" not in plugin  # the vendor driver's file systems are refused by default
    # Our controller serves the liveness check itself: no livenessprobe sidecar.
    assert container(controller, "csi-cfs")["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container(controller, "csi-cfs")["ports"] == [{"name": "healthz", "containerPort": 9808}]
    assert "--health-port=9808" in plugin
    operator = container(controller, "tcfs-operator")["args"]
    assert operator[0] == "operator" and "--provisioner-image=cfs-csi:0.1.0" in operator
    assert "--provisioner-service-account=cfs-csi-subdir-provisioner" in operator
    sockets = {c["name"]: [m["mountPath"] for m in c.get("volumeMounts", [])] for c in spec["containers"]}
    assert all("/csi" in sockets[name] for name in ("csi-provisioner", "csi-cfs"))
    without = one(render(helm, controller__livenessProbe="false"), "Deployment", "csi-provisioner-cfsplugin")
    unchecked = container(without, "csi-cfs")
    assert "livenessProbe" not in unchecked and "--health-port=9808" not in unchecked["args"]


@pytest.mark.parametrize(
    ("release", "flags", "endpoints_rule"),
    [
        ("1.16.0", ["--enable-leader-election"], True),
        ("1.19.0", ["--leader-election", "--leader-election-namespace=$(POD_NAMESPACE)"], False),
        (CURRENT, ["--leader-election", "--leader-election-namespace=$(POD_NAMESPACE)"], False),
    ],
)
def test_more_than_one_controller_replica_elects_a_leader(
    helm: Path, release: str, flags: list[str], endpoints_rule: bool
) -> None:
    objects = render(helm, release, controller__replicas="2")
    args = container(one(objects, "Deployment", "csi-provisioner-cfsplugin"), "csi-provisioner")["args"]
    assert [a for a in args if "leader-election" in a] == flags
    role = one(objects, "Role", "cfs-csi-controller")
    assert any("endpoints" in rule["resources"] for rule in role["rules"]) is endpoints_rule


def test_node_plugin_pod(helm: Path) -> None:
    node = one(render(helm), "DaemonSet", "csi-nodeplugin-cfsplugin")
    spec = pod(node)
    assert (spec["serviceAccountName"], spec["automountServiceAccountToken"], spec["hostNetwork"]) == (
        "cfs-csi-node", False, True,
    )  # fmt: skip
    assert spec["tolerations"] == [{"operator": "Exists"}]
    # The kubelet's SIGKILL comes after the plugin's own drain (--grace, 30 s) and its kill of leftover commands.
    assert spec["terminationGracePeriodSeconds"] > 30 and "--grace" not in " ".join(container(node, "csi-cfs")["args"])
    # Only our container: it registers itself with the kubelet and serves its own liveness check.
    assert [c["name"] for c in spec["containers"]] == ["csi-cfs"]
    plugin = container(node, "csi-cfs")
    assert plugin["args"][:3] == ["serve", "--component=node", "--mounter=nfs"]
    assert "--kubelet-registration-path=/var/lib/kubelet/plugins/com.tencent.cloud.csi.cfs/csi.sock" in plugin["args"]
    assert "--endpoint=unix:///csi/csi.sock" in plugin["args"] and "--health-port=29653" in plugin["args"]
    assert "--no-register" not in plugin["args"]
    assert plugin["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert plugin["ports"] == [{"name": "healthz", "containerPort": 29653}]
    assert plugin["securityContext"]["privileged"] is True
    mounts = {m["mountPath"]: m for m in plugin["volumeMounts"]}
    assert mounts["/var/lib/kubelet/pods"]["mountPropagation"] == "Bidirectional"
    # The plugin makes <kubelet dir>/plugins_registry/<driver>-reg.sock; /csi is the host's plugin directory.
    assert {path: m["name"] for path, m in mounts.items()} == {
        "/csi": "plugin-dir", "/var/lib/kubelet/pods": "pods-mount-dir",
        "/var/lib/kubelet/plugins_registry": "registration-dir",
    }  # fmt: skip
    # The plugin acts only below the pods directory it is given, which is the one mounted into it.
    assert "--kubelet-dir=/var/lib/kubelet" in plugin["args"]
    volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    assert volumes == {
        "plugin-dir": "/var/lib/kubelet/plugins/com.tencent.cloud.csi.cfs",
        "registration-dir": "/var/lib/kubelet/plugins_registry",
        "pods-mount-dir": "/var/lib/kubelet/pods",
    }
    # No cloud access on nodes: no backend flags, no credentials, whatever the cloud values say.
    node = one(render(helm, cloud__credentials__secretId="AKID", cloud__credentials__secretKey="k"), "DaemonSet",
               "csi-nodeplugin-cfsplugin")  # fmt: skip
    text = yaml.safe_dump(node)
    assert "--backend" not in text and "credentials" not in text and "AKID" not in text
    moved = one(render(helm, node__kubeletDir="/data/kubelet"), "DaemonSet", "csi-nodeplugin-cfsplugin")
    assert {v["hostPath"]["path"] for v in pod(moved)["volumes"]} == {
        "/data/kubelet/plugins/com.tencent.cloud.csi.cfs", "/data/kubelet/plugins_registry", "/data/kubelet/pods",
    }  # fmt: skip
    moved_plugin = container(moved, "csi-cfs")
    assert "--kubelet-dir=/data/kubelet" in moved_plugin["args"]
    assert (
        "--kubelet-registration-path=/data/kubelet/plugins/com.tencent.cloud.csi.cfs/csi.sock" in moved_plugin["args"]
    )
    assert {m["mountPath"] for m in moved_plugin["volumeMounts"]} >= {
        "/data/kubelet/pods",
        "/data/kubelet/plugins_registry",
    }


def test_node_plugin_pod_with_the_upstream_sidecars(helm: Path) -> None:
    node = one(render(helm, node__upstreamSidecars="true", node__healthPort="9999"), "DaemonSet",
               "csi-nodeplugin-cfsplugin")  # fmt: skip
    assert [c["name"] for c in pod(node)["containers"]] == ["driver-registrar", "csi-cfs", "liveness-probe"]
    registrar = container(node, "driver-registrar")
    assert (
        "--kubelet-registration-path=/var/lib/kubelet/plugins/com.tencent.cloud.csi.cfs/csi.sock" in registrar["args"]
    )
    assert {m["mountPath"]: m["name"] for m in registrar["volumeMounts"]} == {
        "/csi": "plugin-dir", "/registration": "registration-dir",
    }  # fmt: skip
    plugin = container(node, "csi-cfs")
    assert "--no-register" in plugin["args"]
    assert not [a for a in plugin["args"] if a.startswith(("--health-port", "--kubelet-registration-path"))]
    assert "/var/lib/kubelet/plugins_registry" not in {m["mountPath"] for m in plugin["volumeMounts"]}
    assert plugin["livenessProbe"]["httpGet"]["port"] == "healthz"  # served by the sidecar, in the same pod
    assert "--health-port=9999" in container(node, "liveness-probe")["args"]
    assert plugin["ports"] == [{"name": "healthz", "containerPort": 9999}]


def test_cloud_credentials_come_from_a_secret_volume_only(helm: Path) -> None:
    # Instance role: no Secret, no credentials flag.
    objects = render(helm)
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert "credentials" not in yaml.safe_dump(one(objects, "Deployment", "csi-provisioner-cfsplugin"))

    objects = render(helm, cloud__credentials__secretId="AKIDsecretid", cloud__credentials__secretKey="topsecretkey",
                     cloud__region="ap-guangzhou", cloud__clusterId="cls-abc")  # fmt: skip
    secret = one(objects, "Secret", "cfs-csi-cloud-credentials")
    assert secret["stringData"] == {"TENCENTCLOUD_SECRET_ID": "AKIDsecretid", "TENCENTCLOUD_SECRET_KEY": "topsecretkey"}
    controller = one(objects, "Deployment", "csi-provisioner-cfsplugin")
    assert "topsecretkey" not in yaml.safe_dump(controller)  # only the kubelet reads the Secret
    for name in ("csi-cfs", "tcfs-operator"):
        args = container(controller, name)["args"]
        wanted = {"--credentials-dir=/etc/cfs-csi/credentials", "--region=ap-guangzhou", "--cluster-id=cls-abc"}
        assert wanted.issubset(args)
    volumes = {v["name"]: v for v in pod(controller)["volumes"]}
    assert volumes["cloud-credentials"]["secret"]["secretName"] == "cfs-csi-cloud-credentials"

    objects = render(helm, cloud__credentials__existingSecret="my-keys")
    assert not [o for o in objects if o["kind"] == "Secret"]
    volumes = {v["name"]: v for v in pod(one(objects, "Deployment", "csi-provisioner-cfsplugin"))["volumes"]}
    assert volumes["cloud-credentials"]["secret"]["secretName"] == "my-keys"


def test_the_operator_hands_its_credentials_secret_to_the_provisioner_pods(helm: Path) -> None:
    operator = container(one(render(helm), "Deployment", "csi-provisioner-cfsplugin"), "tcfs-operator")["args"]
    assert not [a for a in operator if a.startswith("--provisioner-credentials-secret")]  # instance role: none
    objects = render(helm, cloud__credentials__existingSecret="my-keys")
    operator = container(one(objects, "Deployment", "csi-provisioner-cfsplugin"), "tcfs-operator")["args"]
    assert "--provisioner-credentials-secret=my-keys" in operator


def test_json_logs_are_one_value_for_every_container_of_ours(helm: Path) -> None:
    default = render(helm)
    objects = render(helm, logFormat="json")
    ours = {("csi-provisioner-cfsplugin", "csi-cfs"), ("csi-provisioner-cfsplugin", "tcfs-operator"),
            ("csi-nodeplugin-cfsplugin", "csi-cfs")}  # fmt: skip
    for owner, name in ours:
        kind = "DaemonSet" if "node" in owner else "Deployment"
        args = container(one(objects, kind, owner), name)["args"]
        assert args[0] == "--log-format=json" and args[1] in ("serve", "operator")
        assert container(one(default, kind, owner), name)["args"] == args[1:]  # text: no flag at all


@pytest.mark.parametrize(
    ("values", "operator_flags", "probe"),
    [
        ({}, ["--health-port=9811", "--provisioner-health-port=8080"], True),
        # host network: the provisioner pods of several classes would want one port on one node
        ({"controller__hostNetwork": "true"}, ["--health-port=9811"], True),
        ({"controller__livenessProbe": "false"}, [], False),
    ],
)
def test_the_operator_and_its_provisioners_serve_health_checks(
    helm: Path, values: dict[str, str], operator_flags: list[str], probe: bool
) -> None:
    operator = container(one(render(helm, **values), "Deployment", "csi-provisioner-cfsplugin"), "tcfs-operator")
    assert [a for a in operator["args"] if "health-port" in a] == operator_flags
    assert ("livenessProbe" in operator) is probe
    if probe:
        assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz-op"}


def test_only_one_credential_value_is_an_error(helm: Path) -> None:
    with pytest.raises(chart.HelmError, match="secretKey is needed"):
        render(helm, cloud__credentials__secretId="AKID")


def test_operator_can_be_left_out(helm: Path) -> None:
    objects = render(helm, controller__operator__enabled="false")
    controller = one(objects, "Deployment", "csi-provisioner-cfsplugin")
    assert "tcfs-operator" not in [c["name"] for c in pod(controller)["containers"]]
    subdir = [o["kind"] for o in objects if o["metadata"]["name"] == "cfs-csi-subdir-provisioner"]
    assert subdir == ["ServiceAccount"]
    assert "tcfsoperator.k8s.io" not in yaml.safe_dump(one(objects, "ClusterRole", "cfs-csi-controller"))


def test_attacher_before_1_14_answers_capabilities_without_cloud_access(helm: Path) -> None:
    attacher = one(render(helm, "1.13.0", cloud__credentials__existingSecret="keys"), "Deployment",
                   "csi-attacher-cfsplugin")  # fmt: skip
    assert container(attacher, "csi-attacher")["image"].endswith("/csi-attacher:v1.1.1")
    plugin = container(attacher, "csi-cfs")["args"]
    assert "--component=controller" in plugin and "--backend=local" in plugin
    assert "keys" not in yaml.safe_dump(attacher)


def test_clusters_older_than_1_13_are_refused(helm: Path) -> None:
    with pytest.raises(chart.HelmError, match="kubeVersion"):
        render(helm, "1.12.0")


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_helm_lint_is_clean(helm: Path, release: str) -> None:
    """``helm lint --strict``: templates, values and (per release) deprecated API versions."""
    argv = [str(helm), "lint", "--strict", str(chart.CHART), "--kube-version", release,
            "--set", "examples.enabled=true,controller.replicas=2"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_deleting_the_vendor_drivers_volumes_is_the_admins_choice(helm: Path) -> None:
    controller = one(
        render(helm, **{"controller.deleteVendorVolumes": "true"}), "Deployment", "csi-provisioner-cfsplugin"
    )
    assert "--delete-vendor-volumes" in container(controller, "csi-cfs")["args"]
    assert "--delete-vendor-volumes" not in container(controller, "tcfs-operator")["args"]  # it never deletes


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"controller.replicas": "0"}, "/controller/replicas"),
        ({"csiDriver.fsGroupPolicy": "Files"}, "must be one of 'File', 'None', 'ReadWriteOnceWithFSType'"),
        ({"cloud.credentials.secretid": "AKID"}, "additional properties 'secretid' not allowed"),  # a typo
        ({"cloud.endpoint": "cfs.tencentcloudapi.com"}, "/cloud/endpoint"),  # no scheme
        ({"node.kubeletDir": "var/lib/kubelet"}, "/node/kubeletDir"),
        ({"node.upstreamSidecars": "yes"}, "/node/upstreamSidecars"),
        ({"controller.deleteVendorVolumes": "yes"}, "/controller/deleteVendorVolumes"),
        ({"sidecars.provisioner[0].minKube": "v1.20"}, "/sidecars/provisioner/0/minKube"),
    ],
)
def test_bad_values_are_refused_with_the_path_to_fix(helm: Path, values: dict[str, str], message: str) -> None:
    with pytest.raises(chart.HelmError, match=re.escape(message)):
        chart.template(helm, None, values)


# -- metrics (issue 17) -----------------------------------------------------------------------------------------------


def render_with_apis(helm: Path, api_versions: list[str], values: dict[str, str]) -> list[dict[str, Any]]:
    """``helm template`` as for a cluster that serves ``api_versions`` (``group/version/Kind``)."""
    argv = [str(helm), "template", chart.RELEASE, str(chart.CHART), "--namespace", chart.NAMESPACE]
    for api in api_versions:
        argv += ["--api-versions", api]
    for key, value in values.items():
        argv += ["--set", f"{key}={value}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return chart.objects(result.stdout)


def test_metrics_are_off_by_default(helm: Path) -> None:
    objects = render(helm)
    assert not [o for o in objects if o["kind"] in ("Service", "ServiceMonitor")]
    controller = one(objects, "Deployment", "csi-provisioner-cfsplugin")
    node = one(objects, "DaemonSet", "csi-nodeplugin-cfsplugin")
    plugins = [container(controller, "csi-cfs"), container(controller, "tcfs-operator"), container(node, "csi-cfs")]
    for plugin in plugins:
        assert not [a for a in plugin["args"] if a.startswith("--metrics-port")]
        assert "metrics" not in {p["name"] for p in plugin.get("ports", [])}


@pytest.mark.parametrize("liveness", ["true", "false"])
def test_metrics_on_a_named_port_of_each_plugin_and_a_service_per_component(helm: Path, liveness: str) -> None:
    objects = render(helm, metrics__enabled="true", metrics__nodePort="31000", controller__livenessProbe=liveness)
    controller = container(one(objects, "Deployment", "csi-provisioner-cfsplugin"), "csi-cfs")
    node = container(one(objects, "DaemonSet", "csi-nodeplugin-cfsplugin"), "csi-cfs")
    assert "--metrics-port=9809" in controller["args"] and "--metrics-port=31000" in node["args"]
    assert {"name": "metrics", "containerPort": 9809} in controller["ports"]
    operator = container(one(objects, "Deployment", "csi-provisioner-cfsplugin"), "tcfs-operator")
    assert "--metrics-port=9810" in operator["args"] and "--provisioner-metrics-port=9812" in operator["args"]
    healthz = [{"name": "healthz-op", "containerPort": 9811}] if liveness == "true" else []
    assert operator["ports"] == [{"name": "metrics-op", "containerPort": 9810}, *healthz]
    assert ({"name": "healthz", "containerPort": 9808} in controller["ports"]) == (liveness == "true")
    assert ("livenessProbe" in controller) == (liveness == "true")
    assert node["ports"] == [{"name": "healthz", "containerPort": 29653}, {"name": "metrics", "containerPort": 31000}]
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    assert set(services) == {"cfs-csi-controller-metrics", "cfs-csi-node-metrics", "cfs-csi-subdir-provisioner-metrics"}
    provisioners = services["cfs-csi-subdir-provisioner-metrics"]["spec"]
    assert provisioners["selector"] == {"app": "cfs-csi-subdir-provisioner"}  # the operator's Deployments' pods
    assert provisioners["ports"] == [{"name": "metrics", "port": 9812, "targetPort": "metrics"}]
    for name, app, port in (
        ("controller", "csi-provisioner-cfsplugin", 9809),
        ("node", "csi-nodeplugin-cfsplugin", 31000),
    ):
        service = services[f"cfs-csi-{name}-metrics"]
        assert service["spec"]["selector"] == {"app": app}
        operator_port = [{"name": "metrics-op", "port": 9810, "targetPort": "metrics-op"}][: name == "controller"]
        assert service["spec"]["ports"] == [{"name": "metrics", "port": port, "targetPort": "metrics"}, *operator_port]
        assert service["spec"]["clusterIP"] == "None"
    # Only with the ServiceMonitor API served (below).
    assert not [o for o in render(helm, metrics__enabled="true", metrics__serviceMonitor__enabled="true")
                if o["kind"] == "ServiceMonitor"]  # fmt: skip


def test_host_network_provisioner_pods_get_no_metrics_port(helm: Path) -> None:
    objects = render(helm, metrics__enabled="true", controller__hostNetwork="true")
    operator = container(one(objects, "Deployment", "csi-provisioner-cfsplugin"), "tcfs-operator")
    assert not [a for a in operator["args"] if a.startswith("--provisioner-metrics-port")]
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    assert "cfs-csi-subdir-provisioner-metrics" not in services


@pytest.mark.parametrize(
    ("metrics", "monitor", "api", "wanted"),
    [
        ("true", "true", True, True),
        ("true", "true", False, False),  # the API is not served: installing it would fail
        ("true", "false", True, False),  # not asked for
        ("false", "true", True, False),  # nothing to scrape
    ],
)
def test_service_monitor_only_when_asked_and_served(
    helm: Path, metrics: str, monitor: str, api: bool, wanted: bool
) -> None:
    apis = ["monitoring.coreos.com/v1/ServiceMonitor"] if api else []
    values = {"metrics.enabled": metrics, "metrics.serviceMonitor.enabled": monitor,
              "metrics.serviceMonitor.labels.release": "prom", "metrics.serviceMonitor.interval": "15s"}  # fmt: skip
    monitors = [o for o in render_with_apis(helm, apis, values) if o["kind"] == "ServiceMonitor"]
    assert bool(monitors) == wanted
    if wanted:
        [monitor_object] = monitors
        assert monitor_object["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor_object["metadata"]["labels"]["release"] == "prom"
        spec = monitor_object["spec"]
        assert spec["selector"]["matchLabels"] == {
            "app.kubernetes.io/instance": chart.RELEASE,
            "cfs-csi/metrics": "true",
        }
        assert spec["namespaceSelector"] == {"matchNames": [chart.NAMESPACE]}
        assert [(e["port"], e["path"], e["interval"]) for e in spec["endpoints"]] == [
            ("metrics", "/metrics", "15s"),
            ("metrics-op", "/metrics", "15s"),
        ]
        services = [o for o in render_with_apis(helm, apis, values) if o["kind"] == "Service"]
        assert all(s["metadata"]["labels"]["cfs-csi/metrics"] == "true" for s in services) and len(services) == 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"metrics.enabled": "yes"}, "/metrics/enabled"),
        ({"metrics.nodePort": "0"}, "/metrics/nodePort"),
        ({"metrics.serviceMonitor.interval": "30"}, "/metrics/serviceMonitor/interval"),
        ({"metrics.port": "9000"}, "additional properties 'port' not allowed"),
    ],
)
def test_bad_metrics_values_are_refused(helm: Path, values: dict[str, str], message: str) -> None:
    with pytest.raises(chart.HelmError, match=re.escape(message)):
        chart.template(helm, None, values)
