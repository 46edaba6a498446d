#!/usr/bin/env python3
"""Write ``deploy/manifests/cfs-csi.yaml`` from the Helm chart (the default render), or check it is current.

Usage::

    python scripts/render_manifests.py          # rewrite the file
    python scripts/render_manifests.py --check  # exit 1 if it differs from the chart's render
"""

from __future__ import annotations

import argparse
import sys

from cfs_csi.devcluster import helm, tools


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    binary = tools.ensure(["helm"])["helm"]
    wanted = helm.manifest(binary)
    current = helm.MANIFEST.read_text() if helm.MANIFEST.exists() else ""
    if args.check:
        if current != wanted:
            print(f"{helm.MANIFEST} is stale: run python scripts/render_manifests.py", file=sys.stderr)
            return 1
        return 0
    helm.MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    helm.MANIFEST.write_text(wanted)
    print(f"wrote {helm.MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
