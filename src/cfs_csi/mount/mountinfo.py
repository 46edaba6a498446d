"""The kernel's mount table (``/proc/self/mountinfo``), parsed.

Reading the table never touches the mounted file systems, so it is safe on a hung NFS mount where a
``stat`` of the target would block.

The node asks the table about one path at a time (is something mounted at this target?), a few times per call,
on hosts with hundreds of mounts. :meth:`MountTable.at` therefore searches the raw text for the path as the
kernel writes it and parses only the lines that name it: its cost in Python does not grow with the table
(issue 15). The full parse (:attr:`MountTable.entries`) happens only where every mount matters: start-up,
recognising a bind mount's export, and the diagnostics of a failed mount.

Reading the file costs the kernel time for every mount too (about 2.5 µs a mount here: 1.3 ms with 500 mounts).
:class:`MountWatch` reads it again only when the kernel says the table changed: ``poll`` on an open mountinfo
file reports ``POLLPRI`` after any mount or unmount in the namespace since the last poll (proc(5)).
"""

from __future__ import annotations

import os
import re
import select
import threading
from dataclasses import dataclass
from pathlib import Path

_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo: ``root`` is the directory of the source file system shown at ``mount_point``."""

    mount_id: int
    device: str  # "major:minor"
    root: str
    mount_point: str
    options: tuple[str, ...]
    fstype: str
    source: str

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field) if "\\" in field else field


#: The characters the kernel writes as octal escapes in mountinfo paths (``seq_path`` with " \t\n\\").
_ESCAPED = str.maketrans({" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"})


def escape(path: str) -> str:
    """``path`` as mountinfo shows it (the inverse of the unescaping done when parsing)."""
    return path.translate(_ESCAPED)


def _parse_line(line: str) -> MountEntry | None:
    fields = line.split(" ")
    try:
        sep = fields.index("-", 6)
        return MountEntry(
            mount_id=int(fields[0]),
            device=fields[2],
            root=_unescape(fields[3]),
            mount_point=_unescape(fields[4]),
            options=tuple(fields[5].split(",")),
            fstype=fields[sep + 1],
            source=_unescape(fields[sep + 2]),
        )
    except (ValueError, IndexError):
        return None


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse mountinfo text (see proc(5)); malformed lines are skipped."""
    return [entry for entry in map(_parse_line, text.splitlines()) if entry is not None]


class MountTable:
    """The mount table at one moment: from parsed ``entries``, or from mountinfo ``text`` (parsed when needed)."""

    def __init__(self, entries: tuple[MountEntry, ...] | None = None, *, text: str = "") -> None:
        self._entries = entries
        self._text = text

    @property
    def entries(self) -> tuple[MountEntry, ...]:
        if self._entries is None:
            self._entries = tuple(parse_mountinfo(self._text))
        return self._entries

    def at(self, mount_point: str) -> MountEntry | None:
        """The topmost mount at exactly this path (later lines stack on earlier ones)."""
        wanted = os.path.normpath(mount_point)
        if self._entries is not None:
            found = None
            for entry in self._entries:
                if entry.mount_point == wanted:
                    found = entry
            return found
        return self._search(wanted)

    def _search(self, wanted: str) -> MountEntry | None:
        """:meth:`at` on the raw text: find the path as a space-delimited field, parse only those lines."""
        text, needle = self._text, f" {escape(wanted)} "
        found = None
        start = text.find(needle)
        while start != -1:
            line_start = text.rfind("\n", 0, start) + 1
            line_end = text.find("\n", start)
            line_end = len(text) if line_end == -1 else line_end
            entry = _parse_line(text[line_start:line_end])
            if entry is not None and entry.mount_point == wanted:
                found = entry
            start = text.find(needle, line_end)
        return found

    def locate(self, path: str) -> tuple[MountEntry, str] | None:
        """The mount holding ``path`` and the path's directory inside that mount's file system.

        Used to recognise a bind mount: its ``root`` equals the directory it was bound from.
        """
        wanted = os.path.normpath(path)
        best: MountEntry | None = None
        for entry in self.entries:
            prefix = entry.mount_point.rstrip("/") + "/"
            if (wanted == entry.mount_point or wanted.startswith(prefix)) and (
                best is None or len(entry.mount_point) >= len(best.mount_point)
            ):
                best = entry
        if best is None:
            return None
        inner = os.path.relpath(wanted, best.mount_point)
        root = best.root if inner == "." else os.path.join(best.root, inner)
        return best, os.path.normpath(root)


def read_mount_table(path: Path = Path("/proc/self/mountinfo")) -> MountTable:
    with open(path, encoding="utf-8", errors="surrogateescape") as file:
        return MountTable(text=file.read())


class MountWatch:
    """The current mount table of this process's namespace, read again only after it changed.

    ``table()`` is as fresh as a read at the moment of the call: a change before the call is reported by ``poll``,
    and one during the read is reported again by the next ``poll``. Safe to call from several threads.
    """

    def __init__(self, path: str = "/proc/self/mountinfo") -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLPRI | select.POLLERR)
        self._lock = threading.Lock()
        self._table: MountTable | None = None
        #: How many times the file was read (for tests and benchmarks).
        self.reads = 0

    def table(self) -> MountTable:
        with self._lock:
            changed = bool(self._poll.poll(0))
            if self._table is None or changed:
                self._table = MountTable(text=self._read())
                self.reads += 1
            return self._table

    def last(self) -> MountTable:
        """The table as last read (read now if never), changed or not since: for diagnostics only."""
        with self._lock:
            table = self._table
        return table if table is not None else self.table()

    def _read(self) -> str:
        os.lseek(self._fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self._fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="surrogateescape")

    def close(self) -> None:
        os.close(self._fd)
