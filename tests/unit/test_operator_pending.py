"""Why a claim of a shared class waits, as its Warning says (pure; issue 17 item 3)."""

from __future__ import annotations

from typing import Any

import pytest

from cfs_csi.operator.storageclass import pending_reason

META = {"name": "cfs-share", "namespace": "kube-system"}


def tcfs(*conditions: dict[str, str]) -> dict[str, Any]:
    return {"metadata": META, "status": {"conditions": list(conditions)}}


@pytest.mark.parametrize(
    ("tcfs_object", "expected"),
    [
        ({"metadata": META}, None),  # not judged yet: no status
        (tcfs({"type": "Ready", "status": "True", "reason": "FileSystemReady"}), None),
        (tcfs({"type": "Other", "status": "False", "reason": "X"}), None),
        (
            tcfs({"type": "Ready", "status": "False", "reason": "FileSystemNotFound", "message": "fromExistCfs x"}),
            ("FileSystemNotFound", "shared file system not ready (Tcfs kube-system/cfs-share): fromExistCfs x"),
        ),
        (
            tcfs({"type": "Ready", "status": "False"}),
            ("SharedFileSystemNotReady", "shared file system not ready (Tcfs kube-system/cfs-share): no message"),
        ),
        (tcfs({"type": "Ready", "status": "Unknown", "reason": "Creating"}), None),
    ],
)
def test_pending_reason(tcfs_object: dict[str, Any], expected: tuple[str, str] | None) -> None:
    assert pending_reason(tcfs_object) == expected
