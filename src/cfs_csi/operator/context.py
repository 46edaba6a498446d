"""What the kopf handlers share: configuration and clients, passed in through kopf's ``memo``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cfs_csi.cloud.base import FileStorage
from cfs_csi.operator.desired import ProvisionerTemplate


@dataclass
class OperatorContext:
    namespace: str
    storage: FileStorage
    template: ProvisionerTemplate
    api: Any  # kubernetes.client.ApiClient (untyped)
    resync_seconds: float = 30.0
