"""The node plugin registers itself with the kubelet (instead of running node-driver-registrar).

The kubelet watches ``<kubelet dir>/plugins_registry/`` for sockets. For each one it dials it, asks who is
there (``GetInfo``: a CSI driver, its name, the path of its CSI socket as the kubelet sees it, the CSI versions
it speaks), registers the driver (it calls ``NodeGetInfo`` on the CSI socket and writes the node's CSINode
object), and reports the verdict (``NotifyRegistrationStatus``), which we log.

The socket must stay there: a kubelet whose directory was wiped (a re-provisioned or restarted node) forgets the
driver, so the registrar looks at its path every few seconds and makes it again when it is gone. Making it is
atomic: the socket is bound under a hidden name (the kubelet ignores names starting with a dot) and linked to
its real name with ``link(2)``, which never replaces a file someone else put there meanwhile. The registrar only
ever removes the file it made (same device and inode): another instance that took the name over is left alone,
on shutdown too.

Decisions (the socket path, what to do with what is at it) are pure functions; :class:`Registrar` does the I/O.
The socket is served with grpclib (:mod:`cfs_csi.driver.grpcserve`), like the CSI socket: no grpcio in the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cfs_csi.driver.grpcserve import CallContext, GrpcServer
from cfs_csi.registration import pluginregistration_pb2

log = logging.getLogger(__name__)

CSI_PLUGIN = "CSIPlugin"
#: The CSI versions we announce; the kubelet picks the highest one it knows (every kubelet since 1.13 knows 1.x).
CSI_VERSIONS = ("1.0.0",)
CHECK_INTERVAL = 2.0  # seconds between looks at the socket's path; one lstat each
SERVICE = pluginregistration_pb2.DESCRIPTOR.services_by_name["Registration"]


def registration_socket(kubelet_dir: Path, driver: str) -> Path:
    """Where the kubelet looks for us: ``<kubelet dir>/plugins_registry/<driver>-reg.sock``."""
    return kubelet_dir / "plugins_registry" / f"{driver}-reg.sock"


def hidden_name(path: Path) -> Path:
    """The name the socket is bound under before it is linked into place; the kubelet ignores dot files."""
    return path.with_name(f".{path.name}.{os.getpid()}")


def plugin_info(driver: str, csi_socket: str) -> pluginregistration_pb2.PluginInfo:
    """What ``GetInfo`` answers. ``csi_socket`` is a plain path in the kubelet's view (no ``unix://``)."""
    return pluginregistration_pb2.PluginInfo(
        type=CSI_PLUGIN, name=driver, endpoint=csi_socket, supported_versions=list(CSI_VERSIONS)
    )


class Found(enum.Enum):
    MISSING = "missing"
    OURS = "ours"
    OTHER = "other"  # a file we did not make (another instance's socket, or anything else)


class Action(enum.Enum):
    NOTHING = "nothing"
    CREATE = "create"
    LEAVE = "leave"  # not ours: never touched; say so once


@dataclass(frozen=True)
class FileId:
    device: int
    inode: int


def classify(observed: FileId | None, ours: FileId | None) -> Found:
    if observed is None:
        return Found.MISSING
    return Found.OURS if observed == ours else Found.OTHER


def decide(found: Found) -> Action:
    """What the watcher does about what is at the socket's path."""
    return {Found.MISSING: Action.CREATE, Found.OURS: Action.NOTHING, Found.OTHER: Action.LEAVE}[found]


def file_id(path: Path) -> FileId | None:
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # gone, or its directory is gone (replaced by a file)
        return None
    return FileId(st.st_dev, st.st_ino)


class RegistrationServicer:
    """``pluginregistration.Registration``: what the kubelet calls on the registration socket."""

    def __init__(self, info: pluginregistration_pb2.PluginInfo) -> None:
        self._info = info
        #: The kubelet's last verdict: None before it gave one.
        self.registered: bool | None = None

    async def GetInfo(
        self, request: pluginregistration_pb2.InfoRequest, context: CallContext
    ) -> pluginregistration_pb2.PluginInfo:
        log.info("the kubelet asks who we are: %s, CSI socket %s", self._info.name, self._info.endpoint)
        return self._info

    async def NotifyRegistrationStatus(
        self, request: pluginregistration_pb2.RegistrationStatus, context: CallContext
    ) -> pluginregistration_pb2.RegistrationStatusResponse:
        self.registered = request.plugin_registered
        if request.plugin_registered:
            log.info("registered with the kubelet as %s", self._info.name)
        else:
            log.error("the kubelet refused to register %s: %s", self._info.name, request.error)
        return pluginregistration_pb2.RegistrationStatusResponse()


class Registrar:
    """Serves the registration socket, keeps it in place, and removes it (if still ours) on :meth:`stop`."""

    def __init__(self, path: Path, info: pluginregistration_pb2.PluginInfo, interval: float = CHECK_INTERVAL):
        self.path = path
        self.servicer = RegistrationServicer(info)
        self._interval = interval
        self._server: GrpcServer | None = None
        self._ours: FileId | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._told_other = False
        #: False while the socket is missing and could not be made again (the health check reports it).
        self.healthy = True

    async def start(self) -> None:
        """Make the socket and start watching its path.

        The caller has removed a previous run's socket at the path (and refused a live one or a non-socket): a
        file still there makes this fail rather than be replaced.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._create()
        self._watcher = asyncio.create_task(self._watch(), name="registration-watcher")

    async def _create(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None
        hidden = hidden_name(self.path).name
        # Everything through a descriptor of the directory: a unix socket's path is limited to 107 bytes, and a
        # deep kubelet directory plus the hidden name can pass that; /proc/self/fd/<n>/<name> never does.
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(hidden, dir_fd=directory)  # our own pid's name: a leftover of this very process
            server = GrpcServer()
            server.add(SERVICE, self.servicer)
            await server.start(f"/proc/self/fd/{directory}/{hidden}")
            self._server = server
            try:
                # Never replaces: EEXIST if someone put a file there meanwhile.
                os.link(hidden, self.path.name, src_dir_fd=directory, dst_dir_fd=directory)
            finally:
                os.unlink(hidden, dir_fd=directory)
        finally:
            os.close(directory)
        self._ours = file_id(self.path)
        log.info("serving kubelet registration on %s", self.path)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._check()
            except Exception:  # the watcher must outlive anything one look can meet
                self.healthy = False
                log.exception("checking registration socket %s failed", self.path)

    async def _check(self) -> None:
        action = decide(classify(file_id(self.path), self._ours))
        if action is Action.CREATE:
            log.warning("registration socket %s is gone (kubelet directory wiped?): making it again", self.path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                await self._create()
                self.healthy = True
            except (OSError, RuntimeError) as exc:
                self.healthy = False
                log.error("cannot make registration socket %s again: %s", self.path, exc)
        elif action is Action.LEAVE and not self._told_other:
            self._told_other = True
            log.warning("%s was replaced by a file we did not make: leaving it alone", self.path)

    async def problem(self) -> str | None:
        """For the health check: why registration is broken, or None."""
        return None if self.healthy else f"registration socket {self.path} is missing and cannot be made again"

    async def stop(self) -> None:
        """Stop watching; remove the socket if it is still the one we made (the kubelet then forgets us)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._ours is not None and file_id(self.path) == self._ours:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            log.info("removed registration socket %s", self.path)
        if self._server is not None:
            await self._server.stop(0)
            self._server = None
