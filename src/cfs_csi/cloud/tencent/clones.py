"""Clones (a volume from a volume) for the tencent backend, built on CFS snapshots.

CFS has no file-system copy, so a clone is made of three cloud steps, each found again by name after any
interruption, so that a retry of the same CreateVolume resumes instead of starting over:

1. a temporary snapshot of the source, named after the *new* volume (:func:`.naming.temporary_snapshot_name`)
   and tagged as ours and temporary (:data:`~cfs_csi.cloud.ownership.TAG_TEMPORARY`); while it is being taken
   the call waits within the caller's deadline, then answers PENDING (ABORTED over CSI) and the retry finds it;
2. the new file system, created from that snapshot (``CreateCfsFileSystem`` with ``SnapshotId``) and found by
   its own name like every volume;
3. once the file system is available, the temporary snapshot is deleted.

What is left when a step fails: an error the CO retries leaves everything for the retry, which resumes at the
first step not done (a crash between 2 and 3 is cleaned up by the retry: it finds the file system available and
deletes the snapshot). Any other error deletes what the call made, the file system and the snapshot, before
answering. If the snapshot alone cannot be deleted for good (say the credentials may not delete snapshots), the
clone is complete and usable, so it is returned, the snapshot is named in an ERROR line, and DeleteVolume of the
clone deletes it before the file system (:meth:`TencentClones.cleanup`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cfs_csi.cloud.base import FileSystem, FileSystemSpec, Snapshot
from cfs_csi.cloud.errors import CloudError, ErrorKind
from cfs_csi.cloud.ownership import Ownership, clone_refusal
from cfs_csi.cloud.tencent.snapshots import TencentSnapshots
from cfs_csi.volume.names import cut

log = logging.getLogger(__name__)

#: A rule of :mod:`cfs_csi.cloud.ownership`: None if the file system may be used so, else why not.
Rule = Callable[[str, Ownership], str | None]
#: The backend's look-up of one file system under a rule: its description, or NOT_FOUND (naming it as the given
#: words) or REFUSED.
Proven = Callable[[str, Rule, str], Awaitable[dict[str, Any]]]


class TencentClones:
    """``proven`` is the backend's look-up of one file system under an ownership rule, ``capacity`` its size."""

    def __init__(self, snapshots: TencentSnapshots, proven: Proven, capacity: Callable[[dict[str, Any]], int]) -> None:
        self._snapshots, self._proven, self._capacity = snapshots, proven, capacity

    async def snapshot(self, spec: FileSystemSpec) -> Snapshot:
        """Step 1: the temporary snapshot of ``spec.source_volume`` for ``spec.name``, ready to restore.

        NOT_FOUND if the source does not exist, REFUSED unless it is a proven dedicated volume of ours (checked
        before anything is taken), PENDING while the snapshot is being taken.
        """
        source = spec.source_volume
        info = await self._proven(source, clone_refusal, "source volume")
        snapshot = await self._snapshots.ensure_temporary(spec.name, source, self._capacity(info))
        if not snapshot.ready:
            raise CloudError(
                ErrorKind.PENDING,
                f"temporary snapshot {snapshot.id} of {source} for clone {cut(spec.name)} is {snapshot.state.value}; "
                "retry later",
            )
        return snapshot

    async def completed(self, spec: FileSystemSpec, making: Awaitable[FileSystem]) -> FileSystem:
        """Steps 2 and 3: await the file system ``making`` brings, then delete the temporary snapshot.

        After a failure no retry may follow, the snapshot is deleted too (the file system is ``making``'s
        business: the backend deletes one it created).
        """
        try:
            fs = await making
        except CloudError as exc:
            if not exc.kind.retried:
                await self.abandon(spec.name, exc.message)
            raise
        except Exception as exc:  # a bug: answered INTERNAL, after which no retry may come
            await self.abandon(spec.name, type(exc).__name__)
            raise
        if fs.ready:
            await self._finish(spec.name)
        return fs

    async def cleanup(self, volume: str) -> None:
        """Delete what a clone may have left (its temporary snapshot): DeleteVolume of the clone, before its file
        system, so that a failure here leaves the volume to retry on."""
        for snapshot_id in await self._snapshots.delete_temporary(volume):
            log.warning("deleted temporary snapshot %s of clone %s, left by its creation", snapshot_id, cut(volume))

    async def abandon(self, volume: str, reason: str) -> None:
        """Delete the temporary snapshot of a clone that failed for good; a failure to do so is logged, naming it."""
        try:
            deleted = await self._snapshots.delete_temporary(volume)
        except CloudError as exc:
            log.error("could not delete the temporary snapshot of clone %s after its failure (%s): %s; delete the "
                      "snapshots tagged cfs-csi/temporary-for=%s by hand", cut(volume), reason, exc.message,
                      cut(volume))  # fmt: skip
            return
        for snapshot_id in deleted:
            log.warning("deleted temporary snapshot %s of clone %s, which failed: %s", snapshot_id, cut(volume), reason)

    async def _finish(self, volume: str) -> None:
        try:
            deleted = await self._snapshots.delete_temporary(volume)
        except CloudError as exc:
            if exc.kind.retried:
                raise  # the file system stays and the retry, finding it available, deletes the snapshot
            log.error("clone %s is available but its temporary snapshot could not be deleted: %s; DeleteVolume of the "
                      "clone deletes it", cut(volume), exc.message)  # fmt: skip
            return
        for snapshot_id in deleted:
            log.info("deleted temporary snapshot %s of clone %s", snapshot_id, cut(volume))
