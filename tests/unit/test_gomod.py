"""The throw-away go.mod that builds a module with local replace lines by name."""

from __future__ import annotations

import pytest

from cfs_csi.devcluster.gomod import Replace, build_module, parse_replaces, staging_version
from cfs_csi.devcluster.tools import KUBERNETES, TOOLS, kubernetes_version_flags

KUBERNETES_LIKE = """\
module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api // the staging copy
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
replace github.com/example/pinned v1.0.0 => github.com/example/fork v1.0.1
"""

ETCD_LIKE = """\
module go.etcd.io/etcd/server/v3

go 1.25

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_parse_block_single_and_comments() -> None:
    assert parse_replaces(KUBERNETES_LIKE) == [
        Replace("k8s.io/api", "./staging/src/k8s.io/api"),
        Replace("k8s.io/client-go", "./staging/src/k8s.io/client-go"),
        Replace("github.com/example/pinned", "github.com/example/fork", "v1.0.1"),
    ]


def test_kubernetes_staging_modules_pinned_to_v0() -> None:
    go_mod = build_module("tmp/kube", "k8s.io/kubernetes", "v1.37.2", KUBERNETES_LIKE, staging_version)
    assert "go 1.26.0" in go_mod
    assert "require k8s.io/kubernetes v1.37.2" in go_mod
    assert "\tk8s.io/api => k8s.io/api v0.37.2" in go_mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.37.2" in go_mod
    assert "\tgithub.com/example/pinned => github.com/example/fork v1.0.1" in go_mod
    assert "./staging" not in go_mod


def test_etcd_sibling_modules_pinned_to_the_same_version_and_guards_dropped() -> None:
    go_mod = build_module("tmp/etcd", "go.etcd.io/etcd/server/v3", "v3.6.16", ETCD_LIKE)
    assert "\tgo.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.16" in go_mod
    assert "FORBIDDEN" not in go_mod


def test_module_without_replaces() -> None:
    go_mod = build_module("tmp/x", "example.com/tool", "v1.2.3", "module example.com/tool\n\ngo 1.22\n")
    assert "replace" not in go_mod and "require example.com/tool v1.2.3" in go_mod


@pytest.mark.parametrize(
    ("version", "expected"), [("v1.37.2", "v0.37.2"), ("v1.13.0", "v0.13.0"), ("v0.5.0", "v0.5.0")]
)
def test_staging_version(version: str, expected: str) -> None:
    assert staging_version(version) == expected


def test_kubernetes_binaries_are_linked_to_report_their_release() -> None:
    flags = kubernetes_version_flags("v1.37.2").split()
    values = dict(flag.removeprefix("k8s.io/component-base/version.").split("=", 1) for flag in flags if flag != "-X")
    assert values == {"gitVersion": "v1.37.2", "gitMajor": "1", "gitMinor": "37", "gitTreeState": "clean",
                      "buildDate": "1970-01-01T00:00:00Z"}  # fmt: skip
    assert flags.count("-X") == 5
    # A changed flag set changes the stamp, so cached binaries built without it are rebuilt.
    tool = TOOLS["kube-apiserver"]
    assert tool.ldflags == kubernetes_version_flags(KUBERNETES) and tool.ldflags in tool.stamp
