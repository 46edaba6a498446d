"""The kernel's mount table (``/proc/self/mountinfo``), parsed.

Reading the table never touches the mounted file systems, so it is safe on a hung NFS mount where a
``stat`` of the target would block.
"""

from __future__ import annotations

import os
import re
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
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse mountinfo text (see proc(5)); malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            entries.append(
                MountEntry(
                    mount_id=int(fields[0]),
                    device=fields[2],
                    root=_unescape(fields[3]),
                    mount_point=_unescape(fields[4]),
                    options=tuple(fields[5].split(",")),
                    fstype=fields[sep + 1],
                    source=_unescape(fields[sep + 2]),
                )
            )
        except (ValueError, IndexError):
            continue
    return entries


@dataclass(frozen=True)
class MountTable:
    entries: tuple[MountEntry, ...]

    def at(self, mount_point: str) -> MountEntry | None:
        """The topmost mount at exactly this path (later lines stack on earlier ones)."""
        wanted = os.path.normpath(mount_point)
        found = None
        for entry in self.entries:
            if entry.mount_point == wanted:
                found = entry
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
    return MountTable(tuple(parse_mountinfo(path.read_text())))
