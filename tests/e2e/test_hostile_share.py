"""Shared mode against hostile tenants on the real control plane (issue 11, findings 1 and 2): the provisioner
process refuses with a ProvisioningFailed or VolumeFailedDelete event that names the reason, and a listing of the
whole share (paths, types, modes, link targets, content hashes) shows that the victim's directory and its file
are exactly as they were."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from cfs_csi.devcluster.cluster import ControlPlane
from tests.e2e.conftest import Kube, Operator, wait_for
from tests.e2e.test_operator import claim
from tests.e2e.test_subdir import Share, _bound, _hostile_pv
from tests.share_snapshot import changed, snapshot

PATTERN = "${.PVC.annotations.dir}"


def _claim(name: str, storage_class: str, namespace: str, directory: str) -> dict[str, Any]:
    body = claim(name, storage_class, namespace)
    body["metadata"]["annotations"] = {"dir": directory}
    return body


def _bound_to(kube: Kube, share: Share, namespace: str, name: str, directory: str) -> Path:
    kube.create(_claim(name, share.name, namespace, directory))
    pvc = wait_for(f"{namespace}/{name} bound", lambda: _bound(kube, namespace, name), timeout=90)
    assert kube.core.read_persistent_volume(pvc.spec.volume_name).spec.csi.volume_attributes["path"] == directory
    return share.mount / directory


def _event(kube: Kube, namespace: str, name: str, reason: str, fragment: str) -> Any:
    """Wait for the event ``reason`` on ``name`` whose message contains ``fragment``; its message."""

    def found() -> str | None:
        messages = [e.message for e in kube.events_for(namespace, name) if e.reason == reason]
        return next((m for m in messages if fragment in m), None)

    try:
        return wait_for(f"{reason} on {namespace}/{name} saying {fragment!r}", found, timeout=90)
    except AssertionError:
        seen = [(e.involved_object.name, e.reason, e.message) for e in kube.core.list_namespaced_event(namespace).items]
        raise AssertionError(f"no such event; the namespace has {seen}") from None


def test_a_directory_belongs_to_one_claim(kube: Kube, operator: Operator, control_plane: ControlPlane) -> None:
    """Two tenants' claims give the same directory (and one inside it): only the first gets it."""
    share = Share(kube, operator, operator.root, "cfs-dup", reclaim="Delete", pathPattern=PATTERN, onDelete="delete",
                  reuseExistingDirectory="true")  # fmt: skip
    share.start_provisioner(control_plane.kubeconfig)
    victim_ns, thief_ns = kube.namespace("dup-victim"), kube.namespace("dup-thief")
    try:
        victim = _bound_to(kube, share, victim_ns, "v1", "v1")
        (victim / "secret.txt").write_text("the victim's data")
        volume = kube.core.read_namespaced_persistent_volume_claim("v1", victim_ns).spec.volume_name
        before = snapshot(share.mount)

        kube.create(_claim("steal", share.name, thief_ns, "v1"))
        kube.create(_claim("inside", share.name, thief_ns, "v1/inner"))
        _event(kube, thief_ns, "steal", "ProvisioningFailed", f"'v1' is the directory of PersistentVolume {volume}")
        _event(
            kube, thief_ns, "inside", "ProvisioningFailed", f"is inside the directory 'v1' of PersistentVolume {volume}"
        )
        assert [c.status.phase for c in kube.pvcs(thief_ns)] == ["Pending", "Pending"]
        kube.core.delete_namespaced_persistent_volume_claim("steal", thief_ns)  # nothing to reclaim: no PV
        assert changed(before, snapshot(share.mount)) == set()
        assert (victim / "secret.txt").read_text() == "the victim's data"
    finally:
        share.stop()


def test_planted_symlinks_are_never_followed(kube: Kube, operator: Operator, control_plane: ControlPlane) -> None:
    """A link ``p -> vdir`` on the share: a claim for ``p/sub`` (with reuse allowed) and a released PV of ours
    naming ``p/sub`` would both have acted on the victim's ``vdir/sub``; both are refused, nothing changes."""
    share = Share(kube, operator, operator.root, "cfs-link", reclaim="Delete", pathPattern=PATTERN, onDelete="delete",
                  reuseExistingDirectory="true")  # fmt: skip
    share.start_provisioner(control_plane.kubeconfig)
    namespace = kube.namespace("link")
    try:
        victim = _bound_to(kube, share, namespace, "victim", "vdir")
        (victim / "sub").mkdir()
        (victim / "sub").chmod(0o700)
        (victim / "sub" / "secret.txt").write_text("the victim's data")
        (share.mount / "p").symlink_to("vdir")
        before = snapshot(share.mount)

        kube.create(_claim("steal", share.name, namespace, "p/sub"))
        _event(kube, namespace, "steal", "ProvisioningFailed", "p is a symbolic link")
        kube.core.create_persistent_volume(_hostile_pv("hostile-link", share, "p/sub"))
        _event(kube, "default", "hostile-link", "VolumeFailedDelete", "p is a symbolic link")

        assert changed(before, snapshot(share.mount)) == set()
        assert (victim / "sub" / "secret.txt").read_text() == "the victim's data"
        assert (victim / "sub").stat().st_mode & 0o777 == 0o700
    finally:
        with contextlib.suppress(ApiException):
            kube.core.delete_persistent_volume("hostile-link")
        share.stop()
