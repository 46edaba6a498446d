"""A minimal OCI image archive writer: the dev node's busybox and pause images without a registry or a builder.

The real node of the e2e suite cannot pull (no registry is reachable) and must not depend on podman or buildah
to run a shell in a pod, so its two tiny images are written here directly: one uncompressed layer (a static
busybox and its applet links), a config and a manifest per image, and an index naming both, in the OCI image
layout that ``ctr images import`` reads. Building the archive is pure (bytes in, bytes out); only
:func:`busybox_files` and :func:`write` touch the file system.

Everything is deterministic (mtime 0, uid 0, sorted entries), so the same busybox gives the same digests.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"

BUSYBOX_IMAGE = "cfs-csi.local/busybox:dev"
PAUSE_IMAGE = "cfs-csi.local/pause:dev"

# The pod sandbox's only job is to exist until it is stopped. As PID 1 of the pod's PID namespace it gets no
# default signal handling, hence the explicit trap: without it a stop waits for the runtime's SIGKILL timeout.
PAUSE_COMMAND = ("/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done")


@dataclass(frozen=True)
class Entry:
    """One layer member: a regular file (``data``), a directory (``directory``) or a symlink (``link``)."""

    path: str
    mode: int = 0o755
    data: bytes | None = None
    link: str | None = None
    directory: bool = False


@dataclass(frozen=True)
class Image:
    name: str
    entrypoint: Sequence[str]
    cmd: Sequence[str] = ()
    env: Sequence[str] = ("PATH=/bin",)
    labels: dict[str, str] = field(default_factory=dict)
    extra: Sequence[Entry] = ()  # a second layer on top of the shared one (agnhost's binary)


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """An uncompressed, reproducible tar of ``entries`` (parents before children)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(entries, key=lambda e: e.path):
            info = tarfile.TarInfo(entry.path.strip("/"))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            info.mode = entry.mode
            if entry.directory:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            else:
                data = entry.data or b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def archive(images: Sequence[Image], layer: bytes, architecture: str = "amd64") -> bytes:
    """An OCI image layout as a tar: every image shares the one ``layer``; the index names each image.

    ``io.containerd.image.name`` is what ``ctr images import`` names the image by; the OCI ref-name annotation
    is there for other readers of the layout.
    """
    layer_digest, _ = _blob(layer)
    blobs: dict[str, bytes] = {layer_digest: layer}
    manifests = []
    for image in images:
        layers = [(layer_digest, len(layer))]
        if image.extra:
            extra_digest, extra = _blob(layer_tar(image.extra))
            blobs[extra_digest] = extra
            layers.append((extra_digest, len(extra)))
        config = _json({
            "architecture": architecture, "os": "linux",
            "config": {"Entrypoint": list(image.entrypoint) or None, "Cmd": list(image.cmd) or None,
                       "Env": list(image.env), "Labels": image.labels or None, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [digest for digest, _ in layers]},
            "history": [{"created_by": "cfs-csi devcluster ociimage", "created": "1970-01-01T00:00:00Z"}
                        for _ in layers],
        })  # fmt: skip
        config_digest, _ = _blob(config)
        manifest = _json({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": digest, "size": size} for digest, size in layers],
        })  # fmt: skip
        manifest_digest, _ = _blob(manifest)
        blobs[config_digest], blobs[manifest_digest] = config, manifest
        manifests.append({
            "mediaType": MANIFEST, "digest": manifest_digest, "size": len(manifest),
            "platform": {"architecture": architecture, "os": "linux"},
            "annotations": {"io.containerd.image.name": image.name,
                            "org.opencontainers.image.ref.name": image.name.rsplit(":", 1)[-1]},
        })  # fmt: skip
    files = {
        "oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
        "index.json": _json({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}),
        **{f"blobs/sha256/{digest.removeprefix('sha256:')}": data for digest, data in blobs.items()},
    }
    entries = [Entry("blobs", directory=True), Entry("blobs/sha256", directory=True)]
    entries += [Entry(path, mode=0o644, data=data) for path, data in files.items()]
    return layer_tar(entries)


