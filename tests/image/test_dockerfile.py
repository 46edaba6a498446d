"""The container image's Python half, proven here without a container engine.

The Dockerfile's build stage is run as written: its ENV, WORKDIR, COPY and exec-form RUN steps, with the image
paths moved into a temporary directory. Every step of that stage must be one of those, so nothing is skipped,
except its apt-get step: that only brings Debian's python3-venv, which the host's Python stands in for. Debian
packages cannot be installed here; the tests check they are asked for (tests/image/test_image_build.py builds the
image for real with podman where it can).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
IMAGE_PREFIX = "/opt/cfs-csi"


def instructions() -> list[tuple[str, str]]:
    """(keyword, arguments) of every instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([(keyword, rest)])
        elif result:
            result[-1].append((keyword, rest))
    return result


def pins(lock: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", lock.read_text(), re.MULTILINE)
    return {name.lower().replace("_", "-"): version for name, version in found}


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-build.lock"])
def test_image_locks_pin_by_hash_what_the_tests_run(lock: str) -> None:
    """The runtime versions are the development environment's; setuptools meets the build-system requirement."""
    image = pins(REPO / lock)
    assert image
    if lock == "requirements.lock":
        dev = pins(REPO / "requirements-dev.lock")
        assert {name: dev.get(name) for name in image} == image
    else:
        build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
        assert [Requirement(r).name for r in build] == list(image)
        assert all(Requirement(r).specifier.contains(image[Requirement(r).name]) for r in build)
    text = "\n".join(line for line in (REPO / lock).read_text().splitlines() if not line.startswith("#"))
    blocks = [block for block in re.split(r"\n(?=[A-Za-z])", text) if "==" in block]
    assert blocks and all("--hash=sha256:" in block for block in blocks)


def apt_packages(stage: list[tuple[str, str]]) -> list[str]:
    """The packages a stage's shell-form ``apt-get install`` steps ask for."""
    found = []
    for keyword, rest in stage:
        if keyword == "RUN" and not rest.startswith("["):
            for command in rest.split("&&"):
                words = command.split()
                if "apt-get" in words and "install" in words:
                    assert "--no-install-recommends" in words and "-y" in words, command
                    found += [word for word in words[words.index("install") + 1 :] if not word.startswith("-")]
            assert "rm -rf /var/lib/apt/lists/*" in rest, "apt's package lists must not stay in the layer"
    return found


def test_both_stages_start_from_the_same_debian_base() -> None:
    """The venv's python links to /usr/bin/python3: the final stage must have the build stage's interpreter."""
    args = [rest for keyword, rest in instructions() if keyword == "ARG"]
    assert "BASE_IMAGE=debian:bookworm-slim" in args
    assert [stage[0][1].split()[0] for stage in stages()] == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert apt_packages(stages()[0]) == ["python3-venv"]
    assert "python3" in apt_packages(stages()[-1])


def test_final_stage_has_the_nfs_client_and_an_unprivileged_default_user() -> None:
    final = stages()[-1]
    assert {"nfs-common", "mount"} <= set(apt_packages(final))
    assert ("USER", "10001") in final
    assert ("ENTRYPOINT", '["cfs-csi"]') in final


def test_build_stage_installs_a_complete_runnable_package(tmp_path: Path) -> None:
    build = stages()[0]
    assert build[0][1].endswith(" AS build")
    prefix = tmp_path / "opt-cfs-csi"
    workdir = tmp_path / "src"
    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)
    for keyword, rest in build[1:]:
        if keyword == "ENV":
            env.update(dict(pair.split("=", 1) for pair in rest.split()))
            env.pop("PIP_NO_CACHE_DIR", None)  # keep pip's cache here: hashes pin what is installed anyway
        elif keyword == "WORKDIR":
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, _ = rest.split()
            for source in sources:
                src = REPO / source
                if src.is_dir():
                    shutil.copytree(src, workdir / source, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(src, workdir / source)
        elif keyword == "RUN" and not rest.startswith("["):
            assert apt_packages([(keyword, rest)]) == ["python3-venv"]  # the host's Python has venv
        elif keyword == "RUN":
            argv = json.loads(rest)  # exec form otherwise: no shell in the build stage
            argv = [sys.executable if arg == "python3" else arg.replace(IMAGE_PREFIX, str(prefix)) for arg in argv]
            result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"{argv}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        else:
            pytest.fail(f"the build stage has a {keyword} step this test cannot run")

    python, cli = prefix / "bin" / "python", prefix / "bin" / "cfs-csi"
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert version.stdout.strip() == "cfs-csi 0.1.0"
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout
    # Every runtime module imports from the installed copy (the dev-cluster tooling is not part of the image).
    program = (
        "import importlib, pkgutil, cfs_csi\n"
        f"assert cfs_csi.__file__.startswith({str(prefix)!r}), cfs_csi.__file__\n"
        "names = [m.name for m in pkgutil.walk_packages(cfs_csi.__path__, 'cfs_csi.')"
        " if not m.name.startswith('cfs_csi.devcluster') and not m.name.endswith('__main__')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    imported = subprocess.run([str(python), "-c", program], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert int(imported.stdout) > 40
    load_crd = "from cfs_csi.operator.main import crd_manifest; print(crd_manifest()['kind'])"
    crd = subprocess.run([str(python), "-c", load_crd], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert crd.stdout.strip() == "CustomResourceDefinition", crd.stderr
