"""Mounting, unmounting and inspecting mounts, with timeouts; no CSI types in here.

The node plugin is the only user. Everything that can hang on a dead NFS server (the ``mount`` and
``umount`` commands, ``statvfs``) is bounded by a timeout; the mount table is read from
``/proc/self/mountinfo`` instead of by ``stat`` on a target, which would hang on a dead server too.
"""

from cfs_csi.mount.errors import MountError, MountErrorKind
from cfs_csi.mount.mounter import BindMounter, Mounter, NfsMounter, unmount
from cfs_csi.mount.mountinfo import MountEntry, MountTable, read_mount_table
from cfs_csi.mount.stats import StatsProbes, VolumeStats

__all__ = [
    "BindMounter",
    "MountEntry",
    "MountError",
    "MountErrorKind",
    "MountTable",
    "Mounter",
    "NfsMounter",
    "StatsProbes",
    "VolumeStats",
    "read_mount_table",
    "unmount",
]
