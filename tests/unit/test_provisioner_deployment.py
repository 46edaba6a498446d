"""What the operator gives the provisioner Deployment for directory quotas: the file system's cloud id, the
operator's cloud flags and its credentials' Secret (pure: :mod:`cfs_csi.operator.desired`)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from cfs_csi.cloud.factory import add_backend_arguments
from cfs_csi.operator.desired import (
    CREDENTIALS_MOUNT,
    ProvisionerTemplate,
    SharedFileSystem,
    desired_deployment,
    provisioner_cloud_args,
)

TCFS = {
    "metadata": {"name": "cfs-share", "namespace": "kube-system", "uid": "uid-tcfs"},
    "spec": {"provisionername": "com.tencent.cloud.csi.tcfs.cfs-share", "vers": "3"},
}


def operator_flags(*argv: str) -> dict[str, Any]:
    """The operator's backend options as its parser gives them (the same helper as the provisioner's)."""
    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    return vars(parser.parse_args(list(argv)))


CASES = [
    ("local backend: nothing", [], "", ()),
    ("tencent, defaults", ["--backend=tencent"], "",
     ("--backend=tencent", "--cfs-endpoint=https://cfs.internal.tencentcloudapi.com", "--cloud-timeout=10.0")),
    ("the chart's emulator mode", ["--backend=tencent", "--cfs-endpoint=http://127.0.0.1:8090", "--region=ap-gz",
                                   "--zone=ap-gz-3", "--cluster-id=cls-1", "--credentials-dir=/etc/keys"],
     "cfs-csi-emulator-credentials",
     ("--backend=tencent", "--cfs-endpoint=http://127.0.0.1:8090", "--region=ap-gz", "--zone=ap-gz-3",
      "--cluster-id=cls-1", "--cloud-timeout=10.0", f"--credentials-dir={CREDENTIALS_MOUNT}")),
    ("a credentials dir but no Secret named: not passed (the pod would not have it)",
     ["--backend=tencent", "--credentials-dir=/somewhere", "--metadata-url=http://169.254.0.23"], "",
     ("--backend=tencent", "--cfs-endpoint=https://cfs.internal.tencentcloudapi.com",
      "--metadata-url=http://169.254.0.23", "--cloud-timeout=10.0")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "argv", "secret", "expected"), CASES, ids=[c[0] for c in CASES])
def test_provisioner_cloud_args(case: str, argv: list[str], secret: str, expected: tuple[str, ...]) -> None:
    args = provisioner_cloud_args(operator_flags(*argv), secret)
    assert args == expected
    if args:  # the provisioner's parser takes them as they are
        parser = argparse.ArgumentParser()
        add_backend_arguments(parser)
        assert parser.parse_args(list(args)).backend == "tencent"


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def test_the_deployment_carries_the_cloud_id_flags_and_secret() -> None:
    template = ProvisionerTemplate(image="cfs-csi:1.0", cloud_args=("--backend=tencent", "--region=r"),
                                   credentials_secret="keys")  # fmt: skip
    deployment = desired_deployment(TCFS, SharedFileSystem("10.0.33.130", "wmyio3c8", "cfs-abc"), template)
    container = pod(deployment)["containers"][0]
    assert container["command"] == ["cfs-csi", "subdir-provisioner", "--leader-elect", "--backend=tencent",
                                    "--region=r"]  # fmt: skip
    assert {"name": "CFS_ID", "value": "cfs-abc"} in container["env"]
    assert {"name": "cloud-credentials", "mountPath": CREDENTIALS_MOUNT, "readOnly": True} in container["volumeMounts"]
    assert {"name": "cloud-credentials", "secret": {"secretName": "keys", "defaultMode": 0o440}} in pod(deployment)[
        "volumes"
    ]


def test_without_them_the_deployment_is_as_before() -> None:
    deployment = desired_deployment(TCFS, SharedFileSystem("10.0.33.130", "wmyio3c8"), ProvisionerTemplate("i"))
    container = pod(deployment)["containers"][0]
    assert container["command"] == ["cfs-csi", "subdir-provisioner", "--leader-elect"]
    assert "CFS_ID" not in {e["name"] for e in container["env"]}
    assert [v["name"] for v in pod(deployment)["volumes"]] == ["cfs-share"]
    assert [m["name"] for m in container["volumeMounts"]] == ["cfs-share"]


def test_a_changed_cloud_replaces_the_deployment() -> None:
    fs = SharedFileSystem("10.0.33.130", "wmyio3c8", "cfs-abc")
    hashes = {desired_deployment(TCFS, fs, t)["metadata"]["annotations"]["cfs-csi.tencent.com/spec-hash"]
              for t in (ProvisionerTemplate("i"), ProvisionerTemplate("i", cloud_args=("--backend=tencent",)),
                        ProvisionerTemplate("i", credentials_secret="keys"))}  # fmt: skip
    assert len(hashes) == 3


@pytest.mark.parametrize(
    ("log_format", "command"),
    [
        ("text", ["cfs-csi", "subdir-provisioner", "--leader-elect"]),  # the default: no flag, the same spec hash
        ("json", ["cfs-csi", "--log-format=json", "subdir-provisioner", "--leader-elect"]),
    ],
)
def test_the_provisioner_logs_in_the_operators_format(log_format: str, command: list[str]) -> None:
    fs = SharedFileSystem("10.0.33.130", "wmyio3c8")
    deployment = desired_deployment(TCFS, fs, ProvisionerTemplate("i", log_format=log_format))
    assert pod(deployment)["containers"][0]["command"] == command
    plain = desired_deployment(TCFS, fs, ProvisionerTemplate("i"))
    same = log_format == "text"
    key = "cfs-csi.tencent.com/spec-hash"
    assert (deployment["metadata"]["annotations"][key] == plain["metadata"]["annotations"][key]) is same


def test_a_health_port_gives_the_provisioner_its_flag_and_a_liveness_probe() -> None:
    fs = SharedFileSystem("10.0.33.130", "wmyio3c8")
    container = pod(desired_deployment(TCFS, fs, ProvisionerTemplate("i", health_port=8080)))["containers"][0]
    assert container["command"][-1] == "--health-port=8080"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    plain = pod(desired_deployment(TCFS, fs, ProvisionerTemplate("i")))["containers"][0]
    assert "livenessProbe" not in plain and not [a for a in plain["command"] if "health" in a]


def test_a_metrics_port_gives_the_provisioner_its_flag_and_a_named_port() -> None:
    fs = SharedFileSystem("10.0.33.130", "wmyio3c8")
    container = pod(desired_deployment(TCFS, fs, ProvisionerTemplate("i", metrics_port=9812)))["containers"][0]
    assert container["command"][-1] == "--metrics-port=9812"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9812}]
    plain = pod(desired_deployment(TCFS, fs, ProvisionerTemplate("i")))["containers"][0]
    assert "ports" not in plain
