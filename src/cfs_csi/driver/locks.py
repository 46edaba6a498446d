"""One operation at a time per key (a volume name, id or target path).

CSI asks a plugin to answer ABORTED, not to queue, when an operation is already running for the same
volume: the caller retries with backoff, and a queue of stuck mounts cannot pile up behind a dead server.

A call's keys are held until the call ends *and* every ``mount``/``umount`` it started has exited: a call that
is cancelled (or times out) kills its command, but a command stuck in the kernel on a dead server may outlive
it, and a retry must not start a second one on the same target. Across a restart of the plugin the same holds
through a lock file per target (:class:`TargetLocks`): the commands inherit it, so it stays locked while one of
them runs, even after the process that started it was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cfs_csi.driver.errors import CsiError, StatusCode
from cfs_csi.mount.runner import Children, owned_by

log = logging.getLogger(__name__)

#: How often a call's keys are checked for release while a killed command of it has not exited (a rare case).
_POLL_SECONDS = 0.25


class TargetLocks:
    """One lock file per target path in the plugin's state directory, locked with ``flock`` for a call.

    A file is removed by the call that holds its lock when no command of that call is left; a caller that
    locked a file that was removed meanwhile (the inode it holds is no longer the one at the path) tries again.
    """

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)

    def _path(self, target_path: str) -> Path:
        return self._dir / f"{hashlib.sha256(os.path.normpath(target_path).encode()).hexdigest()}.lock"

    def acquire(self, target_path: str) -> int:
        """The locked file's descriptor; ABORTED while a command started for this target is still running."""
        fd = self.try_acquire(target_path)
        if fd is None:
            raise CsiError(
                StatusCode.ABORTED,
                f"a mount or unmount of {target_path} started earlier (perhaps before the plugin restarted) "
                "is still running",
            )
        return fd

    def try_acquire(self, target_path: str) -> int | None:
        path = self._path(target_path)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except BlockingIOError:
                os.close(fd)
                return None
            except FileNotFoundError:
                same = False  # removed by its holder meanwhile: take the new one
            except BaseException:
                os.close(fd)
                raise
            if same:
                return fd
            os.close(fd)

    def release(self, target_path: str, fd: int) -> None:
        """Remove the file (no command holds it: this caller's lock is the only one) and unlock it."""
        with contextlib.suppress(FileNotFoundError):
            self._path(target_path).unlink()
        os.close(fd)


class InFlight:
    def __init__(self, target_locks: TargetLocks | None = None) -> None:
        self._keys: set[str] = set()
        self._target_locks = target_locks
        self._waiting: set[asyncio.Task[None]] = set()

    @contextmanager
    def hold(self, *keys: str, target: str | None = None) -> Iterator[Children]:
        """Hold ``keys`` (and ``target``'s lock file, if given) for the block and for the commands it starts."""
        busy = [key for key in keys if key in self._keys]
        if busy:
            raise CsiError(StatusCode.ABORTED, f"an operation on {busy[0]!r} is already in progress")
        locks = self._target_locks if target is not None else None
        fd = locks.acquire(target) if locks is not None and target is not None else None
        self._keys.update(keys)
        try:
            with owned_by(Children(inherit=() if fd is None else (fd,))) as children:
                yield children
        finally:
            if locks is None or target is None or fd is None:
                self._keys.difference_update(keys)
            else:
                os.close(fd)
                # Still locked now only if a command of this call holds the file: it has not exited yet.
                again = locks.try_acquire(target)
                if again is not None:
                    locks.release(target, again)
                    self._keys.difference_update(keys)
                else:
                    log.warning("%s stays locked until the commands it started have exited", ", ".join(keys))
                    task = asyncio.get_running_loop().create_task(self._release_later(keys, locks, target))
                    self._waiting.add(task)
                    task.add_done_callback(self._waiting.discard)

    async def _release_later(self, keys: tuple[str, ...], locks: TargetLocks, target: str) -> None:
        while True:
            fd = locks.try_acquire(target)
            if fd is not None:
                break
            await asyncio.sleep(_POLL_SECONDS)
        locks.release(target, fd)
        self._keys.difference_update(keys)
        log.info("the commands of %s have exited; released", ", ".join(keys))
