"""Container images built on this machine, with no registry: ours from the repo's Dockerfile, and the peers.

There is no image registry to pull a base from, so the base is made from Debian's archive with
``mmdebstrap --variant=minbase`` (what ``debian:bookworm-slim`` is made of, with the same apt/dpkg trimming) and
imported under a local name; the repo's Dockerfile is then built on it with Debian's podman, exactly as
``docker build`` would build it on ``debian:bookworm-slim``. Each result is saved as a docker-archive tar, which
``ctr -n k8s.io images import`` loads into containerd with its full name, so a kubelet with
``imagePullPolicy: IfNotPresent`` finds it without pulling.

Nothing system-wide is touched: podman reads private storage, engine and registry files under
``$CFS_CSI_CACHE/containers`` (``CONTAINERS_*`` variables). The archives under ``$CFS_CSI_CACHE/images`` are the
durable cache, named by a hash of everything that goes into them; podman's storage is only a working copy,
reloaded from an archive when it is missing (a fresh CI machine that restored the cache directory).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from cfs_csi import __version__
from cfs_csi.devcluster.tools import TOOLS, bin_dir, cache_dir, installed

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
SUITE = "bookworm"
# Debian 12's main archive, its point-release updates and its security archive: the base, and every image
# built on it, has the security fixes of the day it was made.
SOURCES = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
# The trimming Debian's official images do: no translations or package caches in apt, no downloaded .debs
# kept (the Dockerfile removes them), no documentation, manual pages or locales unpacked by dpkg (copyright files stay).
APT_OPTIONS = (
    'Acquire::Languages "none"',
    'Acquire::GzipIndexes "true"',
    'APT::AutoRemove::SuggestsImportant "false"',
    'Dir::Cache::pkgcache ""',
    'Dir::Cache::srcpkgcache ""',
)
DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/locale/*",
)
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE_NAME = f"localhost/cfs-csi:{__version__}"
BASE_NAME = "localhost/cfs-csi-base"
# Build-cache layers (untagged) older than this are dropped, bounding the working copy; newer ones make a
# rebuild after a source change cost only the steps from `COPY src` on.
CACHE_HOURS = 24


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class Image:
    """A built image: its name, the archive containerd imports, and what it cost."""

    name: str
    archive: Path
    size: int  # bytes, uncompressed, as podman reports it
    seconds: float  # spent here: a full build when cold, a cache check (or reload) when warm
    built: bool  # False: taken from the cache


# --- decisions (pure) ---------------------------------------------------------------------------------------


def missing_prerequisites(which: Mapping[str, str | None], filesystems: str) -> list[str]:
    """Why images cannot be built here (empty: they can). ``filesystems`` is /proc/filesystems' text."""
    reasons = [f"{name} is not installed" for name in ("podman", "mmdebstrap", "runc") if not which.get(name)]
    if not any(line.split()[-1:] == ["overlay"] for line in filesystems.splitlines()):
        reasons.append("the kernel has no overlay file system")
    return reasons


def engine_files(root: Path, run: Path, runtime: str) -> dict[str, str]:
    """Private podman configuration: storage, engine and registries below ``root``; run-time state below ``run``.

    ``run`` belongs on a tmpfs (it is under /run when that is writable), as podman tells a reboot from a
    restart by its state there having gone.

    ``runtime`` is runc: crun refuses the cgroup v1+v2 hybrid layout. The ulimits are the host's hard limits,
    since podman's defaults are higher and raising a limit needs a capability root may lack. No registry is
    searched for a short name, so nothing is ever pulled by accident.
    """
    return {
        "storage.conf": (
            f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "storage"}"\nrunroot = "{run / "storage"}"\n'
        ),
        "containers.conf": (
            "[containers]\n"
            'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
            "[engine]\n"
            f'runtime = "{runtime}"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{root / "events.log"}"\n'
            f'tmp_dir = "{run / "tmp"}"\n'
            "[network]\n"
            f'network_config_dir = "{root / "networks"}"\n'
        ),
        "registries.conf": 'unqualified-search-registries = []\nshort-name-mode = "enforcing"\n',
    }


def engine_environment(root: Path) -> dict[str, str]:
    return {
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(root / "registries.conf"),
    }


