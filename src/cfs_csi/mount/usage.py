"""What a shared volume really holds: a bounded walk below its target, for stats against its directory quota.

A shared-mode claim is a directory of one CFS file system with a directory quota; ``statvfs`` of its mount says
the whole file system's figures, not the claim's. The bytes and inodes used below the target are found by a walk
(:func:`walk`), and :func:`report` decides what NodeGetVolumeStats says from the quota, the walk and ``statvfs``.

The tree is written by a pod, so it is hostile. The walk:

- never follows a symlink (``lstat`` of every entry; directories are opened with ``O_NOFOLLOW | O_DIRECTORY``
  relative to their parent's handle, so an entry swapped for a symlink or a file mid-walk is skipped, not entered);
- never opens anything but directories (FIFOs, sockets, devices are only ``lstat``-ed: nothing can block on them);
- never crosses into another mount (an entry on another device is neither counted nor entered; a directory that is
  a mount root of the same device, a bind mount, is not entered);
- recurses with an explicit stack, holding one descriptor per level and the names of the sub-directories still to
  visit: it stops (usage unknown) beyond :attr:`Budget.depth` levels, :attr:`Budget.pending` names waiting,
  :attr:`Budget.entries` entries or :attr:`Budget.seconds` seconds. A walk that stops reports no figure at all:
  a partial count would be a made-up number;
- counts allocated bytes (``st_blocks`` x 512, what ``du`` says and what a server charges), each inode once
  (hard links are counted once within the walk).

:class:`UsageProbes` runs walks as :class:`cfs_csi.mount.stats.StatsProbes` runs ``statvfs``: at most one per
target at a time, each in a daemon thread of its own, so that a hung NFS server costs other volumes and the event
loop nothing; a walk past its deadline answers "unknown" at once to later calls without starting another. Results
are cached per target for :func:`cache_lifetime` (longer for costly walks), so the kubelet's per-minute calls do not
walk a huge tree every minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cfs_csi.mount.mountpoint import is_mount_root
from cfs_csi.mount.stats import VolumeStats

#: The CSI volume attribute in which the sub-directory provisioner records a claim's directory quota in bytes
#: (the same name as :data:`cfs_csi.provisioner.quotas.QUOTA_ATTRIBUTE`, which the node must not import).
QUOTA_ATTRIBUTE = "quotaBytes"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: The tree changed under the walk (an entry removed, or swapped for a file or a symlink): skip that entry.
_CHANGED = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP}


def quota_of(context: Mapping[str, str]) -> int | None:
    """The quota a volume context records (:data:`QUOTA_ATTRIBUTE`), in bytes; ``None`` if none or nonsense."""
    raw = str(context.get(QUOTA_ATTRIBUTE) or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63 else None


@dataclass(frozen=True)
class Budget:
    """How far one walk may go. Past any limit, the volume's usage is reported unknown.

    Memory: one descriptor per level (``depth``) and one directory stream at a time, up to ``pending`` names of
    directories still to visit and ``links`` inode numbers of hard-linked files (about 100 bytes each): a few MB at
    worst, for a moment. Time: each entry costs one ``lstat`` (answered from the attributes READDIRPLUS brought on
    NFS) and some Python.
    """

    entries: int = 1_000_000
    seconds: float = 20.0
    depth: int = 128
    pending: int = 50_000
    links: int = 50_000


@dataclass(frozen=True)
class Usage:
    """The result of one walk: ``complete`` False means no figure is known (``reason`` says why)."""

    used_bytes: int
    used_inodes: int
    complete: bool
    reason: str = ""
    seconds: float = 0.0
    #: The walk stopped at a budget (as opposed to an error): worth caching for long, walking again costs as much.
    exhausted: bool = False


def _unknown(reason: str, seconds: float = 0.0, exhausted: bool = False) -> Usage:
    return Usage(0, 0, False, reason, seconds, exhausted)


class _Stop(Exception):
    def __init__(self, reason: str, exhausted: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exhausted = exhausted


@dataclass
class _Walk:
    budget: Budget
    clock: Callable[[], float]
    end: float
    device: int
    entries: int = 0
    used_bytes: int = 0
    used_inodes: int = 0
    pending: int = 0
    #: Inodes of files with more than one link, counted already.
    links: set[int] = field(default_factory=set)

    def count(self, st: os.stat_result) -> None:
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            if st.st_ino in self.links:
                return
            if len(self.links) >= self.budget.links:
                raise _Stop(f"more than {self.budget.links} hard-linked files")
            self.links.add(st.st_ino)
        self.used_bytes += st.st_blocks * 512
        self.used_inodes += 1

    def scan(self, fd: int) -> list[str]:
        """Count the entries of the directory ``fd``; the names of its sub-directories (of this device)."""
        subdirs: list[str] = []
        with os.scandir(fd) as entries:
            for entry in entries:
                self.entries += 1
                if self.entries > self.budget.entries:
                    raise _Stop(f"more than {self.budget.entries} entries")
                if self.clock() > self.end:
                    raise _Stop(f"more than {self.budget.seconds:g}s")
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    if exc.errno in _CHANGED:
                        continue
                    raise
                if st.st_dev != self.device:  # the root of another file system mounted here: not this volume's
                    continue
                self.count(st)
                if stat.S_ISDIR(st.st_mode):
                    subdirs.append(entry.name)
                    self.pending += 1
                    if self.pending > self.budget.pending:
                        raise _Stop(f"more than {self.budget.pending} directories waiting to be walked")
        return subdirs


def walk(path: str, budget: Budget, clock: Callable[[], float] = time.monotonic) -> Usage:
    """The bytes and inodes used below the directory ``path`` (a mount root; its own inode included).

    Blocking: run it in a thread. An error (a stale handle, an I/O error) gives an unknown usage, with the reason.
    """
    started = clock()
    try:
        root = os.open(path, _DIR_FLAGS)
    except OSError as exc:
        return _unknown(f"cannot open {path}: {exc.strerror}")
    stack: list[tuple[int, list[str]]] = []
    try:
        st = os.fstat(root)
        state = _Walk(budget, clock, started + budget.seconds, st.st_dev)
        state.count(st)
        stack.append((root, state.scan(root)))
        while stack:
            fd, names = stack[-1]
            if not names:
                stack.pop()
                if fd != root:
                    os.close(fd)
                continue
            name = names.pop()
            state.pending -= 1
            if clock() > state.end:
                raise _Stop(f"more than {budget.seconds:g}s")
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in _CHANGED:
                    continue
                raise
            try:
                if os.fstat(child).st_dev != state.device or is_mount_root(child):
                    os.close(child)  # a mount (a bind mount, or one that appeared since the listing): not entered
                    continue
                if len(stack) >= budget.depth:
                    raise _Stop(f"deeper than {budget.depth} directories")
                stack.append((child, state.scan(child)))
            except BaseException:
                if not stack or stack[-1][0] != child:
                    os.close(child)
                raise
    except _Stop as stop:
        return _unknown(f"the walk stopped: {stop.reason}", clock() - started, stop.exhausted)
    except OSError as exc:
        return _unknown(f"the walk failed: {exc.strerror or exc}", clock() - started)
    finally:
        for fd, _names in stack:
            if fd != root:
                os.close(fd)
        os.close(root)
    return Usage(state.used_bytes, state.used_inodes, True, "", clock() - started)


# -- caching and the single flight per target ----------------------------------------------------------------------

MIN_CACHE = 5.0
MAX_CACHE = 600.0
#: A complete walk is cached this many times as long as it took: walking costs at most about 2 % of one core per
#: volume on average, however big the tree (within the budget).
COST_FACTOR = 50.0


def cache_lifetime(usage: Usage) -> float:
    """How long a walk's result stands (pure): an error not at all (the next call tries again), a walk that ran out
    of budget :data:`MAX_CACHE` (walking again would cost the whole budget again, for the same answer), a complete
    walk :data:`COST_FACTOR` times its duration, within [:data:`MIN_CACHE`, :data:`MAX_CACHE`]."""
    if not usage.complete:
        return MAX_CACHE if usage.exhausted else 0.0
    return min(max(usage.seconds * COST_FACTOR, MIN_CACHE), MAX_CACHE)


@dataclass(frozen=True)
class _Running:
    future: asyncio.Future[Usage]
    started: float
    deadline: float


#: A walk still running this long after its time budget is taken as hung in the kernel (a server that does not
#: answer): later calls answer at once.
_GRACE = 5.0


class UsageProbes:
    """Single-flight, cached walks per target (one instance per node servicer, used from one event loop)."""

    def __init__(self, budget: Budget | None = None, walker: Callable[[str, Budget], Usage] | None = None) -> None:
        self._budget = budget or Budget()
        self._walker = walker or walk
        self._running: dict[str, _Running] = {}
        self._cache: dict[str, tuple[float, Usage]] = {}

    def stuck(self) -> list[str]:
        """Targets whose walk is past its deadline and still blocked."""
        now = time.monotonic()
        return [path for path, running in self._running.items() if running.deadline <= now]

    def forget(self, path: str) -> None:
        """Drop the cached usage of ``path`` (published or unpublished again: a new mount)."""
        self._cache.pop(path, None)

    async def usage(self, path: str, wait: float) -> Usage:
        """The usage below ``path``: cached, or from a walk awaited at most ``wait`` seconds (unknown after)."""
        now = time.monotonic()
        cached = self._cache.get(path)
        if cached is not None and now < cached[0]:
            return cached[1]
        running = self._running.get(path)
        if running is not None and now >= running.deadline:
            return _unknown(f"the walk below {path} has not answered for {now - running.started:.0f}s")
        if running is None:
            running = self._start(path, now)
        try:
            return await asyncio.wait_for(asyncio.shield(running.future), max(min(wait, running.deadline - now), 0.0))
        except TimeoutError:
            return _unknown(f"the walk below {path} is still running after {time.monotonic() - running.started:.0f}s")

    def _start(self, path: str, now: float) -> _Running:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Usage] = loop.create_future()
        running = _Running(future, now, now + self._budget.seconds + _GRACE)
        self._running[path] = running
        self._cache.pop(path, None)

        def settle(result: Usage) -> None:
            if self._running.get(path) is running:
                del self._running[path]
                lifetime = cache_lifetime(result)
                if lifetime > 0:
                    self._cache[path] = (time.monotonic() + lifetime, result)
            future.set_result(result)

        def run() -> None:
            try:
                result = self._walker(path, self._budget)
            except Exception as exc:  # a walk never takes the plugin down; the reason is reported
                result = _unknown(f"the walk failed: {exc}")
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
                loop.call_soon_threadsafe(settle, result)

        threading.Thread(target=run, name=f"usage {path}", daemon=True).start()
        return running


# -- what NodeGetVolumeStats reports (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    total: int
    available: int
    used: int


@dataclass(frozen=True)
class Report:
    bytes: Figures
    inodes: Figures
    message: str


def report(quota: int | None, usage: Usage | None, fs: VolumeStats) -> Report:
    """What a mounted volume's stats say (pure).

    - No quota: the file system's ``statvfs`` figures (a dedicated volume is the whole file system).
    - A quota and a complete walk: bytes total = the quota, used = the walk's, available = what the quota leaves,
      but no more than the file system has free; inodes used = the walk's, total and available = the file
      system's (no file-count limit is set on claims, so the file system's inodes are the only limit).
    - A quota but no complete walk: the file system's figures, as if there were no quota, and the message says
      that the volume's usage is unknown and why. Never a guess.
    """
    fs_bytes = Figures(fs.total_bytes, fs.available_bytes, fs.used_bytes)
    fs_inodes = Figures(fs.total_inodes, fs.free_inodes, fs.used_inodes)
    if quota is None:
        return Report(fs_bytes, fs_inodes, "mounted")
    if usage is None or not usage.complete:
        why = usage.reason if usage is not None else "not walked"
        return Report(
            fs_bytes,
            fs_inodes,
            f"mounted; usage below the target unknown ({why}): the whole file system's figures are reported, "
            f"not the directory quota's ({quota} bytes)",
        )
    available = max(min(quota - usage.used_bytes, fs.available_bytes), 0)
    message = f"mounted; directory quota {quota} bytes"
    if usage.used_bytes > quota:
        message += (
            f"; {usage.used_bytes} bytes used exceed it (the quota may have been raised while this publication "
            "kept the one it was published with)"
        )
    return Report(
        Figures(quota, available, usage.used_bytes),
        Figures(fs.total_inodes, fs.free_inodes, usage.used_inodes),
        message,
    )
