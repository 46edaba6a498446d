"""cfs-csi: a Kubernetes CSI driver for Tencent Cloud CFS (Cloud File Storage).

The public surface is the ``cfs-csi`` command (see :mod:`cfs_csi.cli`). Packages, by role:

- :mod:`cfs_csi.volume`: pure decisions (StorageClass parameters, capacity, NFS sources and options).
- :mod:`cfs_csi.cloud`: the file-storage interface and its backends.
- :mod:`cfs_csi.mount`: mount/umount/mountinfo/statvfs with timeouts, no CSI types.
- :mod:`cfs_csi.driver`: the CSI gRPC servers (identity, controller, node).
"""

DRIVER_NAME = "com.tencent.cloud.csi.cfs"
__version__ = "0.1.0"
