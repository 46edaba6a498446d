"""Names and tags that let the driver find its own file systems again, whatever failed in between.

CFS limits FsName and ClientToken to 64 bytes while CSI names may be 128 characters, so long names are
shortened deterministically (a readable prefix and a hash) and the full name is kept in a tag.
"""

from __future__ import annotations

import hashlib

from cfs_csi.cloud.ownership import TAG_CAPACITY, TAG_CLUSTER, TAG_VERS, TAG_VOLUME
from cfs_csi.volume.params import NfsVersion

MAX_NAME_BYTES = 64


def fs_name(cluster_id: str, volume_name: str) -> str:
    """``<cluster id>_<volume name>`` (or the volume name alone), at most 64 bytes, same input same name."""
    full = f"{cluster_id}_{volume_name}" if cluster_id else volume_name
    if len(full.encode()) <= MAX_NAME_BYTES:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:12]
    prefix = full.encode()[: MAX_NAME_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{prefix}-{digest}"


def client_token(name: str) -> str:
    """The idempotency key of CreateCfsFileSystem for the file system called ``name``."""
    return "cfs-csi-" + hashlib.sha256(name.encode()).hexdigest()[:48]


def own_tags(cluster_id: str, volume_name: str, capacity_bytes: int, vers: NfsVersion) -> list[tuple[str, str]]:
    tags = [(TAG_VOLUME, volume_name), (TAG_CAPACITY, str(capacity_bytes)), (TAG_VERS, vers.value)]
    if cluster_id:
        tags.append((TAG_CLUSTER, cluster_id))
    return tags
