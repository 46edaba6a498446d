"""pod_path: the node plugin accepts only well-formed paths strictly below the kubelet's pods directory."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cfs_csi.mount.podpath import OutsidePods, PodPath, pod_path
from cfs_csi.volume.errors import InvalidArgument

PODS = "/var/lib/kubelet/pods"
KUBELET_TARGET = f"{PODS}/8f3c/volumes/kubernetes.io~csi/pvc-1/mount"


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        (KUBELET_TARGET, ("8f3c", "volumes", "kubernetes.io~csi", "pvc-1", "mount")),
        (f"{PODS}/x", ("x",)),
        (f"{PODS}//a/./b/", ("a", "b")),  # normalised: a doubled slash, '.', a trailing slash
        (f"{PODS}/{'n' * 255}", ("n" * 255,)),  # exactly NAME_MAX bytes
        (f"{PODS}/é", ("é",)),
    ],
)
def test_accepted(path: str, parts: tuple[str, ...]) -> None:
    accepted = pod_path(PODS, path)
    assert accepted.parts == parts
    assert accepted.path == f"{PODS}/{'/'.join(parts)}"
    assert (accepted.name, accepted.parent) == (parts[-1], parts[:-1])


@pytest.mark.parametrize(
    ("path", "outside", "words"),
    [
        ("/", True, "not below the kubelet's pods directory"),
        (PODS, True, "not below"),
        (f"{PODS}/", True, "not below"),
        ("/var/lib/kubelet/podsX/a", True, "not below"),  # a sibling whose name starts the same
        ("/etc/passwd", True, "not below"),
        ("relative/path", True, "not absolute"),
        ("some/path", True, "not absolute"),
        (f"{PODS}/a/../../../etc", False, "'..'"),
        (f"{PODS}/..", False, "'..'"),
        (f"{PODS}/a\x00b", False, "NUL byte"),
        (f"{PODS}/{'x' * 256}", False, "longer than 255 bytes"),
        (f"{PODS}/{'é' * 128}", False, "longer than 255 bytes"),  # 128 characters, 256 bytes
        (PODS + ("/" + "d" * 99) * 50, False, "5021 bytes long; the limit is 4095"),
    ],
)
def test_refused(path: str, outside: bool, words: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        pod_path(PODS, path)
    assert isinstance(error.value, OutsidePods) == outside
    assert words in str(error.value)
    assert len(str(error.value)) < 400  # a 5000-character path is cut in the message


def test_the_pods_directory_may_be_given_with_a_trailing_slash() -> None:
    assert pod_path(PODS + "/", f"{PODS}/a").parts == ("a",)


_NAMES = st.sampled_from(["a", "pods", "..", ".", "", "x" * 256, "é", "b\x00", "mount", "~csi"])


@given(st.lists(_NAMES, max_size=8), st.booleans())
def test_accepted_paths_are_always_below_the_pods_directory(names: list[str], absolute: bool) -> None:
    """Whatever the components, an accepted path is strictly below the pods directory, with clean components."""
    path = ("/" if absolute else "") + "/".join(["var", "lib", "kubelet", "pods", *names])
    try:
        accepted = pod_path(PODS, path)
    except InvalidArgument:
        return
    assert isinstance(accepted, PodPath)
    assert accepted.parts and all(part not in ("", ".", "..") and "\x00" not in part for part in accepted.parts)
    assert all(len(os.fsencode(part)) <= 255 for part in accepted.parts)
    assert accepted.path == os.path.join(PODS, *accepted.parts)
    assert os.path.commonpath([accepted.path, PODS]) == PODS and accepted.path != PODS
