"""Pure volume decisions: no I/O, no gRPC, no cloud SDK.

Everything here takes data and returns data (or raises :class:`InvalidArgument`), so it is covered by
table-driven unit tests and shared by the controller, the node plugin and the shared-mode components.
"""

from cfs_csi.volume.capacity import GIB, CapacityError, required_capacity
from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.nfs import NfsMount, nfs_mount_for
from cfs_csi.volume.params import StorageType, VolumeParameters, parse_parameters

__all__ = [
    "GIB",
    "CapacityError",
    "InvalidArgument",
    "NfsMount",
    "StorageType",
    "VolumeParameters",
    "nfs_mount_for",
    "parse_parameters",
    "required_capacity",
]
