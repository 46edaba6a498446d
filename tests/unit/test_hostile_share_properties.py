"""Property: for any path pattern, labels, annotations, owned directories and symlink layout, the provisioner
either refuses and changes nothing, or acts only on the PV's own directory (and the missing parents on its way),
reached without crossing a symlink, and never on another volume's directory."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cfs_csi.provisioner.disk import Refused, provision_directory, reclaim_directory
from cfs_csi.provisioner.ownership import Verdict, conflict
from cfs_csi.provisioner.paths import RESERVED, DeleteAction, directory_for
from cfs_csi.volume.errors import InvalidArgument
from tests.share_snapshot import changed, inside, snapshot

BASE_DIRS = ["a", "a/b", "v", "atk", "old"]
#: Where a pod (or anyone) may have planted something: each slot is absent, a real directory, or a symlink.
SLOTS = ["up", "p", "atk/up", "atk/p", "atk/x", "a/x", "a/b/up", "v/up"]
TARGETS = ["..", "../..", ".", "/", "/tmp", "v", "../v", "a", "../a/b", "x", "missing"]
VALUES = ["", "..", ".", "/", "v", "up", "atk", "atk/up", "atk/up/v", "a/b", "a/up/v", "x/../v", "p/q", "new", "old",
          RESERVED, "a/b/c", "atk/p/x"]  # fmt: skip
TOKENS = ["a", "b", "v", "atk", "up", "p", "x", "new", "old", "..", ".", "${.PVC.namespace}", "${.PVC.name}",
          "${.PVC.labels.k}", "${.PVC.annotations.d}", "${.PVC.uid}"]  # fmt: skip
PATTERNS = ["", "${.PVC.annotations.d}", "${.PVC.labels.k}/${.PVC.name}"]
OWNABLE = ["a", "a/b", "a/b/c", "v", "atk", "x", "atk/up"]
ABSENT, DIRECTORY = "absent", "directory"

slots = st.fixed_dictionaries({slot: st.sampled_from([ABSENT, DIRECTORY, *TARGETS]) for slot in SLOTS})
components = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=2).map("".join)
patterns = st.lists(components, min_size=1, max_size=3).map("/".join)
WALK = ["a", "b", "v", "atk", "up", "p", "x", "new", ".."]
walks = st.lists(st.sampled_from(WALK), min_size=1, max_size=4).map("/".join)  # likely to cross planted links
values = st.sampled_from(VALUES) | walks | st.text(alphabet="av./p", max_size=6)


def _layout(root: Path, planted: dict[str, str]) -> None:
    for directory in BASE_DIRS:
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "v").chmod(0o700)
    (root / "v" / "s.txt").write_text("victim")
    (root / "old" / "o.txt").write_text("retained")
    for slot, what in planted.items():
        if what == DIRECTORY:
            (root / slot).mkdir()
        elif what != ABSENT:
            (root / slot).symlink_to(what)


def _real_directory_below(root: Path, relative: str) -> bool:
    """Every component of ``relative`` is a real directory (no symlink crossed)."""
    path = root
    for part in relative.split("/"):
        path = path / part
        if not stat.S_ISDIR(path.lstat().st_mode):
            return False
    return True


def _ancestors(relative: str) -> set[str]:
    parts = relative.split("/")
    return {"/".join(parts[:index]) for index in range(1, len(parts))}


@settings(max_examples=150, deadline=None)
@given(
    planted=slots,
    owned=st.lists(st.sampled_from(OWNABLE), max_size=3, unique=True),
    pattern=st.one_of(patterns, st.sampled_from(PATTERNS), st.just(PATTERNS[1])),
    name=st.sampled_from(["c", "v", "atk", "up"]),
    label=values,
    annotation=values,
    reuse=st.booleans(),
    action=st.sampled_from(list(DeleteAction)),
)
def test_refuse_or_act_only_inside_the_volumes_own_directory(
    planted: dict[str, str], owned: list[str], pattern: str, name: str, label: str, annotation: str, reuse: bool,
    action: DeleteAction,
) -> None:  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "share"
        root.mkdir()
        _layout(root, planted)
        owners = {f"pv-{index}": path for index, path in enumerate(owned)}
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _check(root, fd, owners, pattern, name, label, annotation, reuse, action)
        finally:
            os.close(fd)


def _check(root: Path, fd: int, owners: dict[str, str], pattern: str, name: str, label: str, annotation: str,
           reuse: bool, action: DeleteAction) -> None:  # fmt: skip
    volume = "pvc-0000"
    try:
        directory = directory_for(pattern, "ns", name, volume, {"k": label}, {"d": annotation})
    except InvalidArgument:
        return
    before = snapshot(root)
    try:
        verdict = provision_directory(fd, directory, volume, owners, reuse, 0o777)
    except Refused:
        assert changed(before, snapshot(root)) == set()
        return
    middle = snapshot(root)
    assert conflict(directory, volume, owners) is None
    assert _real_directory_below(root, directory)
    new_parents = {p for p in _ancestors(directory) if p not in before}
    for path in changed(before, middle):
        assert inside(path, RESERVED) or path == directory or path in new_parents, path
        assert path not in before or inside(path, RESERVED), f"{path} existed and was changed"
    if verdict is Verdict.CREATE:
        assert directory not in before and middle[directory] == ("dir", 0o777, "")
    else:
        assert verdict is Verdict.REUSE and reuse and before[directory] == middle[directory]

    done = reclaim_directory(fd, directory, volume, owners, action)
    after = snapshot(root)
    archived = done.removeprefix("archived as ") if done.startswith("archived as ") else None
    for path in changed(middle, after):
        assert inside(path, directory) or inside(path, RESERVED) or (archived and inside(path, archived)), path
    if archived:
        assert {p.replace(archived, directory, 1): e for p, e in after.items() if inside(p, archived)} == {
            p: e for p, e in middle.items() if inside(p, directory)
        }