def base_argv(output: Path) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--include=ca-certificates",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        *(f"--aptopt={option}" for option in APT_OPTIONS),
        *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
        SUITE,
        str(output),
        *SOURCES,
    ]


def base_key(today: datetime.date) -> str:
    """The base's cache key: how it is made, and the ISO week, so a cached base takes a week's security fixes."""
    year, week, _ = today.isocalendar()
    recipe = "\0".join(base_argv(Path("-"))) + f"\0{year}-W{week:02d}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def copied_sources(dockerfile: str) -> list[str]:
    """The build-context paths the Dockerfile's COPY steps take (not ``COPY --from`` another stage)."""
    text = re.sub(r"\\\n", " ", dockerfile)
    sources: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
            sources.extend(w for w in words[1:-1] if not w.startswith("--"))
    return sources


def context_files(repo: Path) -> list[Path]:
    """Every file the image is made of: the Dockerfile, .dockerignore and what COPY takes, sorted."""
    files = [repo / "Dockerfile", repo / ".dockerignore"]
    for source in copied_sources((repo / "Dockerfile").read_text()):
        path = repo / source
        if path.is_dir():
            files.extend(
                p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
        else:
            files.append(path)
    return sorted(set(files))


def content_key(root: Path, files: Iterable[Path], extra: str) -> str:
    """A hash of the files' names (relative to ``root``) and contents, and ``extra`` (e.g. the base's key)."""
    digest = hashlib.sha256(extra.encode())
    for path in files:
        digest.update(b"\0" + str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def is_static_elf(header: bytes) -> bool:
    """True for an ELF executable with no program interpreter (statically linked), from its first bytes.

    ``header`` must hold the ELF header and the program header table (the first 64 KiB is plenty for Go).
    """
    if header[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    order = "<" if header[5] == 1 else ">"
    offset_format, offset_at, counts_at = ("Q", 0x20, 0x36) if header[4] == 2 else ("I", 0x1C, 0x2A)
    (phoff,) = struct.unpack_from(order + offset_format, header, offset_at)
    phentsize, phnum = struct.unpack_from(order + "HH", header, counts_at)
    if phoff + phentsize * phnum > len(header):
        raise ValueError("the program header table is not within the bytes given")
    pt_interp = 3
    return all(struct.unpack_from(order + "I", header, phoff + i * phentsize)[0] != pt_interp for i in range(phnum))


def chart_sidecar_image(values: str, sidecar: str) -> str:
    """The image of ``sidecars.<sidecar>`` the chart uses on current clusters: the entry with the highest minKube."""
    entries = yaml.safe_load(values)["sidecars"][sidecar]

    def min_kube(entry: dict[str, str]) -> tuple[int, ...]:
        return tuple(int(part) for part in str(entry["minKube"]).split("."))

    return str(max(entries, key=min_kube)["image"])


def chart_provisioner_image(values: str) -> str:
    return chart_sidecar_image(values, "provisioner")


#: Chart sidecars (values key) that the dev node runs from a cached tool of the same name.
SIDECAR_TOOLS = {"provisioner": "csi-provisioner", "snapshotter": "csi-snapshotter"}


def sidecar_containerfile(static: bool, base: str, binary: str) -> str:
    """A static Go binary needs nothing around it; a dynamic one gets the same Debian base as our image."""
    return f'FROM {"scratch" if static else base}\nCOPY {binary} /{binary}\nENTRYPOINT ["/{binary}"]\n'


# --- I/O --------------------------------------------------------------------------------------------------


def images_dir() -> Path:
    return cache_dir() / "images"


def engine_dir() -> Path:
    return cache_dir() / "containers"


def check_prerequisites() -> list[str]:
    which = {name: shutil.which(name) for name in ("podman", "mmdebstrap", "runc")}
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError:
        filesystems = ""
    return missing_prerequisites(which, filesystems)


def _run(argv: list[str], timeout: float, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                                check=False)  # fmt: skip
    except FileNotFoundError:
        raise ImageError(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"{' '.join(argv[:3])} did not finish within {timeout:.0f}s") from None
    if result.returncode != 0:
        raise ImageError(f"{' '.join(argv[:3])} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


@contextmanager
def _locked() -> Iterator[None]:
    """One builder at a time per cache directory (two test runs, or a human and a test run)."""
    images_dir().mkdir(parents=True, exist_ok=True)
    with (images_dir() / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class Engine:
    """podman with the private configuration of :func:`engine_files`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or engine_dir()
        self.run_dir = self.root / "run"
        if os.access("/run", os.W_OK):
            self.run_dir = Path("/run/cfs-csi") / hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        for sub in (self.root / "storage", self.root / "networks", self.run_dir / "storage", self.run_dir / "tmp"):
            sub.mkdir(parents=True, exist_ok=True)
        for name, text in engine_files(self.root, self.run_dir, "runc").items():
            path = self.root / name
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
        self.env = {**os.environ, **engine_environment(self.root)}

    def podman(self, args: list[str], timeout: float = 120, cwd: Path | None = None) -> str:
        return _run(["podman", *args], timeout, self.env, cwd)

    def exists(self, name: str) -> bool:
        try:
            self.podman(["image", "exists", name], timeout=60)
        except ImageError:
            return False
        return True

    def size(self, name: str) -> int:
        return int(self.podman(["image", "inspect", "--format", "{{.Size}}", name]).strip())

    def image_id(self, name: str) -> str:
        return self.podman(["image", "inspect", "--format", "{{.Id}}", name]).strip()

    def run(self, name: str, args: list[str], entrypoint: str | None = None, timeout: float = 120) -> str:
        """Run a command in the image, no network, removed afterwards; its standard output."""
        options = ["--rm", "--network=none", *(["--entrypoint", entrypoint] if entrypoint else [])]
        return self.podman(["run", *options, name, *args], timeout=timeout)

    def build(self, context: Path, name: str, build_args: Mapping[str, str], file: Path | None = None) -> None:
        """``podman build`` without a daemon or user namespaces (chroot isolation), on the host's network.

        The host's CA bundle is mounted over the base's during RUN steps only, since outbound TLS may be
        intercepted by a proxy whose CA only the host trusts; it never ends up in a layer.
        """
        argv = ["build", "--isolation=chroot", "--network=host", "--pull=never", "--layers", "-t", name]
        if HOST_CA_BUNDLE.is_file():
            argv += ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        for key, value in build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        if file is not None:
            argv += ["-f", str(file)]
        self.podman([*argv, str(context)], timeout=1800, cwd=context)

    def save(self, name: str, archive: Path) -> None:
        """A docker-archive: its manifest names the image, which ``ctr images import`` keeps as the name."""
        partial = archive.with_name(archive.name + ".partial")
        partial.unlink(missing_ok=True)
        self.podman(["save", "--format", "docker-archive", "-o", str(partial), name], timeout=600)
        partial.rename(archive)

    def load(self, archive: Path) -> None:
        self.podman(["load", "-i", str(archive)], timeout=600)

    def remove_other_tags(self, repository: str, keep: str) -> None:
        """Drop older builds of ``repository`` so the working copy does not grow run after run."""
        listed = self.podman(["images", "--format", "{{.Repository}}:{{.Tag}}"]).split()
        stale = [name for name in listed if name.rsplit(":", 1)[0] == repository and name != keep]
        if stale:
            self.podman(["rmi", "--force", *stale], timeout=300)
        self.podman(["image", "prune", "--force", "--filter", f"until={CACHE_HOURS}h"], timeout=300)


#: Archives younger than this are kept: another checkout sharing the cache (a second test run) may be about to
#: import the one it just built.
_PRUNE_AFTER = 3600.0


def _prune_archives(prefix: str, keep: Path) -> None:
    now = time.time()
    for old in [*images_dir().glob(f"{prefix}-*.tar"), *images_dir().glob(f"{prefix}-*.tar.id")]:
        if old in (keep, _id_file(keep)):
            continue
        with contextlib.suppress(FileNotFoundError):
            if now - old.stat().st_mtime > _PRUNE_AFTER:
                old.unlink()


def _id_file(archive: Path) -> Path:
    return archive.with_name(archive.name + ".id")


def _saved(engine: Engine, name: str, archive: Path) -> None:
    engine.save(name, archive)
    _id_file(archive).write_text(engine.image_id(name) + "\n")


def _restore(engine: Engine, name: str, archive: Path, started: float) -> Image:
    """The cached archive, loaded into podman's working copy unless that holds this very image under ``name``
    (it may lack it: a fresh CI machine that restored only the archives; or hold another build of it)."""
    id_file = _id_file(archive)
    recorded = id_file.read_text().strip() if id_file.is_file() else ""
    if not (recorded and engine.exists(name) and engine.image_id(name) == recorded):
        engine.load(archive)
        id_file.write_text(engine.image_id(name) + "\n")
    return Image(name, archive, engine.size(name), time.monotonic() - started, built=False)


def ensure_base() -> Image:
    """The Debian base, made by mmdebstrap when this week's is not cached (about 30 s); its archive is the tar."""
    with _locked():
        return _ensure_base(Engine())


def _ensure_base(engine: Engine) -> Image:
    started, built = time.monotonic(), False
    key = base_key(datetime.date.today())
    name, tar = f"{BASE_NAME}:{key}", images_dir() / f"base-{key}.tar"
    if not tar.is_file():
        log.warning("making the Debian %s base with mmdebstrap (cached in %s)", SUITE, images_dir())
        with tempfile.TemporaryDirectory(dir=images_dir()) as work:
            _run(base_argv(Path(work) / "base.tar"), timeout=900)
            (Path(work) / "base.tar").rename(tar)
        _prune_archives("base", tar)
        built = True
    if not engine.exists(name):
        engine.podman(["import", str(tar), name], timeout=300)
        engine.remove_other_tags(BASE_NAME, name)
    return Image(name, tar, engine.size(name), time.monotonic() - started, built)


def ensure_image(repo: Path = REPO) -> Image:
    """Our image built from ``repo``'s Dockerfile, saved for containerd; only rebuilt when an input changed."""
    started = time.monotonic()
    with _locked():
        engine = Engine()
        base_name = _ensure_base(engine).name
        key = content_key(repo, context_files(repo), base_name)
        archive = images_dir() / f"cfs-csi-{key}.tar"
        if archive.is_file():
            return _restore(engine, IMAGE_NAME, archive, started)
        log.warning("building %s from %s (cached in %s)", IMAGE_NAME, repo / "Dockerfile", images_dir())
        engine.build(repo, IMAGE_NAME, {"BASE_IMAGE": base_name})
        _saved(engine, IMAGE_NAME, archive)
        _prune_archives("cfs-csi", archive)
        engine.remove_other_tags("localhost/cfs-csi", IMAGE_NAME)
        return Image(IMAGE_NAME, archive, engine.size(IMAGE_NAME), time.monotonic() - started, built=True)


def ensure_provisioner_image(values: Path | None = None) -> Image:
    """csi-provisioner from the cached Go binary, under the name the chart asks for, so nothing is pulled."""
    return ensure_sidecar_image("provisioner", values)


def ensure_sidecar_image(sidecar: str, values: Path | None = None) -> Image:
    """A chart sidecar (:data:`SIDECAR_TOOLS`) from its cached Go binary, under the name the chart asks for."""
    started = time.monotonic()
    tool = SIDECAR_TOOLS[sidecar]
    binary = installed(tool)
    if binary is None:
        raise ImageError(f"{tool} is not built yet (cfs-csi dev-cluster tools {tool}; {bin_dir()})")
    values = values or REPO / "deploy" / "helm" / "cfs-csi" / "values.yaml"
    name = chart_sidecar_image(values.read_text(), sidecar)
    with binary.open("rb") as f:
        static = is_static_elf(f.read(1 << 16))
    with _locked():
        engine = Engine()
        base_name = "scratch" if static else _ensure_base(engine).name
        containerfile = sidecar_containerfile(static, base_name, tool)
        key = content_key(binary.parent, [binary], f"{containerfile}\0{name}\0{TOOLS[tool].stamp}")
        archive = images_dir() / f"{tool}-{key}.tar"
        if archive.is_file():
            return _restore(engine, name, archive, started)
        log.warning("building %s from %s (%s)", name, binary, "static" if static else "dynamic")
        with tempfile.TemporaryDirectory(dir=images_dir()) as work:
            context = Path(work)
            shutil.copy2(binary, context / tool)
            (context / "Containerfile").write_text(containerfile)
            engine.build(context, name, {}, file=context / "Containerfile")
        _saved(engine, name, archive)
        _prune_archives(tool, archive)
        engine.remove_other_tags(name.rsplit(":", 1)[0], name)
        return Image(name, archive, engine.size(name), time.monotonic() - started, built=True)
