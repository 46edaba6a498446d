"""The CSI socket, bound before anything else is loaded.

Why: the node plugin needs about 150-250 ms to import asyncio, HTTP/2, protobuf and its own modules and to look
at its publication records; binding the socket first (this module needs only ``os``, ``socket`` and ``stat``)
lets a caller connect from the first tens of milliseconds on (issue 15). Nothing is answered early: the server
accepts connections only once every service is built and the publication records are reconciled
(:func:`cfs_csi.driver.server.serve`), so a call that arrives meanwhile waits in the socket's backlog and is
answered as if it had come later.

The checks are those of a late bind: the endpoint must be an absolute ``unix://`` path; a socket left by a previous
run is removed, a live one or a file that is not a socket is refused; and the socket is removed on the way out only
while it is still the one this process bound (same device and inode).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
from types import FrameType

#: Connections the kernel holds for us before the server accepts them (the kubelet and a few sidecars connect).
BACKLOG = 128


def socket_path(endpoint: str) -> str:
    """The file of a ``unix://`` endpoint (``unix:///abs/path`` or ``unix:/abs/path``)."""
    if not endpoint.startswith("unix:"):
        raise ValueError(f"endpoint {endpoint!r} must be a unix socket (unix:///path/csi.sock)")
    path = endpoint.removeprefix("unix:").removeprefix("//")
    if not os.path.isabs(path):
        raise ValueError(f"endpoint {endpoint!r} must name an absolute path")
    return path


def remove_stale_socket(path: str) -> bool:
    """Remove a socket left by a previous run (True if one was removed); refuse to remove a live one or a file
    that is not a socket."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return True
    finally:
        probe.close()
    raise RuntimeError(f"another process is serving on {path}")


class Listener:
    """A bound, listening unix socket and what it takes to remove it safely (a plain class: ``dataclasses``
    would import ``inspect`` before the bind)."""

    __slots__ = ("identity", "path", "removed_stale", "signalled", "sock")

    def __init__(self, sock: socket.socket, path: str, identity: tuple[int, int], removed_stale: bool) -> None:
        self.sock = sock
        self.path = path
        #: (st_dev, st_ino) of the socket file as bound: :meth:`close` removes only this file.
        self.identity = identity
        #: A socket left by a previous run was removed first (for the log, written once logging is set up).
        self.removed_stale = removed_stale
        #: SIGTERM or SIGINT came while the process was still starting (see :meth:`catch_stop_signals`).
        self.signalled = False

    def catch_stop_signals(self) -> None:
        """Until the server's own handlers replace these, note SIGTERM and SIGINT instead of dying at once: the
        server then stops cleanly before serving (exit status 0, socket removed), as it would a moment later."""

        def note(signum: int, frame: FrameType | None) -> None:
            self.signalled = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, note)

    def close(self) -> None:
        """Close the socket and remove its file, unless another file took its place meanwhile."""
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            seen = os.lstat(self.path)
            if (seen.st_dev, seen.st_ino) == self.identity:
                os.unlink(self.path)


def listen_unix(path: str, backlog: int = BACKLOG) -> Listener:
    """Bind and listen on ``path`` (its directory made if missing), after :func:`remove_stale_socket`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    removed = remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        seen = os.lstat(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return Listener(sock, path, (seen.st_dev, seen.st_ino), removed)


def listen_tcp(port: int, backlog: int = BACKLOG) -> socket.socket:
    """A listening TCP socket on every address of this host at ``port`` (the health endpoint), bound early like the
    CSI socket: IPv6 with IPv4 mapped in, or IPv4 alone where the host has no IPv6."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", port))
        else:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - the health port answers the node's network (see health.py)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
