"""What a volume id names (pure): a dedicated volume's file system, or a directory of a shared class's.

Dedicated volume ids are file-system ids (``cfs-...``). The sub-directory provisioner writes shared volumes'
handles as ``<share's export FSID>:<directory>`` (:func:`cfs_csi.provisioner.volumes.volume_handle`); the
directory is the one the PV's ``path`` attribute names, relative to the file system's root. Anything else is no
volume of this driver, and is answered without asking the backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.quota import quota_path

DEDICATED_ID = re.compile(r"cfs-[0-9a-z]{1,32}")
#: A share's key in a handle: its export FSID (letters and digits), or a server address when there is none.
_SHARE_KEY = re.compile(r"[0-9A-Za-z][0-9A-Za-z.-]{0,63}")


@dataclass(frozen=True)
class SharedHandle:
    share: str
    directory: str


def is_dedicated(volume_id: str) -> bool:
    return DEDICATED_ID.fullmatch(volume_id) is not None


def shared_handle(volume_id: str) -> SharedHandle | None:
    """The share and directory a shared volume's handle names, or ``None`` if it is not one."""
    share, colon, directory = volume_id.partition(":")
    if not colon or not _SHARE_KEY.fullmatch(share):
        return None
    try:
        quota_path(directory)
    except InvalidArgument:
        return None
    return SharedHandle(share, directory.strip("/"))
