"""The image builder's decisions, without a container engine: cache keys, ELF linkage, names, prerequisites."""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import pytest

from cfs_csi.devcluster import images

REPO = Path(__file__).resolve().parents[2]


def elf(bits: int, order: str, segment_types: list[int]) -> bytes:
    """A minimal ELF header and program header table with the given segment types."""
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if order == "<" else 2, 1]) + bytes(9)
    if bits == 64:
        phoff, ehsize, phentsize = 64, 64, 56
        header = ident + struct.pack(order + "HHIQQQIHHHHHH", 2, 62, 1, 0, phoff, 0, 0, ehsize, phentsize,
                                     len(segment_types), 0, 0, 0)  # fmt: skip
        table = b"".join(struct.pack(order + "II", t, 0) + bytes(phentsize - 8) for t in segment_types)
    else:
        phoff, ehsize, phentsize = 52, 52, 32
        header = ident + struct.pack(order + "HHIIIIIHHHHHH", 2, 3, 1, 0, phoff, 0, 0, ehsize, phentsize,
                                     len(segment_types), 0, 0, 0)  # fmt: skip
        table = b"".join(struct.pack(order + "I", t) + bytes(phentsize - 4) for t in segment_types)
    assert len(header) == phoff
    return header + table


PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4


@pytest.mark.parametrize(
    ("bits", "order", "segments", "static"),
    [
        (64, "<", [PT_LOAD, PT_LOAD, PT_NOTE], True),  # a Go binary with CGO_ENABLED=0
        (64, "<", [6, PT_INTERP, PT_LOAD, PT_DYNAMIC], False),  # a glibc program
        (64, ">", [PT_LOAD, PT_INTERP], False),
        (32, "<", [PT_LOAD], True),
        (32, "<", [PT_LOAD, PT_INTERP], False),
        (64, "<", [], True),
    ],
)
def test_static_linkage_is_read_from_the_program_headers(
    bits: int, order: str, segments: list[int], static: bool
) -> None:
    assert images.is_static_elf(elf(bits, order, segments)) is static


@pytest.mark.parametrize("data", [b"#!/bin/sh\n", elf(64, "<", [PT_LOAD, PT_INTERP])[:70]])
def test_what_is_not_a_whole_elf_header_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        images.is_static_elf(data)


def test_a_real_dynamic_program_is_seen_as_dynamic() -> None:
    python = Path("/usr/bin/python3").resolve()
    assert images.is_static_elf(python.read_bytes()[: 1 << 16]) is False


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            "sidecars:\n  provisioner:\n    - {minKube: '1.20', image: a:6}\n    - {minKube: '1.17', image: a:2}\n",
            "a:6",
        ),
        ("sidecars:\n  provisioner:\n    - {minKube: '1.9', image: old}\n    - {minKube: '1.13', image: new}\n", "new"),
        ("sidecars:\n  provisioner:\n    - {minKube: 1.20, image: only}\n", "only"),
    ],
)
def test_the_chart_provisioner_image_is_the_entry_for_the_newest_clusters(values: str, expected: str) -> None:
    assert images.chart_provisioner_image(values) == expected


@pytest.mark.parametrize("sidecar", sorted(images.SIDECAR_TOOLS))
def test_the_repo_chart_names_each_sidecar_tool_version(sidecar: str) -> None:
    """The image built from the cached binary carries the chart's name, so that name must be the built version."""
    name = images.chart_sidecar_image((REPO / "deploy/helm/cfs-csi/values.yaml").read_text(), sidecar)
    tool = images.TOOLS[images.SIDECAR_TOOLS[sidecar]]
    assert name.rsplit("/", 1)[1] == f"{tool.name}:{tool.version}"


@pytest.mark.parametrize(("static", "first"), [(True, "FROM scratch"), (False, "FROM base:1")])
def test_a_sidecar_image_is_its_binary_alone_unless_it_needs_a_libc(static: bool, first: str) -> None:
    lines = images.sidecar_containerfile(static, "base:1", "csi-snapshotter").splitlines()
    assert lines == [first, "COPY csi-snapshotter /csi-snapshotter", 'ENTRYPOINT ["/csi-snapshotter"]']


