"""The container image, built for real from the repo's Dockerfile and run.

The base is made from Debian's archive by mmdebstrap, the Dockerfile built on it with podman (private storage and
configuration under $CFS_CSI_CACHE/containers), and the result saved as the archive containerd imports. The first
run on a machine pays about a minute and a half; later runs take the cached archive unless an input changed.
Skipped, with the reason, where podman, mmdebstrap, runc or overlayfs are missing.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

import cfs_csi
from cfs_csi.devcluster import images, tools

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def engine() -> images.Engine:
    if reasons := images.check_prerequisites():
        pytest.skip(f"cannot build images here: {'; '.join(reasons)}")
    return images.Engine()


@pytest.fixture(scope="module")
def image(engine: images.Engine, tmp_path_factory: pytest.TempPathFactory) -> images.Image:
    # A snapshot of what the Dockerfile takes from the tree, so that the image is of one state of it even while
    # the tree is being edited. Its cache key is the tree's (names and contents), so the cache is the same.
    context = tmp_path_factory.mktemp("context")
    for path in images.context_files(REPO):
        (context / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, context / path.relative_to(REPO))
    base = images.ensure_base()
    first = images.ensure_image(context)
    again = images.ensure_image(context)
    print(
        f"\nbase {base.name} {base.size / 1e6:.0f} MB, {'made' if base.built else 'from the cache'} in "
        f"{base.seconds:.1f}s; image {first.name} {first.size / 1e6:.0f} MB, "
        f"{'built' if first.built else 'from the cache'} in {first.seconds:.1f}s, "
        f"then from the cache in {again.seconds:.1f}s; archive {first.archive}"
    )
    assert not again.built and again.archive == first.archive, "an unchanged tree must not be built again"
    return first


def repo_tags(archive: Path) -> list[str]:
    """The names a docker-archive gives its image: what ``ctr images import`` will call it."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.load(member)
    return [tag for entry in manifest for tag in entry.get("RepoTags") or []]


def test_the_image_runs_cfs_csi_of_this_version(engine: images.Engine, image: images.Image) -> None:
    printed = engine.run(image.name, ["--version"]).strip()
    assert printed == f"cfs-csi {cfs_csi.__version__}"


def test_the_image_runs_as_an_unprivileged_user_by_default(engine: images.Engine, image: images.Image) -> None:
    assert engine.run(image.name, ["-u"], entrypoint="id").strip() == "10001"


def test_the_image_has_the_nfs_mount_helper_and_no_package_caches(engine: images.Engine, image: images.Image) -> None:
    program = (
        "import glob, os, sys\n"
        "print(os.access('/sbin/mount.nfs', os.X_OK))\n"
        "print(sorted(glob.glob('/var/lib/apt/lists/*') + glob.glob('/var/cache/apt/archives/*.deb')))\n"
        "print(sorted(glob.glob('/usr/share/man/*') + glob.glob('/usr/share/locale/*')))\n"
        "print(sys.version_info[:2])\n"
    )
    out = engine.run(image.name, ["-c", program], entrypoint="python3").splitlines()
    assert out == ["True", "[]", "[]", "(3, 11)"]


def test_the_archive_names_the_image_for_containerd(image: images.Image) -> None:
    assert repo_tags(image.archive) == [image.name]


def test_csi_provisioner_image_from_the_cached_binary_under_the_charts_name(engine: images.Engine) -> None:
    if tools.installed("csi-provisioner") is None:
        pytest.skip("csi-provisioner is not built (cfs-csi dev-cluster tools csi-provisioner)")
    built = images.ensure_provisioner_image()
    print(f"\n{built.name} {built.size / 1e6:.0f} MB, {'built' if built.built else 'cached'} in {built.seconds:.1f}s")
    values = (REPO / "deploy" / "helm" / "cfs-csi" / "values.yaml").read_text()
    assert built.name == images.chart_provisioner_image(values)
    assert repo_tags(built.archive) == [built.name]
    assert engine.run(built.name, ["--version"]).startswith("/csi-provisioner ")