def busybox_entries(busybox: bytes, applets: Iterable[str]) -> list[Entry]:
    """The root file system of a busybox image: the binary, one link per applet, and the usual directories."""
    entries = [Entry(d, directory=True) for d in ("bin", "dev", "etc", "proc", "root", "sys", "var")]
    entries += [Entry("tmp", mode=0o1777, directory=True), Entry("bin/busybox", data=busybox)]
    entries += [Entry(f"bin/{name}", mode=0o777, link="busybox") for name in sorted(set(applets))
                if name and "/" not in name and name not in {"busybox", "."}]  # fmt: skip
    entries += [
        Entry("etc/passwd", mode=0o644, data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
        Entry("etc/group", mode=0o644, data=b"root:x:0:\nnogroup:x:65534:\n"),
    ]
    return entries


def busybox_files(binary: Path, timeout: float = 10) -> list[Entry]:
    """Read a static busybox and ask it for its applet list (``--list``)."""
    listed = subprocess.run([str(binary), "--list"], capture_output=True, text=True, timeout=timeout, check=True)
    return busybox_entries(binary.read_bytes(), listed.stdout.split())


def dev_images() -> list[Image]:
    return [Image(BUSYBOX_IMAGE, (), cmd=("sh",)), Image(PAUSE_IMAGE, PAUSE_COMMAND)]


def write(path: Path, busybox: Path) -> Path:
    """Write the busybox and pause images (one shared layer) as an OCI archive at ``path``."""
    path.write_bytes(archive(dev_images(), layer_tar(busybox_files(busybox))))
    return path


# The images Kubernetes' External Storage e2e suite runs, under the exact names its test binary asks for
# (``e2e.test -list-images``). Their pods always give a command, and only need a shell and the usual tools (the
# suite's "exec" and multi-volume specs run ``sh`` in nginx and glibc-dns-testing), so busybox stands in for each
# image's content; agnhost is the real program, built from Kubernetes' own module at the suite's version.
E2E_REGISTRY = "registry.k8s.io/e2e-test-images"
E2E_BUSYBOX = f"{E2E_REGISTRY}/busybox:1.37.0-2"
E2E_AGNHOST = f"{E2E_REGISTRY}/agnhost:2.66.1"
E2E_NGINX = f"{E2E_REGISTRY}/nginx:1.27.0-2"
E2E_GLIBC = f"{E2E_REGISTRY}/glibc-dns-testing:2.1.1"
E2E_PAUSE = "registry.k8s.io/pause:3.10.2"
# What a server image's container does when the pod gives no command: stay up until stopped, as nginx would.
SERVE_FOREVER = PAUSE_COMMAND


def e2e_images(agnhost: bytes) -> list[Image]:
    """The suite's images: busybox for all but agnhost, which adds its binary as ``/agnhost`` (its entrypoint,
    as in the real image, so ``args: [mounttest, ...]`` run it)."""
    return [
        Image(E2E_BUSYBOX, (), cmd=("sh",)),
        Image(E2E_NGINX, (), cmd=SERVE_FOREVER),
        Image(E2E_GLIBC, (), cmd=SERVE_FOREVER),
        Image(E2E_PAUSE, PAUSE_COMMAND),
        Image(E2E_AGNHOST, ("/agnhost",), cmd=("pause",), extra=(Entry("agnhost", data=agnhost),)),
    ]


def write_e2e(path: Path, busybox: Path, agnhost: Path) -> Path:
    """Write the e2e suite's images (see :func:`e2e_images`) as an OCI archive at ``path``."""
    path.write_bytes(archive(e2e_images(agnhost.read_bytes()), layer_tar(busybox_files(busybox))))
    return path
