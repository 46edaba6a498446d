"""Choose the file-storage backend named on the command line."""

from __future__ import annotations

from pathlib import Path

from cfs_csi.cloud.base import FileStorage
from cfs_csi.cloud.local import LocalFileStorage

BACKENDS = ("local", "tencent")


def make_backend(name: str, state_dir: Path, local_host: str = "127.0.0.1") -> FileStorage:
    if name == "local":
        return LocalFileStorage(state_dir, host=local_host)
    if name == "tencent":
        raise SystemExit("cfs-csi: the tencent backend is not part of this build yet; use --backend local")
    raise SystemExit(f"cfs-csi: unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
