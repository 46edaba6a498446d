"""The Go programs the tests run, built by package name from the Go module proxy and cached.

Only the first run pays the build (several minutes for kube-apiserver on two cores); later runs find the
binaries under ``$CFS_CSI_CACHE/bin`` (default ``~/.cache/cfs-csi``), each with a stamp naming what it was
built from, so changing a pinned version rebuilds just that tool.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cfs_csi.devcluster.gomod import build_module, same_version, staging_version

log = logging.getLogger(__name__)

KUBERNETES = "v1.37.2"
#: external-snapshotter: csi-snapshotter, snapshot-controller and the VolumeSnapshot CRDs (client/config/crd).
SNAPSHOTTER = "v8.7.0"


@dataclass(frozen=True)
class Tool:
    name: str
    module: str
    version: str
    package: str
    pin: Callable[[str], str] = field(default=same_version, compare=False)
    ldflags: str = ""
    test_binary: bool = False  # a package's compiled tests (``go test -c``), as Kubernetes' e2e suite ships

    @property
    def stamp(self) -> str:
        stamp = f"{self.module}@{self.version} {self.package}" + (f" ldflags={self.ldflags}" if self.ldflags else "")
        return stamp + (" test" if self.test_binary else "")


def kubernetes_version_flags(version: str) -> str:
    """Link flags that make a Kubernetes binary report ``version``, as release builds do.

    A package-name build leaves them unset, and the API server then says ``v0.0.0-master``, which clients that
    check the server's version (helm and its charts' ``kubeVersion``) refuse.
    """
    major, minor = version.removeprefix("v").split(".")[:2]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean",
              "buildDate": "1970-01-01T00:00:00Z"}  # fmt: skip
    return " ".join(f"-X k8s.io/component-base/version.{key}={value}" for key, value in values.items())


TOOLS = {
    tool.name: tool
    for tool in (
        Tool(
            "csi-sanity",
            "github.com/kubernetes-csi/csi-test/v5",
            "v5.6.0",
            "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity",
        ),
        Tool(
            "csi-provisioner",
            "github.com/kubernetes-csi/external-provisioner/v6",
            "v6.4.0",
            "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner",
        ),
        Tool(
            "csi-snapshotter",
            "github.com/kubernetes-csi/external-snapshotter/v8",
            SNAPSHOTTER,
            "github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter",
        ),
        Tool(
            "snapshot-controller",
            "github.com/kubernetes-csi/external-snapshotter/v8",
            SNAPSHOTTER,
            "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller",
        ),
        Tool("etcd", "go.etcd.io/etcd/server/v3", "v3.6.16", "go.etcd.io/etcd/server/v3"),
        Tool(
            "kube-apiserver",
            "k8s.io/kubernetes",
            KUBERNETES,
            "k8s.io/kubernetes/cmd/kube-apiserver",
            staging_version,
            kubernetes_version_flags(KUBERNETES),
        ),
        Tool(
            "kube-controller-manager",
            "k8s.io/kubernetes",
            KUBERNETES,
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            staging_version,
            kubernetes_version_flags(KUBERNETES),
        ),
        Tool("helm", "helm.sh/helm/v3", "v3.22.0", "helm.sh/helm/v3/cmd/helm"),
        # Prometheus 3.x is published to the module proxy as v0.3xx.y (its v3.x tags are not Go-module versions);
        # v0.316.0 is Prometheus 3.16.0. Only promtool (``check metrics``) is used, to validate our exposition.
        Tool(
            "promtool", "github.com/prometheus/prometheus", "v0.316.0", "github.com/prometheus/prometheus/cmd/promtool"
        ),
        Tool(
            "kube-scheduler",
            "k8s.io/kubernetes",
            KUBERNETES,
            "k8s.io/kubernetes/cmd/kube-scheduler",
            staging_version,
            kubernetes_version_flags(KUBERNETES),
        ),
        Tool(
            "kubelet",
            "k8s.io/kubernetes",
            KUBERNETES,
            "k8s.io/kubernetes/cmd/kubelet",
            staging_version,
            kubernetes_version_flags(KUBERNETES),
        ),
        Tool(
            "kubectl",
            "k8s.io/kubernetes",
            KUBERNETES,
            "k8s.io/kubernetes/cmd/kubectl",
            staging_version,
            kubernetes_version_flags(KUBERNETES),
        ),
        Tool(
            "agnhost",
            "k8s.io/kubernetes",
            KUBERNETES,
            "k8s.io/kubernetes/test/images/agnhost",
            staging_version,
            kubernetes_version_flags(KUBERNETES),
        ),
        Tool(
            "e2e.test",
            "k8s.io/kubernetes",
            KUBERNETES,
            "k8s.io/kubernetes/test/e2e",
            staging_version,
            kubernetes_version_flags(KUBERNETES),
            test_binary=True,
        ),
    )
}


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("CFS_CSI_CACHE") or Path.home() / ".cache" / "cfs-csi")


def bin_dir() -> Path:
    return cache_dir() / "bin"


def installed(name: str) -> Path | None:
    tool = TOOLS[name]
    binary = bin_dir() / name
    stamp = bin_dir() / f".{name}.stamp"
    if binary.is_file() and stamp.is_file() and stamp.read_text().strip() == tool.stamp:
        return binary
    return None


def ensure(names: Iterable[str], timeout: float = 3600) -> dict[str, Path]:
    """Build what is missing; :class:`BuildError` with go's output when a build fails."""
    found = {}
    for name in names:
        found[name] = installed(name) or _build(TOOLS[name], timeout)
    return found


