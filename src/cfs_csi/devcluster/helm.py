"""Render the cfs-csi Helm chart with the real ``helm`` (built and cached like the other Go tools).

The plain manifests in ``deploy/manifests/`` are this module's default render; tests render the chart for other
Kubernetes releases and values through the same function, so there is one way to turn the chart into objects.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "cfs-csi"
MANIFEST = REPO / "deploy" / "manifests" / "cfs-csi.yaml"
RELEASE, NAMESPACE = "cfs", "kube-system"  # the seed's release (meta.helm.sh/release-name: cfs)

HEADER = """\
# cfs-csi, rendered from deploy/helm/cfs-csi with its default values for Kubernetes >= 1.20:
#   helm template cfs deploy/helm/cfs-csi --namespace kube-system
# Regenerate with `python scripts/render_manifests.py`; a test fails when this file and the chart disagree.
# Older clusters (1.13-1.19) need other API versions and sidecars: use the chart, which picks them.
"""


class HelmError(RuntimeError):
    pass


def template(
    helm: Path,
    kube_version: str | None = None,
    values: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> str:
    """``helm template`` of the chart as text; ``values`` are ``--set`` pairs."""
    argv = [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if kube_version:
        argv += ["--kube-version", kube_version]
    for key, value in (values or {}).items():
        argv += ["--set", f"{key}={value}"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise HelmError(f"helm template did not finish within {timeout:.0f}s") from None
    if result.returncode != 0:
        raise HelmError(result.stderr.strip() or f"helm template exited {result.returncode}")
    return result.stdout


def objects(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document render, in order, without empty documents."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def manifest(helm: Path) -> str:
    """What ``deploy/manifests/cfs-csi.yaml`` must contain: the default render under a header."""
    return HEADER + template(helm)
