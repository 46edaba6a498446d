"""Build a Go program by package name when its module uses local ``replace`` directives.

``go install pkg@version`` refuses modules whose go.mod replaces dependencies with local directories, as
Kubernetes (its ``staging/`` modules), etcd and the CSI sidecars do. The fix is a throw-away main module that
requires the target and repeats its replace lines, with each local directory pinned to the published module
of the matching version instead. This module computes that go.mod; it does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_REPLACE_LINE = re.compile(
    r"^\s*(?P<old>\S+)(?:\s+(?P<old_version>v\S+))?\s+=>\s+(?P<new>\S+)(?:\s+(?P<new_version>v\S+))?\s*$"
)
_GO_LINE = re.compile(r"^go\s+(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Replace:
    old: str
    new: str
    new_version: str = ""

    @property
    def is_local(self) -> bool:
        return self.new.startswith(("./", "../", "/"))

    def line(self) -> str:
        return f"{self.old} => {self.new} {self.new_version}".rstrip()


def parse_replaces(go_mod: str) -> list[Replace]:
    """Every replace directive, single-line or in a block; comments ignored."""
    replaces = []
    in_block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if in_block:
            if line == ")":
                in_block = False
                continue
            body = line
        elif line.startswith("replace"):
            body = line[len("replace") :].strip()
            if body == "(":
                in_block = True
                continue
        else:
            continue
        match = _REPLACE_LINE.match(body)
        if match:
            replaces.append(Replace(match["old"], match["new"], match["new_version"] or ""))
    return replaces


def go_version(go_mod: str) -> str:
    match = _GO_LINE.search(go_mod)
    return match.group(1) if match else "1.22"


def staging_version(version: str) -> str:
    """Kubernetes publishes ``k8s.io/kubernetes`` v1.X.Y's staging modules as v0.X.Y."""
    return "v0." + version.removeprefix("v1.") if version.startswith("v1.") else version


def same_version(version: str) -> str:
    return version


def build_module(
    name: str, target: str, version: str, target_go_mod: str, pin: Callable[[str], str] = same_version
) -> str:
    """The go.mod of a throw-away module ``name`` that builds packages of ``target``@``version``."""
    lines = [f"module {name}", "", f"go {go_version(target_go_mod)}", "", f"require {target} {version}", ""]
    replaces = []
    for replace in parse_replaces(target_go_mod):
        if "FORBIDDEN" in replace.new:
            continue  # a guard against importing a module at all (etcd has these): nothing to pin
        if replace.is_local:
            replaces.append(Replace(replace.old, replace.old, pin(version)))
        else:
            replaces.append(replace)
    if replaces:
        lines += ["replace (", *(f"\t{r.line()}" for r in replaces), ")", ""]
    return "\n".join(lines)