@pytest.mark.parametrize(
    ("dockerfile", "sources"),
    [
        ("FROM x\nCOPY a b ./\nCOPY --from=build /opt /opt\nCOPY --chown=1:1 c \\\n  /d\n", ["a", "b", "c"]),
        ("FROM x\ncopy src ./src\nRUN echo COPY x y\n", ["src"]),
        ("FROM x\nADD y /y\n", []),
    ],
)
def test_copied_sources_are_the_build_context_paths(dockerfile: str, sources: list[str]) -> None:
    assert images.copied_sources(dockerfile) == sources


def test_the_image_key_covers_every_file_the_dockerfile_copies() -> None:
    names = {str(p.relative_to(REPO)) for p in images.context_files(REPO)}
    for required in ("Dockerfile", ".dockerignore", "requirements.lock", "requirements-build.lock",
                     "pyproject.toml", "README.md", "src/cfs_csi/__init__.py", "src/cfs_csi/cli.py"):  # fmt: skip
        assert required in names
    assert not any("__pycache__" in name or name.startswith("tests/") for name in names)


def test_the_content_key_changes_with_a_name_a_byte_or_the_base(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    (tmp_path / "b").write_text("two")
    files = [tmp_path / "a", tmp_path / "b"]
    key = images.content_key(tmp_path, files, "base1")
    assert images.content_key(tmp_path, files, "base1") == key
    assert images.content_key(tmp_path, files, "base2") != key
    (tmp_path / "b").write_text("twO")
    assert images.content_key(tmp_path, files, "base1") != key
    (tmp_path / "b").write_text("two")
    (tmp_path / "a").rename(tmp_path / "c")
    assert images.content_key(tmp_path, [tmp_path / "c", tmp_path / "b"], "base1") != key


def test_the_base_is_remade_each_week_for_security_updates() -> None:
    monday, sunday, next_monday = datetime.date(2026, 11, 23), datetime.date(2026, 11, 29), datetime.date(2026, 11, 30)
    assert images.base_key(monday) == images.base_key(sunday) != images.base_key(next_monday)


def test_the_base_is_debian_minbase_with_security_sources_and_trimmed() -> None:
    argv = images.base_argv(Path("/out.tar"))
    assert argv[:2] == ["mmdebstrap", "--variant=minbase"]
    assert "--include=ca-certificates" in argv and "/out.tar" in argv
    assert any("bookworm-security" in arg for arg in argv)
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv


@pytest.mark.parametrize(
    ("which", "filesystems", "reasons"),
    [
        ({"podman": "/p", "mmdebstrap": "/m", "runc": "/r"}, "nodev\toverlay\n", []),
        ({"podman": None, "mmdebstrap": "/m", "runc": "/r"}, "nodev\toverlay\n", ["podman is not installed"]),
        (
            {"podman": "/p", "mmdebstrap": "/m", "runc": "/r"},
            "\text4\nnodev\toverlayx\n",
            ["the kernel has no overlay file system"],
        ),
        (
            {},
            "",
            [
                "podman is not installed",
                "mmdebstrap is not installed",
                "runc is not installed",
                "the kernel has no overlay file system",
            ],
        ),
    ],
)
def test_missing_prerequisites_say_why(which: dict[str, str | None], filesystems: str, reasons: list[str]) -> None:
    assert images.missing_prerequisites(which, filesystems) == reasons


def test_the_private_engine_configuration_stays_below_its_directories(tmp_path: Path) -> None:
    root, run = tmp_path / "cache", tmp_path / "run"
    files = images.engine_files(root, run, "runc")
    env = images.engine_environment(root)
    assert sorted(Path(path).name for path in env.values()) == sorted(files)
    assert all(Path(path).parent == root for path in env.values())
    for text in files.values():
        for line in text.splitlines():
            if line.strip().endswith('"') and "/" in line and "=" in line:
                assert str(root) in line or str(run) in line, line
    assert f'runroot = "{run}/storage"' in files["storage.conf"]
    assert f'graphroot = "{root}/storage"' in files["storage.conf"]
    assert 'runtime = "runc"' in files["containers.conf"]
    assert "nofile=20000:20000" in files["containers.conf"]
