"""What this node has published where, kept on disk so that it survives a plugin restart.

NodeGetVolumeStats must answer NOT_FOUND for a path that does not hold the named volume, and the mount
table alone cannot tell volume ids apart (a dedicated volume's id is not in its NFS source). One small JSON
file per target path answers that question without touching the mount.

The files are the truth (another process, a test or the next run may read or change them); what this process
saves is work (issue 15): a record that is already on disk as it should be is not written again, and
:meth:`PublishedVolumes.of_volume` parses again only the files whose inode, size or modification time changed.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Publication:
    volume_id: str
    target_path: str
    source: str
    #: Published with SINGLE_NODE_SINGLE_WRITER: no other target on this node may hold the volume.
    exclusive: bool = False


#: What identifies one version of a record file: (inode, size, modification and change time in ns).
_Version = tuple[int, int, int, int]


class PublishedVolumes:
    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self._dir.mkdir(parents=True, exist_ok=True)
        self._parsed: dict[str, tuple[_Version, Publication | None]] = {}

    def _path(self, target_path: str) -> Path:
        digest = hashlib.sha256(os.path.normpath(target_path).encode()).hexdigest()
        return self._dir / f"{digest}.json"

    def record(self, publication: Publication) -> None:
        """Save ``publication`` unless the file already says exactly this (a repeated publish writes nothing)."""
        if self.get(publication.target_path) == publication:
            return
        path = self._path(publication.target_path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(publication)))
        os.replace(tmp, path)

    def get(self, target_path: str) -> Publication | None:
        try:
            return _parse(self._path(target_path).read_bytes())
        except FileNotFoundError:
            return None

    def of_volume(self, volume_id: str) -> list[Publication]:
        """Every recorded publication of ``volume_id`` (a scan of the directory; unchanged files are not read)."""
        return [publication for publication in self.all() if publication.volume_id == volume_id]

    def all(self) -> list[Publication]:
        found = []
        seen = set()
        with os.scandir(self._dir) as entries:
            for entry in entries:
                if not entry.name.endswith(".json"):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    version = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                    cached = self._parsed.get(entry.name)
                    if cached is None or cached[0] != version:
                        with open(entry.path, "rb") as file:
                            cached = (version, _parse(file.read()))
                        self._parsed[entry.name] = cached
                except FileNotFoundError:
                    continue
                seen.add(entry.name)
                if cached[1] is not None:
                    found.append(cached[1])
        for name in self._parsed.keys() - seen:
            del self._parsed[name]
        return found

    def forget(self, target_path: str) -> None:
        self._path(target_path).unlink(missing_ok=True)


def _parse(data: bytes) -> Publication | None:
    """A record file's publication; None for a damaged one (ignored, as if absent)."""
    try:
        return Publication(**json.loads(data))
    except (ValueError, TypeError):
        return None


class TargetState(enum.Enum):
    """What start-up finds at a recorded target."""

    MOUNTED = "mounted"
    UNMOUNTED = "unmounted"  # the directory is there, nothing is mounted on it
    GONE = "gone"  # no such directory (the kubelet removed the pod's directory)
    OUTSIDE = "outside"  # not below the pods directory this run serves (recorded under another --kubelet-dir)


def keep_record(state: TargetState) -> bool:
    """Whether start-up keeps a publication record (see :meth:`NodeServicer.reconcile`).

    Only a record whose target no longer exists is dropped: there is nothing left to unmount or remove, and
    nobody will ask (the kubelet unpublishes only what it knows is mounted). A record whose target is there but
    unmounted stays, so that NodeGetVolumeStats reports the volume abnormal and NodeUnpublishVolume cleans it
    up; one outside this run's pods directory is not this run's to judge. Nothing is ever unmounted here: a
    mount under the pods directory without a record may be another driver's, and is left alone.
    """
    return state is not TargetState.GONE
