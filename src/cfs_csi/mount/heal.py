"""What NodePublishVolume does about a mount it finds at its target: a pure decision, tested by table.

A republish is how the kubelet (and csi-driver-nfs's users) expect a broken mount to be repaired: a mount whose
server answers ESTALE, EIO or ENOTCONN (the share was exported anew, the server was restarted, the client
connection is gone) never recovers by itself, so the node takes it down (the unmount ladder) and mounts again,
but only a mount it can show is of the very volume asked for. A mount that does not answer at all is left in
place: a new mount would hang on the same server, and taking the old one down could lose writes in flight.
"""

from __future__ import annotations

import enum


class Health(enum.Enum):
    OK = "ok"
    STALE = "stale"  # ESTALE, EIO, ENOTCONN...: broken for good
    HUNG = "hung"  # statvfs did not answer in time


class Action(enum.Enum):
    KEEP = "keep"  # published already: answer OK
    REFUSE = "refuse"  # another volume (or other options) at this target: ALREADY_EXISTS
    REMOUNT = "remount"  # ours and broken: unmount it, then mount again
    WAIT = "wait"  # ours, or perhaps ours, and not answering: UNAVAILABLE, left in place


def existing_mount_action(health: Health, same_volume: bool, same_access: bool) -> Action:
    """``same_volume``: the mount shows the export asked for (or our record says we mounted it there);
    ``same_access``: read-only as asked."""
    if not same_volume or not same_access:
        return Action.REFUSE
    if health is Health.STALE:
        return Action.REMOUNT
    if health is Health.HUNG:
        return Action.WAIT
    return Action.KEEP
