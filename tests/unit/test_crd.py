"""The CRD the operator installs is the one shipped in deploy/, and names the seed's fields."""

from __future__ import annotations

from pathlib import Path

import yaml

from cfs_csi.operator.main import crd_manifest

REPO = Path(__file__).resolve().parents[2]


def test_packaged_crd_equals_deploy_copy() -> None:
    assert crd_manifest() == yaml.safe_load((REPO / "deploy" / "crds" / "tcfs.tcfsoperator.k8s.io.yaml").read_text())


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
    assert [c["name"] for c in version["additionalPrinterColumns"]][:3] == ["Server", "FSID", "Ready"]
