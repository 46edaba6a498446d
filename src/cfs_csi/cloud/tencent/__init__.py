"""The Tencent Cloud CFS backend, on the official SDK (``tencentcloud-sdk-python-cfs``, API 2019-07-19)."""

from cfs_csi.cloud.tencent.backend import TencentFileStorage

__all__ = ["TencentFileStorage"]
