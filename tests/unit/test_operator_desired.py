"""Shared mode's pure decisions: which classes are shared, the Tcfs they ask for, the Deployment a Tcfs needs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cfs_csi.operator.desired import (
    SPEC_HASH,
    Action,
    Conflict,
    ProvisionerTemplate,
    SharedFileSystem,
    deployment_action,
    deployment_owner,
    desired_deployment,
    desired_share_volume,
    nfs_path,
    parse_api_server,
    readiness,
    ready_condition,
    share_owner,
    tcfs_object,
)
from cfs_csi.operator.ownership import not_ours
from cfs_csi.operator.shared import (
    ClassKind,
    class_kind,
    is_shared,
    parse_shared_class,
    shared_fs_name,
    unserved_message,
)
from cfs_csi.volume.errors import InvalidArgument

SEED_SHARE = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "cfs-share", "uid": "uid-sc"},
    "parameters": {
        "pgroupid": "pgroup-lrquouvl", "storagetype": "SD", "subdir-share": "true", "vers": "3",
        "subnetid": "subnet-rtwb42lu", "vpcid": "vpc-oilua6pt", "zone": "ap-guangzhou-3",
    },
    "provisioner": "com.tencent.cloud.csi.tcfs.cfs-share",
    "reclaimPolicy": "Retain",
    "volumeBindingMode": "Immediate",
}  # fmt: skip


def with_params(**params: str) -> dict[str, Any]:
    body = copy.deepcopy(SEED_SHARE)
    body["parameters"].update(params)
    return body


def test_the_seed_class_gives_the_seed_tcfs() -> None:
    tcfs = tcfs_object(parse_shared_class(SEED_SHARE), "kube-system")
    assert tcfs["metadata"]["name"] == "cfs-share" and tcfs["metadata"]["namespace"] == "kube-system"
    assert tcfs["spec"] == {
        "pgroupid": "pgroup-lrquouvl", "provisionername": "com.tencent.cloud.csi.tcfs.cfs-share",
        "reclaimpolicy": "Retain", "storagetype": "SD", "subnetid": "subnet-rtwb42lu", "vpcid": "vpc-oilua6pt",
        "zone": "ap-guangzhou-3", "vers": "3",
    }  # fmt: skip
    [owner] = tcfs["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("StorageClass", "cfs-share", "uid-sc")


SHARED = [
    ("seed", SEED_SHARE["parameters"], True),
    ("case-insensitive value", {"subdir-share": "TRUE"}, True),
    ("false", {"subdir-share": "false"}, False),
    ("absent", {"vpcid": "vpc-a"}, False),
    ("none", None, False),
]


@pytest.mark.parametrize(("case", "params", "expected"), SHARED, ids=[c[0] for c in SHARED])
def test_is_shared(case: str, params: dict[str, str] | None, expected: bool) -> None:
    assert is_shared(params) is expected


INVALID = [
    ("wrong provisioner", {**SEED_SHARE, "provisioner": "com.tencent.cloud.csi.cfs"}, "needs provisioner"),
    ("provisioner of another class", {**SEED_SHARE, "provisioner": "com.tencent.cloud.csi.tcfs.other"},
     "com.tencent.cloud.csi.tcfs.cfs-share"),
    ("unknown key", with_params(subnet="x"), "'subnet'"),
    ("bad storage type", with_params(storagetype="XL"), "storagetype"),
    ("bad onDelete", with_params(onDelete="archive"), "onDelete"),
    ("bad archiveOnDelete", with_params(archiveOnDelete="yes"), "archiveOnDelete"),
    ("bad fromExistCfs", with_params(fromExistCfs="abc"), "fromExistCfs"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "needle"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_shared_classes(case: str, body: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        parse_shared_class(body)


def test_provisioner_parameters_are_not_cloud_parameters() -> None:
    shared = parse_shared_class(with_params(pathPattern="${.PVC.namespace}", onDelete="retain", fromExistCfs="cfs-1"))
    assert shared.tcfs_spec()["fromExistCfs"] == "cfs-1"
    assert shared_fs_name("cfs-share") == "sharedCFS-cfs-share"


TCFS = {
    "metadata": {"name": "cfs-share", "namespace": "kube-system", "uid": "uid-tcfs"},
    "spec": {"provisionername": "com.tencent.cloud.csi.tcfs.cfs-share", "vers": "3"},
}
FS = SharedFileSystem("10.0.33.130", "wmyio3c8", "cfs-abc")
TEMPLATE = ProvisionerTemplate(image="cfs-csi:1.0")


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_desired_deployment() -> None:
    deployment = desired_deployment(TCFS, FS, TEMPLATE)
    assert deployment["metadata"]["name"] == "com.tencent.cloud.csi.tcfs.cfs-share"
    assert deployment["metadata"]["namespace"] == "kube-system"
    env = env_of(deployment)
    assert (env["PROVISIONER_NAME"], env["NFS_SERVER"], env["NFS_PATH"]) == (
        "com.tencent.cloud.csi.tcfs.cfs-share",
        "10.0.33.130",
        "/wmyio3c8/",
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "cfs-share", "persistentVolumeClaim": {"claimName": "tcfs-cfs-share-wmyio3c8"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "cfs-share", "mountPath": "/persistentvolumes"}]
    assert "--leader-elect" in pod["containers"][0]["command"]
    assert pod["serviceAccountName"] == "cfs-csi-subdir-provisioner"
    [owner] = deployment["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Tcfs", "uid-tcfs", True)


NODE_NETWORK = [
    # case, template, hostNetwork and dnsPolicy of the pod, API server env of the container, pull policy
    ("default", TEMPLATE, None, None, "IfNotPresent"),
    ("host network", ProvisionerTemplate(image="cfs-csi:1.0", host_network=True),
     (True, "ClusterFirstWithHostNet"), None, "IfNotPresent"),
    ("api server", ProvisionerTemplate(image="cfs-csi:1.0", api_server=("127.0.0.1", "6443")),
     None, ("127.0.0.1", "6443"), "IfNotPresent"),
    ("dev node", ProvisionerTemplate(image="cfs-csi:1.0", image_pull_policy="Never", host_network=True,
                                     api_server=("::1", "40123")),
     (True, "ClusterFirstWithHostNet"), ("::1", "40123"), "Never"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "template", "network", "api", "pull"), NODE_NETWORK, ids=[c[0] for c in NODE_NETWORK])
def test_network_api_server_and_pull_policy_of_the_provisioner_pod(
    case: str, template: ProvisionerTemplate, network: tuple[bool, str] | None, api: tuple[str, str] | None,
    pull: str,
) -> None:  # fmt: skip
    deployment = desired_deployment(TCFS, FS, template)
    pod = deployment["spec"]["template"]["spec"]
    assert (pod.get("hostNetwork"), pod.get("dnsPolicy")) == (network or (None, None))
    env = env_of(deployment)
    assert (env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")) == (api or (None, None))
    assert pod["containers"][0]["imagePullPolicy"] == pull
    # Set only when asked: the Deployments of existing installs keep their spec hash (no rollout on upgrade).
    changed = deployment["metadata"]["annotations"][SPEC_HASH] != desired_deployment(TCFS, FS, TEMPLATE)[
        "metadata"]["annotations"][SPEC_HASH]  # fmt: skip
    assert changed is (case != "default")


API_SERVERS = [
    ("127.0.0.1:6443", ("127.0.0.1", "6443")),
    ("kube.example:443", ("kube.example", "443")),
    ("[::1]:6443", ("::1", "6443")),
    ("127.0.0.1", None),
    (":6443", None),
    ("127.0.0.1:", None),
    ("::1:6443", None),  # ambiguous without brackets
    ("127.0.0.1:0", None),
    ("127.0.0.1:65536", None),
    ("127.0.0.1:64x3", None),
    ("127.0.0.1:\u0663", None),  # a digit, but not an ASCII one
]


@pytest.mark.parametrize(("text", "expected"), API_SERVERS)
def test_parse_api_server(text: str, expected: tuple[str, str] | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match=r"HOST:PORT|port out of range"):
            parse_api_server(text)
    else:
        assert parse_api_server(text) == expected


@pytest.mark.parametrize(("vers", "path"), [("3", "/wmyio3c8/"), ("4", "/"), (None, "/wmyio3c8/")])
def test_nfs_path(vers: str | None, path: str) -> None:
    assert nfs_path({"vers": vers} if vers else {}, "wmyio3c8") == path


def stamped(deployment: dict[str, Any], value: str) -> dict[str, Any]:
    copy_ = copy.deepcopy(deployment)
    copy_["metadata"]["annotations"][SPEC_HASH] = value
    return copy_


DESIRED = desired_deployment(TCFS, FS, TEMPLATE)
#: A Deployment someone else made under the name the Tcfs asks for (the victim of issue 11, finding 12).
VICTIM = {"metadata": {"name": "com.tencent.cloud.csi.tcfs.cfs-share", "labels": {"app": "victim"}},
          "spec": {"replicas": 1}}  # fmt: skip
ACTIONS = [
    ("nothing exists", None, DESIRED, Action.CREATE),
    ("up to date", DESIRED, DESIRED, Action.NONE),
    ("server defaults do not matter", {**DESIRED, "status": {"replicas": 1}}, DESIRED, Action.NONE),
    ("spec changed", stamped(DESIRED, "old"), DESIRED, Action.UPDATE),
    ("ours, hash annotation removed", {**DESIRED, "metadata": {**DESIRED["metadata"], "annotations": {}}}, DESIRED,
     Action.UPDATE),
    ("no longer wanted", DESIRED, None, Action.DELETE),
    ("nothing either way", None, None, Action.NONE),
    ("not ours, file system ready", VICTIM, DESIRED, Action.NOT_OURS),
    ("not ours, file system missing", VICTIM, None, Action.NOT_OURS),
    ("bare object of that name", {"metadata": {"name": "x"}}, DESIRED, Action.NOT_OURS),
    ("another Tcfs's", desired_deployment({**TCFS, "metadata": {**TCFS["metadata"], "uid": "uid-other"}}, FS,
                                          TEMPLATE), None, Action.NOT_OURS),
]  # fmt: skip


@pytest.mark.parametrize(("case", "existing", "desired", "action"), ACTIONS, ids=[c[0] for c in ACTIONS])
def test_deployment_action(case: str, existing: Any, desired: Any, action: Action) -> None:
    assert deployment_action(existing, desired, deployment_owner(TCFS)) is action


def test_a_new_image_or_server_changes_the_hash() -> None:
    base = DESIRED["metadata"]["annotations"][SPEC_HASH]
    other_image = desired_deployment(TCFS, FS, ProvisionerTemplate(image="cfs-csi:1.1"))
    other_server = desired_deployment(TCFS, SharedFileSystem("10.0.33.131", "wmyio3c8"), TEMPLATE)
    assert base != other_image["metadata"]["annotations"][SPEC_HASH]
    assert base != other_server["metadata"]["annotations"][SPEC_HASH]


def test_ready_condition_keeps_its_transition_time() -> None:
    first = ready_condition(False, "Creating", "wait", "t1", None)
    again = ready_condition(False, "Creating", "still", "t2", first)
    ready = ready_condition(True, "FileSystemReady", "ok", "t3", again)
    assert again[0]["lastTransitionTime"] == "t1"
    assert ready[0]["lastTransitionTime"] == "t3" and ready[0]["status"] == "True"
    # Nothing changed, nothing differs: the operator skips the status patch on exactly this equality.
    assert ready_condition(True, "FileSystemReady", "ok", "t4", ready) == ready


@pytest.mark.parametrize(
    ("base", "retry", "expected"), [(5, 0, 5), (5, 1, 10), (5, 3, 40), (15, 10, 300), (60, 50, 300)]
)
def test_backoff(base: int, retry: int, expected: int) -> None:
    from cfs_csi.operator.tcfs import backoff

    assert backoff(base, retry) == expected


CLASS_OWNER = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "name": "cfs-share", "uid": "uid-sc"}
CLASS_OWNED = {**TCFS, "metadata": {**TCFS["metadata"], "ownerReferences": [CLASS_OWNER]}}
HAND_MADE_V4 = {**TCFS, "spec": {**TCFS["spec"], "vers": "4"}}


@pytest.mark.parametrize(
    ("tcfs", "vers", "pv_owners"),
    [
        (CLASS_OWNED, "3", [{**CLASS_OWNER, "blockOwnerDeletion": False}]),
        (HAND_MADE_V4, "4", []),  # a Tcfs made by hand: nothing owns its PV
    ],
)
def test_share_volume_is_a_pre_bound_static_volume_of_our_driver(
    tcfs: dict[str, Any], vers: str, pv_owners: list[dict[str, Any]]
) -> None:
    pv, pvc = desired_share_volume(tcfs, FS)
    name = "tcfs-cfs-share-wmyio3c8"
    assert pv["metadata"] == {"name": name, "labels": {"tcfsoperator.k8s.io/tcfs": "cfs-share"},
                              "annotations": {"tcfsoperator.k8s.io/tcfs-uid": "uid-tcfs"},
                              "ownerReferences": pv_owners}  # fmt: skip
    assert pv["spec"]["csi"] == {
        "driver": "com.tencent.cloud.csi.cfs", "volumeHandle": name,
        "volumeAttributes": {"host": "10.0.33.130", "fsid": "wmyio3c8", "vers": vers},
    }  # fmt: skip
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"  # never DeleteVolume: the share outlives it
    assert pv["spec"]["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                      "namespace": "kube-system", "name": name}  # fmt: skip
    # Once the claim exists, the PV names it by uid too: it can bind to no other claim of that name.
    bound = desired_share_volume(tcfs, FS, claim_uid="uid-pvc")[0]["spec"]["claimRef"]
    assert bound == {**pv["spec"]["claimRef"], "uid": "uid-pvc"}
    assert (pvc["metadata"]["name"], pvc["metadata"]["namespace"], pvc["spec"]["volumeName"]) == (
        name, "kube-system", name,
    )  # fmt: skip
    assert pvc["spec"]["storageClassName"] == pv["spec"]["storageClassName"] == ""  # no provisioner gets involved
    assert pvc["spec"]["accessModes"] == pv["spec"]["accessModes"] == ["ReadWriteMany"]
    [owner] = pvc["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Tcfs", "uid-tcfs", True)
    # What we create proves itself ours, by the rule the operator checks before it deletes or uses an object.
    assert not_ours(pv["metadata"], share_owner(tcfs), by_annotation=True) is None
    assert not_ours(pvc["metadata"], share_owner(tcfs)) is None
    assert not_ours(desired_deployment(tcfs, FS, TEMPLATE)["metadata"], deployment_owner(tcfs)) is None
    # Another file system, other objects (and so a new Deployment, whose volume names them).
    other = SharedFileSystem("10.0.33.131", "abcd1234")
    assert desired_share_volume(tcfs, other)[0]["metadata"]["name"] == "tcfs-cfs-share-abcd1234"
    assert desired_deployment(tcfs, other, TEMPLATE)["spec"]["template"]["spec"]["volumes"][0] == {
        "name": "cfs-share", "persistentVolumeClaim": {"claimName": "tcfs-cfs-share-abcd1234"},
    }  # fmt: skip


LONG = "a" * 253  # the longest StorageClass name Kubernetes accepts


@pytest.mark.parametrize(
    ("name", "label_length", "volume_length"),
    [("cfs-share", 9, len("tcfs-cfs-share-wmyio3c8")), (LONG, 63, 253), ("b" * 63, 63, 5 + 63 + 9)],
)
def test_names_and_labels_fit_the_api_limits(name: str, label_length: int, volume_length: int) -> None:
    tcfs = {**TCFS, "metadata": {**TCFS["metadata"], "name": name}}
    pv, pvc = desired_share_volume(tcfs, FS)
    label = pv["metadata"]["labels"]["tcfsoperator.k8s.io/tcfs"]
    assert len(label) == label_length and len(pv["metadata"]["name"]) == volume_length
    assert pvc["metadata"]["labels"] == pv["metadata"]["labels"]
    deployment = desired_deployment(tcfs, FS, TEMPLATE)
    assert deployment["spec"]["selector"]["matchLabels"]["tcfsoperator.k8s.io/tcfs"] == label
    if len(name) <= 63:
        assert label == name  # short names are left as they are: existing objects keep their labels
    else:
        other = {**tcfs, "metadata": {**tcfs["metadata"], "name": name[:-1] + "b"}}
        assert desired_share_volume(other, FS)[0]["metadata"]["labels"]["tcfsoperator.k8s.io/tcfs"] != label


def test_readiness_names_the_conflict_and_keeps_the_file_system() -> None:
    assert readiness(FS, []) == (True, "FileSystemReady", "10.0.33.130:/wmyio3c8/ (cfs-abc)")
    first = Conflict("ShareVolumeNotOwned", "PersistentVolume tcfs-cfs-share-wmyio3c8 exists but ...")
    second = Conflict("DeploymentNotOwned", "Deployment kube-system/x exists but ...")
    ready, reason, message = readiness(FS, [first, second])
    assert (ready, reason) == (False, "ShareVolumeNotOwned")
    assert message == ("PersistentVolume tcfs-cfs-share-wmyio3c8 exists but ...; Deployment kube-system/x exists "
                       "but ...; file system 10.0.33.130:/wmyio3c8/ (cfs-abc) is ready")  # fmt: skip


def sc(provisioner: str, **params: str) -> dict[str, Any]:
    return {"metadata": {"name": "cfs-share", "uid": "uid-sc"}, "provisioner": provisioner, "parameters": params}


TCFS_PROVISIONER = "com.tencent.cloud.csi.tcfs.cfs-share"
KINDS = [
    ("seed", SEED_SHARE, ClassKind.SHARED),
    ("true, any case and spaces", sc(TCFS_PROVISIONER, **{"Subdir-Share": " TRUE "}), ClassKind.SHARED),
    # parse_shared_class then refuses these two with "needs provisioner" (INVALID above).
    ("true on the dedicated provisioner", sc("com.tencent.cloud.csi.cfs", **{"subdir-share": "true"}),
     ClassKind.SHARED),
    ("true on another class's tcfs provisioner", sc("com.tencent.cloud.csi.tcfs.other", **{"subdir-share": "true"}),
     ClassKind.SHARED),
    ("dedicated class", sc("com.tencent.cloud.csi.cfs", vpcid="vpc-a"), ClassKind.OTHER),
    ("dedicated class, bad subdir-share (the controller refuses it)",
     sc("com.tencent.cloud.csi.cfs", **{"subdir-share": "yes"}), ClassKind.OTHER),
    ("another driver", sc("example.com/nfs", **{"subdir-share": "yes"}), ClassKind.OTHER),
    ("no parameters", {"metadata": {"name": "x"}, "provisioner": "example.com/nfs"}, ClassKind.OTHER),
    ("tcfs provisioner, no subdir-share", sc(TCFS_PROVISIONER, vpcid="vpc-a"), ClassKind.PROVISIONER_ONLY),
    ("tcfs provisioner, subdir-share false", sc(TCFS_PROVISIONER, **{"subdir-share": "false"}),
     ClassKind.PROVISIONER_ONLY),
    ("tcfs provisioner, subdir-share empty", sc(TCFS_PROVISIONER, **{"subdir-share": ""}),
     ClassKind.PROVISIONER_ONLY),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "kind"), KINDS, ids=[c[0] for c in KINDS])
def test_class_kind(case: str, body: dict[str, Any], kind: ClassKind) -> None:
    assert class_kind(body) is kind


@pytest.mark.parametrize("value", ["yes", "1", "on", "True1", "ture"])
@pytest.mark.parametrize("provisioner", [TCFS_PROVISIONER, "com.tencent.cloud.csi.tcfs.other"])
def test_a_bad_subdir_share_on_a_tcfs_provisioner_is_an_error(provisioner: str, value: str) -> None:
    with pytest.raises(InvalidArgument, match=f'subdir-share \'{value}\' is not "true" or "false"'):
        class_kind(sc(provisioner, **{"subdir-share": value}))


def test_an_unserved_tcfs_class_says_what_is_missing() -> None:
    message = unserved_message(sc(TCFS_PROVISIONER))
    assert "cfs-share" in message and TCFS_PROVISIONER in message and 'subdir-share: "true"' in message
