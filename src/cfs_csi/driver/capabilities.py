"""Which volume capabilities a CFS file system can serve (pure; used by controller and node)."""

from __future__ import annotations

from collections.abc import Iterable

from cfs_csi.csi import csi_pb2

_MODE = csi_pb2.VolumeCapability.AccessMode

#: NFS serves every access mode. SINGLE_NODE_SINGLE_WRITER is enforced by the node plugin (one target per
#: node); across nodes, single-node modes are enforced by Kubernetes, since there is no attach step.
SUPPORTED_MODES = frozenset(
    {
        _MODE.SINGLE_NODE_WRITER,
        _MODE.SINGLE_NODE_READER_ONLY,
        _MODE.MULTI_NODE_READER_ONLY,
        _MODE.MULTI_NODE_SINGLE_WRITER,
        _MODE.MULTI_NODE_MULTI_WRITER,
        _MODE.SINGLE_NODE_SINGLE_WRITER,
        _MODE.SINGLE_NODE_MULTI_WRITER,
    }
)
SUPPORTED_FS_TYPES = frozenset({"", "nfs", "nfs4"})


def unsupported_reason(capability: csi_pb2.VolumeCapability) -> str | None:
    """Why CFS cannot serve ``capability``, or ``None`` if it can."""
    access_type = capability.WhichOneof("access_type")
    if access_type is None:
        return "access_type (mount or block) is required in the volume capability; CFS serves mount"
    if access_type != "mount":
        return "CFS is a file system: only mount volumes are supported, not block"
    if capability.mount.fs_type not in SUPPORTED_FS_TYPES:
        return f"fs_type {capability.mount.fs_type!r} is not supported; CFS is mounted as nfs"
    mode = capability.access_mode.mode
    if mode not in SUPPORTED_MODES:
        return f"access mode {_MODE.Mode.Name(mode)} is not supported"
    return None


def first_unsupported(capabilities: Iterable[csi_pb2.VolumeCapability]) -> str | None:
    for capability in capabilities:
        reason = unsupported_reason(capability)
        if reason:
            return reason
    return None
