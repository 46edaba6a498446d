#!/usr/bin/env python3
"""Regenerate the committed Python stubs from ``proto/*.proto``.

Why this exists: the gRPC/protobuf modules are generated code that we commit, so the driver can be installed
without grpcio-tools. This script is the single, reproducible way to rebuild them (``grpc_tools.protoc``), and
``--check`` lets CI/tests prove the committed files match the .proto files.

Two protocols, each into a package of its own:

- ``proto/csi.proto`` -> ``src/cfs_csi/csi/`` (the CSI API the driver serves);
- ``proto/pluginregistration.proto`` -> ``src/cfs_csi/registration/`` (the kubelet's plugin registration, which
  the node plugin serves itself instead of running node-driver-registrar).

Outputs per protocol: ``<name>_pb2.py``, ``<name>_pb2.pyi`` (protoc ``--pyi_out``) and ``<name>_pb2_grpc.py``.
No typed stub is generated for the gRPC module on purpose: typed stubs declare the servicer methods abstract,
while we rely on the generated base classes answering UNIMPLEMENTED for the RPCs we do not serve. protoc emits
``import <name>_pb2`` in the gRPC modules; that is rewritten to a package import so they work inside their
package.

Usage::

    python scripts/gen_proto.py          # regenerate in place
    python scripts/gen_proto.py --check  # exit 1 if committed stubs are stale
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "proto"


@dataclass(frozen=True)
class Protocol:
    """One .proto file and the package its stubs live in."""

    stem: str  # proto/<stem>.proto
    package: str  # cfs_csi.<x>

    @property
    def proto_file(self) -> str:
        return f"{self.stem}.proto"

    @property
    def out_dir(self) -> Path:
        return REPO_ROOT / "src" / Path(*self.package.split("."))

    @property
    def outputs(self) -> tuple[str, ...]:
        return (f"{self.stem}_pb2.py", f"{self.stem}_pb2.pyi", f"{self.stem}_pb2_grpc.py")


PROTOCOLS = (Protocol("csi", "cfs_csi.csi"), Protocol("pluginregistration", "cfs_csi.registration"))


def _fix_sibling_imports(protocol: Protocol, out_dir: Path) -> None:
    """Turn ``import <stem>_pb2`` into ``from <package> import <stem>_pb2``."""
    sibling = re.compile(rf"^import {protocol.stem}_pb2( as \w+)?$", re.MULTILINE)
    path = out_dir / f"{protocol.stem}_pb2_grpc.py"
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    fixed = sibling.sub(lambda m: f"from {protocol.package} import {protocol.stem}_pb2{m.group(1) or ''}", text)
    if fixed != text:
        path.write_text(fixed, encoding="utf-8")


def generate(protocol: Protocol, out_dir: Path) -> list[str]:
    """Run protoc for one protocol into ``out_dir``; return the names of the files produced."""
    from grpc_tools import protoc  # imported lazily: dev-only dependency

    bundled_protos = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--proto_path={bundled_protos}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        protocol.proto_file,
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed for {protocol.proto_file} with exit code {rc}")
    _fix_sibling_imports(protocol, out_dir)
    return list(protocol.outputs)


def check() -> int:
    """Regenerate into a temp dir and compare with the committed stubs."""
    stale: list[str] = []
    for protocol in PROTOCOLS:
        with tempfile.TemporaryDirectory(prefix="cfs-csi-proto-") as tmp:
            tmp_dir = Path(tmp)
            for name in generate(protocol, tmp_dir):
                committed = protocol.out_dir / name
                if not committed.is_file() or committed.read_bytes() != (tmp_dir / name).read_bytes():
                    stale.append(str(committed.relative_to(REPO_ROOT)))
    if stale:
        print(f"stale generated files (run scripts/gen_proto.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    print("generated stubs are up to date")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the committed stubs differ from a fresh generation",
    )
    opts = parser.parse_args(argv)
    if opts.check:
        return check()
    for protocol in PROTOCOLS:
        protocol.out_dir.mkdir(parents=True, exist_ok=True)
        for name in generate(protocol, protocol.out_dir):
            print(f"wrote {(protocol.out_dir / name).relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
