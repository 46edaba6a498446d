"""From a volume context to the exact NFS mount the node performs.

Both provisioning modes end here: dedicated volumes carry ``host`` and ``fsid``; shared volumes add
``path``, the sub-directory. CFS exports NFSv3 under ``/<fsid>/`` and NFSv4 at ``/``, which is why the
source differs by version. The options are the ones CFS documents: ``noresvport`` lets the client
reconnect from a new port after a network blip, ``nolock`` because CFS v3 has no lock manager.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.params import NfsVersion

BASE_OPTIONS: dict[NfsVersion, tuple[str, ...]] = {
    NfsVersion.V3: ("vers=3", "noresvport", "nolock", "proto=tcp"),
    NfsVersion.V4: ("vers=4", "noresvport"),
}

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+$")
_FSID = re.compile(r"^[0-9A-Za-z]{1,32}$")
_VERSION_KEYS = ("vers", "nfsvers")


@dataclass(frozen=True)
class NfsMount:
    """One NFS mount: where it comes from and with which options."""

    host: str
    fsid: str
    path: str
    vers: NfsVersion
    options: tuple[str, ...]

    @property
    def export_path(self) -> str:
        """The server-side path: ``/<fsid>/<path>`` for v3, ``/<path>`` for v4 (trailing ``/`` at the root)."""
        root = f"/{self.fsid}/" if self.vers is NfsVersion.V3 else "/"
        return root + self.path

    @property
    def source(self) -> str:
        """The ``host:/path`` argument of ``mount -t nfs``; IPv6 hosts are bracketed as mount.nfs needs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.export_path}"

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def nfs_mount_for(context: Mapping[str, str], mount_flags: Iterable[str] = (), read_only: bool = False) -> NfsMount:
    """Build the mount for a NodePublishVolume request, or raise :class:`InvalidArgument`."""
    host = context.get("host", "").strip()
    if not host:
        raise InvalidArgument("volume_context has no 'host': the volume was not provisioned by this driver")
    if not (_HOSTNAME.match(host) or (":" in host and _IPV6.match(host))):
        raise InvalidArgument(f"volume_context 'host' {host!r} is not a host name or IP address")
    raw_vers = context.get("vers", NfsVersion.V3.value).strip() or NfsVersion.V3.value
    try:
        vers = NfsVersion(raw_vers)
    except ValueError:
        raise InvalidArgument(f"volume_context 'vers' {raw_vers!r} is not 3 or 4") from None
    fsid = context.get("fsid", "").strip()
    if vers is NfsVersion.V3 and not fsid:
        raise InvalidArgument("volume_context has no 'fsid', which an NFSv3 mount of CFS needs")
    if fsid and not _FSID.match(fsid):
        raise InvalidArgument(f"volume_context 'fsid' {fsid!r} is not a CFS file-system id")
    path = normalize_subdir(context.get("path", ""))
    options = merge_options(BASE_OPTIONS[vers], mount_flags, vers)
    if read_only and "ro" not in options:
        options = (*tuple(o for o in options if o != "rw"), "ro")
    return NfsMount(host=host, fsid=fsid, path=path, vers=vers, options=options)


def normalize_subdir(path: str) -> str:
    """A sub-directory inside the file system, relative and free of ``.``/``..``; ``""`` is the root.

    Refusing instead of resolving: a path that tries to leave its directory is a bug or an attack, and
    mounting the parent instead would expose other tenants' data.
    """
    parts = [part for part in path.strip().split("/") if part]
    if path.strip().startswith("/"):
        raise InvalidArgument(f"volume_context 'path' {path!r} must be relative to the file system")
    for part in parts:
        if part in (".", "..") or "\x00" in part:
            raise InvalidArgument(f"volume_context 'path' {path!r} must not contain '.' or '..'")
    return "/".join(parts)


def merge_options(base: Iterable[str], flags: Iterable[str], vers: NfsVersion) -> tuple[str, ...]:
    """Base options overlaid with the capability's mount flags; a flag replaces a base option of its key.

    A flag that asks for another major NFS version than the volume's is refused: the source path
    (``/<fsid>/`` or ``/``) depends on the version, so mixing them mounts the wrong directory.
    """
    merged: dict[str, str] = {}
    for option in base:
        merged[_option_key(option)] = option
    for flag in flags:
        for option in (part.strip() for part in flag.split(",")):
            if not option:
                continue
            key = _option_key(option)
            if key in _VERSION_KEYS:
                wanted = option.partition("=")[2]
                if wanted.split(".")[0] != vers.value:
                    raise InvalidArgument(f"mount flag {option!r} conflicts with the volume's NFS version {vers.value}")
                merged.pop("vers", None)
                merged.pop("nfsvers", None)
                key = "vers"
            merged[key] = option
    return tuple(merged.values())


def _option_key(option: str) -> str:
    return option.partition("=")[0].strip().lower()
