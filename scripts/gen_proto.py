#!/usr/bin/env python3
"""Regenerate the Python CSI stubs from ``proto/csi.proto``.

Why this exists: the gRPC/protobuf modules under ``src/cfs_csi/csi/`` are
generated code that we commit, so the driver can be installed without
grpcio-tools. This script is the single, reproducible way to rebuild them
(``grpc_tools.protoc``), and ``--check`` lets CI/tests prove the committed files match the .proto.

Outputs: ``csi_pb2.py``, ``csi_pb2.pyi`` (protoc ``--pyi_out``) and
``csi_pb2_grpc.py``. No typed stub is generated for the gRPC module on
purpose: typed stubs declare the servicer methods abstract, while we rely on
the generated base classes answering UNIMPLEMENTED for the RPCs we do not
serve. protoc emits ``import csi_pb2`` in the gRPC
modules; that is rewritten to a package import so they work inside
``cfs_csi.csi``.

Usage::

    python scripts/gen_proto.py          # regenerate in place
    python scripts/gen_proto.py --check  # exit 1 if committed stubs are stale
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "proto"
PROTO_FILE = "csi.proto"
OUT_DIR = REPO_ROOT / "src" / "cfs_csi" / "csi"
PACKAGE = "cfs_csi.csi"

BASE_OUTPUTS = ("csi_pb2.py", "csi_pb2.pyi", "csi_pb2_grpc.py")

# Matches protoc's top-level sibling import, e.g. "import csi_pb2 as csi__pb2".
_SIBLING_IMPORT = re.compile(r"^import csi_pb2( as \w+)?$", re.MULTILINE)


def _fix_sibling_imports(out_dir: Path) -> None:
    """Turn ``import csi_pb2`` into ``from cfs_csi.csi import csi_pb2``."""
    for name in ("csi_pb2_grpc.py",):
        path = out_dir / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        fixed = _SIBLING_IMPORT.sub(lambda m: f"from {PACKAGE} import csi_pb2{m.group(1) or ''}", text)
        if fixed != text:
            path.write_text(fixed, encoding="utf-8")


def generate(out_dir: Path) -> list[str]:
    """Run protoc into ``out_dir``; return the names of the files produced."""
    from grpc_tools import protoc  # imported lazily: dev-only dependency

    bundled_protos = Path(protoc.__file__).resolve().parent / "_proto"

    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--proto_path={bundled_protos}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
    ]
    produced = list(BASE_OUTPUTS)
    args.append(PROTO_FILE)

    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    _fix_sibling_imports(out_dir)
    return produced


def check() -> int:
    """Regenerate into a temp dir and compare with the committed stubs."""
    with tempfile.TemporaryDirectory(prefix="cfs-csi-proto-") as tmp:
        tmp_dir = Path(tmp)
        stale = [
            name
            for name in generate(tmp_dir)
            if not (OUT_DIR / name).is_file() or (OUT_DIR / name).read_bytes() != (tmp_dir / name).read_bytes()
        ]
    if stale:
        print(f"stale generated files (run scripts/gen_proto.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    print("generated CSI stubs are up to date")
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
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name in generate(OUT_DIR):
        print(f"wrote {(OUT_DIR / name).relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