def _go(args: list[str], cwd: Path, timeout: float) -> str:
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0",
           "GOCACHE": os.environ.get("GOCACHE") or str(cache_dir() / "go-build")}  # fmt: skip
    try:
        result = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                                check=False)  # fmt: skip
    except FileNotFoundError:
        raise BuildError("the Go toolchain ('go') is not installed") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"go {' '.join(args[:2])} did not finish within {timeout:.0f}s") from None
    if result.returncode != 0:
        raise BuildError(f"go {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout


def gomod_download(module: str, version: str, timeout: float = 600) -> str:
    """``go mod download -json`` of one module (its ``Dir`` in the module cache holds the files)."""
    work = cache_dir() / "build" / "download"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text("module cfscsi.local/download\n")
    return _go(["mod", "download", "-json", f"{module}@{version}"], work, timeout)


def _build(tool: Tool, timeout: float) -> Path:
    started = time.monotonic()
    log.warning("building %s from %s@%s (first run only; cached in %s)", tool.name, tool.module, tool.version,
                bin_dir())  # fmt: skip
    work = cache_dir() / "build" / tool.name
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.sum").unlink(missing_ok=True)
    (work / "go.mod").write_text(f"module cfscsi.local/{tool.name}\n")
    info = json.loads(_go(["mod", "download", "-json", f"{tool.module}@{tool.version}"], work, timeout))
    target_go_mod = Path(info["GoMod"]).read_text()
    (work / "go.mod").write_text(build_module(f"cfscsi.local/{tool.name}", tool.module, tool.version,
                                              target_go_mod, tool.pin))  # fmt: skip
    bin_dir().mkdir(parents=True, exist_ok=True)
    binary = bin_dir() / tool.name
    # vet belongs to the project's own CI; skipping it here roughly halves a test binary's build
    command = ["test", "-c", "-vet=off"] if tool.test_binary else ["build"]
    _go([*command, "-trimpath", f"-ldflags={tool.ldflags}", "-o", str(binary), tool.package], work, timeout)
    (bin_dir() / f".{tool.name}.stamp").write_text(tool.stamp + "\n")
    log.warning("built %s in %.0fs", tool.name, time.monotonic() - started)
    return binary
