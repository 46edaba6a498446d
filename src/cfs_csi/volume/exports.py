"""Where a file system's data lives when no NFS server is involved.

The ``local`` backend and the CFS emulator keep each file system in a directory, and the node's bind
mounter finds it from the same NFS coordinates (host, fsid, sub-directory) that a real NFS mount uses.
One mapping, used by all three, keeps them from drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.nfs import normalize_subdir


@dataclass(frozen=True)
class ExportRoot:
    """``<root>/<host>/<fsid>/`` is the root of the file system served at ``host`` with NFS id ``fsid``."""

    root: Path

    def file_system_dir(self, host: str, fsid: str) -> Path:
        for part in (host, fsid):
            if not part or "/" in part or part in (".", ".."):
                raise InvalidArgument(f"{part!r} cannot name an export directory")
        return self.root / host / fsid

    def directory_for(self, host: str, fsid: str, subdir: str = "") -> Path:
        """The directory a mount of ``host:/<fsid>/<subdir>`` shows."""
        base = self.file_system_dir(host, fsid)
        relative = normalize_subdir(subdir)
        return base / relative if relative else base
