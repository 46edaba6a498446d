"""A file system that misbehaves on command, for the node plugin's fault tests.

It speaks the kernel's FUSE protocol on ``/dev/fuse`` directly (no libfuse, nothing to install: the tests run as
root in a private mount namespace, where ``mount(2)`` of a FUSE file system needs no helper). The root holds one
directory per name given on the command line; each directory (the "volume") answers ``lookup``, ``getattr``,
``statfs``, ``opendir``/``readdir`` according to its mode:

- ``ok``: answers;
- ``hang``: never answers until the mode changes (the request is kept, and answered when released). A process
  waiting on such a request cannot be killed, as with a hard NFS mount whose server is stopped;
- ``estale`` / ``eio``: fails with ESTALE / EIO (a re-exported share, a broken server).

``die`` ends the server process: the kernel then answers every request on the mount with ENOTCONN, as for a
killed server. Requests are read by one thread and a hung one holds no thread, so any number may hang at once.

``reexport NAME`` gives the directory a new identity: a mount of it made before then answers ESTALE for good,
while a new lookup (a new mount) finds the new one, as after an NFS share is exported anew.

Control: a unix socket; each connection sends one line (``set NAME MODE``, ``reexport NAME``, ``held NAME``: how
many requests about NAME hang, or ``die``) and gets ``ok`` (and the count).
Run: ``python -m tests.faultyfs MOUNTPOINT CONTROL_SOCKET NAME...``; it prints ``ready`` once mounted.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat
import struct
import sys
import threading
from dataclasses import dataclass, field

_IN_HEADER = struct.Struct("<IIQQIIIHH")
_OUT_HEADER = struct.Struct("<IiQ")
_ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
_LOOKUP, _FORGET, _GETATTR, _STATFS, _INIT, _OPENDIR, _READDIR, _RELEASEDIR = 1, 2, 3, 17, 26, 27, 28, 29
_INTERRUPT, _DESTROY, _BATCH_FORGET = 36, 38, 42
_NO_REPLY = {_FORGET, _BATCH_FORGET, _INTERRUPT}
_ROOT = 1
MODES = ("ok", "hang", "estale", "eio")
_ERRORS = {"estale": errno.ESTALE, "eio": errno.EIO}


@dataclass
class FaultyFs:
    fd: int
    names: list[str]
    modes: dict[str, str] = field(default_factory=dict)
    held: dict[str, list[tuple[int, int, int, bytes]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The node id each name has now, and every node id ever given out (a re-exported name gets a new one; the
    #: old one then answers ESTALE, as an NFS file handle does after the share is exported anew).
    current: dict[str, int] = field(default_factory=dict)
    issued: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.names:
            self.reexport(name)

    def reexport(self, name: str) -> None:
        with self.lock:
            node = len(self.issued) + 2
            self.current[name], self.issued[node] = node, name

    def node_of(self, name: str) -> int:
        return self.current[name]

    def name_of(self, node: int) -> str | None:
        return self.issued.get(node)

    # -- replies ---------------------------------------------------------------------------------------------

    def reply(self, unique: int, payload: bytes = b"", error: int = 0) -> None:
        body = b"" if error else payload
        try:
            os.write(self.fd, _OUT_HEADER.pack(_OUT_HEADER.size + len(body), -error, unique) + body)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # the request was interrupted meanwhile
                raise

    def attr(self, node: int) -> bytes:
        mode = stat.S_IFDIR | 0o777
        return _ATTR.pack(node, 4096, 8, 0, 0, 0, 0, 0, 0, mode, 2, 0, 0, 0, 4096, 0)

    # -- requests --------------------------------------------------------------------------------------------

    def handle(self, opcode: int, unique: int, node: int, body: bytes) -> None:
        if opcode in _NO_REPLY:
            return
        if opcode == _INIT:
            _major, minor, readahead, _flags = struct.unpack_from("<IIII", body)
            out = struct.pack("<IIIIHHIIHHI", 7, min(minor, 31), readahead, 0, 16, 12, 65536, 1, 0, 0, 0)
            self.reply(unique, out + b"\0" * 28)
            return
        if opcode == _DESTROY:
            self.reply(unique)
            return
        subject = self.name_of(node)
        if subject is not None and self.current[subject] != node:
            self.reply(unique, error=errno.ESTALE)
            return
        if opcode == _LOOKUP and node == _ROOT:
            subject = body.split(b"\0", 1)[0].decode()
            if subject not in self.names:
                self.reply(unique, error=errno.ENOENT)
                return
        if subject is not None:
            with self.lock:
                mode = self.modes.get(subject, "ok")
                if mode == "hang":
                    self.held.setdefault(subject, []).append((opcode, unique, node, body))
                    return
            if mode in _ERRORS:
                self.reply(unique, error=_ERRORS[mode])
                return
        self.answer(opcode, unique, node, body, subject)

    def answer(self, opcode: int, unique: int, node: int, body: bytes, subject: str | None) -> None:
        if opcode == _LOOKUP and node == _ROOT and subject is not None:
            child = self.node_of(subject)
            self.reply(unique, struct.pack("<QQQQII", child, 0, 0, 0, 0, 0) + self.attr(child))
        elif opcode == _LOOKUP:
            self.reply(unique, error=errno.ENOENT)
        elif opcode == _GETATTR:
            self.reply(unique, struct.pack("<QII", 0, 0, 0) + self.attr(node))
        elif opcode == _STATFS:
            # 1000 blocks of 4 KiB, 250 used; 100 inodes, 7 used.
            self.reply(unique, struct.pack("<QQQQQIIII", 1000, 750, 750, 100, 93, 4096, 255, 4096, 0) + b"\0" * 24)
        elif opcode == _OPENDIR:
            self.reply(unique, struct.pack("<QII", 0, 0, 0))
        elif opcode == _READDIR:
            offset = struct.unpack_from("<QQ", body)[1]
            entries = [(n, self.node_of(n)) for n in self.names] if node == _ROOT else []
            out = b""
            for index, (name, child) in enumerate(entries[offset:], start=offset + 1):
                raw = name.encode()
                entry = struct.pack("<QQII", child, index, len(raw), stat.S_IFDIR >> 12) + raw
                out += entry + b"\0" * (-len(entry) % 8)
            self.reply(unique, out)
        elif opcode == _RELEASEDIR:
            self.reply(unique)
        else:
            self.reply(unique, error=errno.ENOSYS)

    def set_mode(self, name: str, mode: str) -> None:
        with self.lock:
            self.modes[name] = mode
            released = self.held.pop(name, []) if mode != "hang" else []
        for opcode, unique, node, body in released:
            self.handle(opcode, unique, node, body)

    def serve(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 1 << 20)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                    continue
                if exc.errno == errno.ENODEV:  # unmounted
                    return
                raise
            _length, opcode, unique, node, *_ = _IN_HEADER.unpack_from(data)
            self.handle(opcode, unique, node, data[_IN_HEADER.size :])


def _mount(mountpoint: str) -> int:
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    if libc.mount(b"faultyfs", mountpoint.encode(), b"fuse.faultyfs", 0, options) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount of {mountpoint}: {os.strerror(code)}")
    return fd


def _control(fs: FaultyFs, server: socket.socket) -> None:
    while True:
        conn, _ = server.accept()
        with conn:
            words = conn.makefile().readline().split()
            if len(words) == 2 and words[0] == "reexport" and words[1] in fs.names:
                fs.reexport(words[1])
                conn.sendall(b"ok\n")
                continue
            if len(words) == 2 and words[0] == "held" and words[1] in fs.names:
                with fs.lock:
                    conn.sendall(f"ok {len(fs.held.get(words[1], []))}\n".encode())
                continue
            if words == ["die"]:
                conn.sendall(b"ok\n")
                os._exit(0)
            if len(words) == 3 and words[0] == "set" and words[1] in fs.names and words[2] in MODES:
                fs.set_mode(words[1], words[2])
                conn.sendall(b"ok\n")
            else:
                conn.sendall(b"error\n")


def main(argv: list[str]) -> None:
    mountpoint, control, *names = argv
    fs = FaultyFs(_mount(mountpoint), names)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(control):
        os.unlink(control)  # left by a server that died
    server.bind(control)  # before "ready": the caller may send a command at once
    server.listen(16)
    threading.Thread(target=_control, args=(fs, server), daemon=True).start()
    print("ready", flush=True)
    fs.serve()


if __name__ == "__main__":
    main(sys.argv[1:])


# -- for the tests ---------------------------------------------------------------------------------------------


@dataclass
class Running:
    """A running faulty file system (started by :func:`start`)."""

    process: object
    mountpoint: str
    control: str

    def set(self, name: str, mode: str) -> None:
        self._say(f"set {name} {mode}")

    def reexport(self, name: str) -> None:
        """``name`` gets a new identity: whatever was reached through the old one answers ESTALE from now on."""
        self._say(f"reexport {name}")

    def held(self, name: str) -> int:
        """How many requests about ``name`` are waiting for an answer (hung)."""
        return int(self._say(f"held {name}").split()[1])

    def die(self) -> None:
        self._say("die")
        self.process.wait(10)  # type: ignore[attr-defined]

    def _say(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(self.control)
            conn.sendall(line.encode() + b"\n")
            answer = conn.makefile().readline().strip()
            if not answer.startswith("ok"):
                raise RuntimeError(f"faultyfs refused {line!r}")
            return answer

    def stop(self) -> None:
        """End the server (every hung request fails with ENOTCONN) and detach the mount."""
        import subprocess

        process: subprocess.Popen[str] = self.process  # type: ignore[assignment]
        if process.poll() is None:
            process.kill()
            process.wait(10)
        subprocess.run(["umount", "-l", self.mountpoint], check=False, timeout=30, capture_output=True)


def start(mountpoint: str, control: str, names: list[str]) -> Running:
    import subprocess

    os.makedirs(mountpoint, exist_ok=True)
    argv = [sys.executable, "-m", "tests.faultyfs", mountpoint, control, *names]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError("faultyfs did not start")
    return Running(process, mountpoint, control)
