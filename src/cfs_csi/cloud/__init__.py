"""File-storage backends behind one small interface.

The CSI controller (and later the shared-mode operator) only ever calls :class:`FileStorage`; which cloud
answers is decided once, at start-up, by :func:`cfs_csi.cloud.factory.make_backend`.
"""

from cfs_csi.cloud.base import FileStorage, FileSystem, FileSystemSpec, FileSystemState
from cfs_csi.cloud.errors import CloudError, ErrorKind

__all__ = [
    "CloudError",
    "ErrorKind",
    "FileStorage",
    "FileSystem",
    "FileSystemSpec",
    "FileSystemState",
]
