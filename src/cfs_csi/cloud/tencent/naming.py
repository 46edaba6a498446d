"""Names and tags that let the driver find its own file systems again, whatever failed in between.

CFS limits FsName and ClientToken to 64 bytes while CSI names may be 128 characters, so long names are
shortened deterministically (a readable prefix and a hash) and the full name is kept in a tag.
"""

from __future__ import annotations

import hashlib
import re

from cfs_csi.cloud.ownership import (
    TAG_CAPACITY,
    TAG_CLUSTER,
    TAG_SNAPSHOT,
    TAG_SOURCE_FS,
    TAG_SOURCE_SNAPSHOT,
    TAG_TEMPORARY,
    TAG_VERS,
    TAG_VOLUME,
    temporary_key,
)
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


def own_tags(
    cluster_id: str,
    volume_name: str,
    capacity_bytes: int,
    vers: NfsVersion,
    source_snapshot: str = "",
    source_fs: str = "",
) -> list[tuple[str, str]]:
    tags = [(TAG_VOLUME, volume_name), (TAG_CAPACITY, str(capacity_bytes)), (TAG_VERS, vers.value)]
    if cluster_id:
        tags.append((TAG_CLUSTER, cluster_id))
    if source_snapshot:
        tags.append((TAG_SOURCE_SNAPSHOT, source_snapshot))
    if source_fs:
        tags.append((TAG_SOURCE_FS, source_fs))
    return tags


#: What CFS accepts in a SnapshotName besides CJK characters (which we never produce): at most 64 of these.
_SNAPSHOT_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def snapshot_name(cluster_id: str, name: str) -> str:
    """The cloud ``SnapshotName`` of CSI snapshot ``name``: ``<cluster id>_<name>`` when CFS accepts it as it is,
    else its safe characters shortened, plus a hash of the full name (same input, same name)."""
    full = f"{cluster_id}_{name}" if cluster_id else name
    safe = _SNAPSHOT_UNSAFE.sub("-", full)
    if safe == full and len(full) <= MAX_NAME_BYTES:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:12]
    return f"{safe[: MAX_NAME_BYTES - len(digest) - 1]}-{digest}"


def snapshot_tags(cluster_id: str, name: str, capacity_bytes: int) -> list[tuple[str, str]]:
    """Tags that prove a snapshot ours (:func:`cfs_csi.cloud.ownership.judge_snapshot`) and keep its source's size."""
    tags = [(TAG_SNAPSHOT, name), (TAG_CAPACITY, str(capacity_bytes))]
    if cluster_id:
        tags.append((TAG_CLUSTER, cluster_id))
    return tags


def temporary_snapshot_name(cluster_id: str, volume: str) -> str:
    """The cloud ``SnapshotName`` of the temporary snapshot that clones into volume ``volume`` (one per volume)."""
    return snapshot_name(cluster_id, temporary_key(volume))


def temporary_snapshot_tags(cluster_id: str, volume: str, source_fs: str, capacity_bytes: int) -> list[tuple[str, str]]:
    """Tags that prove a clone's temporary snapshot ours and temporary, and name the clone it is for."""
    tags = [(TAG_TEMPORARY, volume), (TAG_SOURCE_FS, source_fs), (TAG_CAPACITY, str(capacity_bytes))]
    if cluster_id:
        tags.append((TAG_CLUSTER, cluster_id))
    return tags
