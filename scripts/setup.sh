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

# Progress goes to stderr (callers capture stdout): one line per step and per package, so a first run (a few
# minutes on a cold machine) is never silent; an up-to-date .venv prints nothing.
say() { echo "setup: $*" >&2; }
started=$SECONDS
if [[ ! -x .venv/bin/python ]]; then
  python="$(pick_python)"
  say "creating .venv with $python"
  "$python" -m venv .venv
fi
wanted="$(cat requirements-dev.lock pyproject.toml | sha256sum | cut -c1-16)"
if [[ "$(cat .venv/.installed 2>/dev/null)" != "$wanted" ]]; then
  count="$(grep -cE '^[A-Za-z0-9]' requirements-dev.lock || true)"
  say "installing $count locked packages into .venv (pip; a few minutes the first time)"
  # pip's own lines, reduced to one per package: what is being fetched, then what was installed.
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -r requirements-dev.lock 2>&1 \
    | { grep -E --line-buffered '^(Collecting|Successfully installed|ERROR)' || true; } >&2
  [[ "${PIPESTATUS[0]}" == 0 ]] || { say "pip install failed (run it by hand to see why)"; exit 1; }
  say "installing cfs-csi (editable)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$wanted" > .venv/.installed
  say "done in $((SECONDS - started))s"
fi
