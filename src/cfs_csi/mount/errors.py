"""Mount failures, classified for the caller."""

from __future__ import annotations

import enum


class MountErrorKind(enum.Enum):
    TIMEOUT = "timeout"  # the command was killed after its deadline (a dead server, usually)
    FAILED = "failed"  # the command ran and said no
    NOT_FOUND = "not_found"  # the export or path does not exist
    STALE = "stale"  # the mount exists but its server handle is gone (ESTALE, EIO)


class MountError(Exception):
    def __init__(self, kind: MountErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
