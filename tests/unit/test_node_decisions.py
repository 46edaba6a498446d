"""The node's pure decisions about broken mounts, the unmount ladder's time, mount failures and start-up records."""

from __future__ import annotations

import math

import pytest

from cfs_csi.driver.published import TargetState, keep_record
from cfs_csi.mount.errors import MountErrorKind
from cfs_csi.mount.heal import Action, Health, existing_mount_action
from cfs_csi.mount.mounter import ladder_budget, step_timeout
from cfs_csi.mount.runner import failure_kind


@pytest.mark.parametrize(
    ("health", "same_volume", "same_access", "action"),
    [
        (Health.OK, True, True, Action.KEEP),
        (Health.STALE, True, True, Action.REMOUNT),
        (Health.HUNG, True, True, Action.WAIT),
        (Health.OK, False, True, Action.REFUSE),
        (Health.STALE, False, True, Action.REFUSE),  # another volume's broken mount is not ours to take down
        (Health.OK, True, False, Action.REFUSE),
        (Health.STALE, True, False, Action.REFUSE),
        (Health.HUNG, True, False, Action.REFUSE),
    ],
)
def test_existing_mount_action(health: Health, same_volume: bool, same_access: bool, action: Action) -> None:
    assert existing_mount_action(health, same_volume, same_access) is action


@pytest.mark.parametrize(
    ("configured", "caller_left", "budget"),
    [
        (60.0, math.inf, 60.0),  # no deadline: the configured timeout
        (60.0, 120.0, 60.0),
        (60.0, 5.0, 4.5),  # a tenth kept to answer in time
        (60.0, 30.0, 29.0),  # at most a second kept
        (2.0, 30.0, 2.0),
        (60.0, 0.0, 0.0),
        (60.0, -3.0, 0.0),  # already past the deadline
    ],
)
def test_ladder_budget(configured: float, caller_left: float, budget: float) -> None:
    assert ladder_budget(configured, caller_left) == pytest.approx(budget)


@pytest.mark.parametrize(("left", "steps_left", "share"), [(8.0, 3, 4.0), (4.0, 2, 2.0), (2.0, 1, 2.0)])
def test_step_timeout(left: float, steps_left: int, share: float) -> None:
    assert step_timeout(left, steps_left) == share


@pytest.mark.parametrize(
    ("detail", "kind"),
    [
        ("mount.nfs: mounting 10.0.0.1:/abc/x failed, reason given by server: No such file or directory",
         MountErrorKind.NOT_FOUND),
        ("mount.nfs: access denied by server while mounting 10.0.0.1:/abc/x", MountErrorKind.FAILED),
        ("mount: /proc/self/fd/7: mount(2) system call failed: No such file or directory.", MountErrorKind.FAILED),
        ("umount: /x: not mounted.", MountErrorKind.FAILED),
        ("mount.nfs: Connection timed out", MountErrorKind.FAILED),
    ],
)  # fmt: skip
def test_failure_kind(detail: str, kind: MountErrorKind) -> None:
    assert failure_kind(detail) is kind


@pytest.mark.parametrize(
    ("state", "keep"),
    [(TargetState.MOUNTED, True), (TargetState.UNMOUNTED, True), (TargetState.GONE, False),
     (TargetState.OUTSIDE, True)],
)  # fmt: skip
def test_keep_record(state: TargetState, keep: bool) -> None:
    assert keep_record(state) is keep
