#!/usr/bin/env bash
# Create .venv with the locked dependencies and cfs-csi installed in editable mode. Cheap when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "setup: Python 3.11 or newer is required" >&2; exit 1
}

if [[ ! -x .venv/bin/python ]]; then
  "$(pick_python)" -m venv .venv
fi
wanted="$(cat requirements-dev.lock pyproject.toml | sha256sum | cut -c1-16)"
if [[ "$(cat .venv/.installed 2>/dev/null)" != "$wanted" ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$wanted" > .venv/.installed
fi
