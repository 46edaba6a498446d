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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cfs_csi.volume.capacity import CapacityError
from cfs_csi.volume.quota import quota_for_claim


@dataclass(frozen=True)
class Publication:
    volume_id: str
    target_path: str
    source: str
    #: Published with SINGLE_NODE_SINGLE_WRITER: no other target on this node may hold the volume.
    exclusive: bool = False
    #: A shared volume's directory quota in bytes: from the volume context at publish (the PV's ``quotaBytes``),
    #: raised by NodeExpandVolume. ``None``: no quota (dedicated volumes, and records written before quotas).
    quota_bytes: int | None = None
    #: The NFS major version it was mounted with ("3", "4"): a v4 mount is unmounted by the system call
    #: (:meth:`~cfs_csi.mount.mounter.Mounter.unmounts_by_syscall`). ``None``: records written before it.
    nfs_version: str | None = None


#: Fields left out of a record file while they are None, so that a plugin from before them still reads it.
_OPTIONAL = ("quota_bytes", "nfs_version")
_FIELDS = frozenset(Publication.__dataclass_fields__)


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
        data = asdict(publication)
        for name in _OPTIONAL:
            if data[name] is None:
                del data[name]
        tmp.write_text(json.dumps(data))
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
    """A record file's publication; None for a damaged one (ignored, as if absent). A quota that is not a positive
    integer, or an NFS version that is not a string, is dropped (the record stays without it), since the file is
    read back on every stats call. Fields this plugin does not know (written by a newer one) are ignored."""
    try:
        fields = json.loads(data)
        publication = Publication(**{key: value for key, value in fields.items() if key in _FIELDS})
    except (ValueError, TypeError, AttributeError):
        return None
    quota = publication.quota_bytes
    if quota is not None and (type(quota) is not int or not 0 < quota < 2**63):
        publication = replace(publication, quota_bytes=None)
    if publication.nfs_version is not None and type(publication.nfs_version) is not str:
        publication = replace(publication, nfs_version=None)
    return publication


def quota_after_expansion(shared: bool, recorded: int | None, required: int, limit: int) -> int | None:
    """The quota a volume's records hold after NodeExpandVolume (pure; None: no quota, nothing changes).

    - A dedicated volume: nothing on the node changes (the controller grew the file system): None.
    - A shared volume: the quota the controller set for the same request (the same decision,
      :func:`cfs_csi.volume.quota.quota_for_claim`, on ``required_bytes`` or else ``limit_bytes``: whole GiB, at least
      10 GiB; the kubelet passes the PV's new capacity, which is the quota the controller answered). A shared volume
      published without a quota gets the new one: the kubelet calls this only after the controller succeeded, and
      the controller sets a quota on every shared volume it expands.
    - No size asked: the recorded quota stays.
    - A quota below the recorded one is not applied; the recorded one stays and is answered. The controller never
      lowers a quota for an expansion (Kubernetes refuses to shrink a claim), so a smaller figure can only come
      from a stale or wrong call, and the node, without cloud access, cannot check it.

    :class:`~cfs_csi.volume.capacity.CapacityError` (OUT_OF_RANGE) for a size no quota can have, or above
    ``limit_bytes``, as the controller answers.
    """
    if not shared:
        return None
    if required < 0 or limit < 0:
        raise CapacityError("capacity range values must not be negative")
    if not required and not limit:
        return recorded
    decision = quota_for_claim(required or limit)
    if not decision.possible:
        raise CapacityError(decision.reason)
    if limit and decision.capacity_bytes > limit:
        raise CapacityError(f"{decision.reason}, which exceeds limit_bytes {limit}")
    return max(decision.capacity_bytes, recorded or 0)


def largest_quota(publications: list[Publication]) -> int | None:
    """The largest quota among the records of one volume (pure): quotas are only ever raised, so the largest one
    this node was told of is the newest."""
    quotas = [p.quota_bytes for p in publications if p.quota_bytes is not None]
    return max(quotas) if quotas else None


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
