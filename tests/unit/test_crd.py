"""The CRD the operator installs is the one the Helm chart ships, and names the seed's fields."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import yaml

from cfs_csi.operator.main import crd_manifest

REPO = Path(__file__).resolve().parents[2]


def test_packaged_crd_equals_the_charts_copy() -> None:
    chart_copy = REPO / "deploy" / "helm" / "cfs-csi" / "files" / "tcfs-crd.yaml"
    assert (files("cfs_csi.operator") / "tcfs-crd.yaml").read_text() == chart_copy.read_text()
    assert crd_manifest() == yaml.safe_load(chart_copy.read_text())


def test_crd_has_the_seed_fields() -> None:
    crd = crd_manifest()
    assert crd["metadata"]["name"] == "tcfs.tcfsoperator.k8s.io"
    assert (crd["spec"]["group"], crd["spec"]["names"]["kind"], crd["spec"]["scope"]) == (
        "tcfsoperator.k8s.io",
        "Tcfs",
        "Namespaced",
    )
    [version] = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    assert {"pgroupid", "provisionername", "reclaimpolicy", "storagetype", "subnetid", "vpcid", "zone",
            "fromExistCfs"} <= set(schema["spec"]["properties"])  # fmt: skip
    assert {"cfsfilesystemid", "cfsserver", "conditions", "observedGeneration"} <= set(schema["status"]["properties"])
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Server", "FSID", "CFS ID", "Ready", "Reason", "Age"]
