"""What the provisioner does on the share, as plain functions of an open handle of the share root.

Nothing outside the PV's own directory is ever changed: a claim's directory (and any missing parent on its way)
is created only when no other volume owns it or anything inside or above it (:mod:`.ownership`), and every
step on disk goes through :mod:`cfs_csi.safefs`, from the root handle, one component at a time, refusing
symlinks; a chmod is an ``fchmod`` of the handle we walked to, a delete is an fd-based ``rmtree`` of an entry
checked to be a real directory, an archive is a rename within the parent's handle. A pod can swap any
directory it can write for a symlink at any moment; none of that redirects us.

The owner record: before creating a claim's directory, ``<RESERVED>/owners/<pv>`` is written with the path.
If the provisioner dies before the PV exists, the retry finds its own directory present with no PV naming it
and, thanks to the record, resumes instead of refusing it forever as someone else's. The reserved directory is
a top-level directory that no pattern or PV path may name (:data:`.paths.RESERVED`), so no pod ever sees it.
Once the PV exists it is the record, and the file is removed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from cfs_csi import safefs
from cfs_csi.provisioner.ownership import Verdict, conflict, provision_decision
from cfs_csi.provisioner.paths import RESERVED, DeleteAction, archive_name, checked_relative
from cfs_csi.volume.errors import InvalidArgument

OWNERS = f"{RESERVED}/owners"


class Refused(InvalidArgument):
    """The share is left as it is, for the reason given (a conflict, an existing directory, a symlink)."""


@contextlib.contextmanager
def share_root(mount: Path) -> Iterator[int]:
    """A directory handle of the share's mount point (a trusted path: the provisioner pod's own mount)."""
    fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _record_name(volume: str) -> str:
    [name] = safefs.components(volume)  # one plain file name, never a path
    return name


def recorded_path(root_fd: int, volume: str) -> str | None:
    """The directory ``volume``'s owner record names, if there is a record."""
    try:
        owners = safefs.open_dir(root_fd, OWNERS)
    except FileNotFoundError:
        return None
    try:
        data = safefs.read_file(owners, _record_name(volume))
    finally:
        os.close(owners)
    return None if data is None else data.decode(errors="replace")


def _write_record(root_fd: int, volume: str, path: str) -> None:
    owners, _ = safefs.make_dirs(root_fd, OWNERS, 0o700)
    try:
        safefs.write_file(owners, _record_name(volume), path.encode())
    finally:
        os.close(owners)


def forget_owner(root_fd: int, volume: str) -> None:
    """Remove ``volume``'s owner record (its PV is the record now, or its directory is gone)."""
    try:
        owners = safefs.open_dir(root_fd, OWNERS)
    except FileNotFoundError:
        return
    try:
        safefs.remove_file(owners, _record_name(volume))
    finally:
        os.close(owners)


def _is_directory(root_fd: int, path: str) -> bool:
    """Whether ``path`` is a directory reached without a symlink; UnsafePath if a component is not one."""
    try:
        os.close(safefs.open_dir(root_fd, path))
    except FileNotFoundError:
        return False
    return True


def provision_directory(
    root_fd: int, path: str, volume: str, owners: Mapping[str, str], reuse: bool, mode: int
) -> Verdict:
    """Make ``path`` the directory of ``volume``, or raise :class:`Refused` having changed nothing.

    ``owners``: every other volume's directory (:func:`.ownership.share_owners` plus reservations). A directory
    this call creates gets ``mode`` exactly (``fchmod``: ``mkdir`` is masked by the umask); an existing
    directory reused by the class's choice keeps its mode, since its owner set it.
    """
    path = checked_relative(path)
    reason = conflict(path, volume, owners)  # first: the most useful reason, and no I/O for a conflict
    if reason:
        raise Refused(reason)
    try:
        exists = _is_directory(root_fd, path)
    except InvalidArgument as exc:
        raise Refused(str(exc)) from None
    decision = provision_decision(path, volume, owners, exists, recorded_path(root_fd, volume), reuse)
    if decision.verdict is Verdict.REFUSE:
        raise Refused(decision.reason)
    if decision.verdict is Verdict.REUSE:
        return decision.verdict
    if decision.verdict is Verdict.CREATE:
        _write_record(root_fd, volume, path)
    try:
        fd, created = safefs.make_dirs(root_fd, path, mode)
        try:
            if decision.verdict is Verdict.CREATE and not created:
                raise Refused(f"directory {path!r} appeared while it was being created; not taking it")
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    except InvalidArgument as exc:  # a symlink swapped in since the check, or the race above
        if decision.verdict is Verdict.CREATE:
            forget_owner(root_fd, volume)
        raise Refused(str(exc)) from None
    return decision.verdict


def reclaim_directory(root_fd: int, path: str, volume: str, owners: Mapping[str, str], action: DeleteAction) -> str:
    """Delete, keep or archive ``volume``'s directory; what was done. :class:`Refused` changes nothing.

    ``owners``: the other PVs of the share. A directory another PV names, or one inside or above another PV's
    directory, is never deleted or moved: that would take the other volume's data with it.
    """
    try:
        path = checked_relative(path)
    except InvalidArgument as exc:
        raise Refused(str(exc)) from None
    reason = conflict(path, volume, owners)
    if reason:
        raise Refused(f"{reason}; leaving it")
    try:
        parent, leaf = safefs.open_parent(root_fd, path)
    except FileNotFoundError:
        forget_owner(root_fd, volume)
        return "was already gone"
    except InvalidArgument as exc:
        raise Refused(str(exc)) from None
    try:
        return _reclaim_in(parent, path, leaf, volume, owners, action, root_fd)
    except safefs.UnsafePath as exc:
        raise Refused(str(exc)) from None
    finally:
        os.close(parent)


def _reclaim_in(
    parent: int, path: str, leaf: str, volume: str, owners: Mapping[str, str], action: DeleteAction, root_fd: int
) -> str:
    if safefs.entry_mode(parent, leaf) is None:
        forget_owner(root_fd, volume)
        return "was already gone"
    if action is DeleteAction.RETAIN:
        forget_owner(root_fd, volume)
        return "retained"
    if action is DeleteAction.DELETE:
        done = "deleted" if safefs.remove_tree(parent, leaf) else "was already gone"
        forget_owner(root_fd, volume)
        return done

    def taken(candidate: str) -> bool:
        name = candidate.rpartition("/")[2]
        return safefs.entry_mode(parent, name) is not None or conflict(candidate, volume, owners) is not None

    archived = archive_name(path, taken)
    safefs.rename_directory(parent, leaf, archived.rpartition("/")[2])
    forget_owner(root_fd, volume)
    return f"archived as {archived}"
