# Sourced by scripts/demo and scripts/test: make .venv with exactly the versions in
# requirements-lock.txt (hashes checked), then the package itself, editable, without its deps.
# Re-installs only when the lock or pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WATCHDOG_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
LOCK="$ROOT/requirements-lock.txt"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.watchdog-installed"
WANT="$(cat "$LOCK" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "setup: installing the locked dependencies ($(basename "$LOCK")) into $VENV" >&2
  # --no-deps: the lock lists every package; a package it lacks is an error, not a download.
  "$VENV/bin/python" -m pip install -q --require-hashes --no-deps -r "$LOCK" >&2
  # The build backend (hatchling) is in the lock too, so no unpinned build environment.
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT" >&2
  "$VENV/bin/python" -m pip check >&2
  echo "$WANT" > "$STAMP"
fi
# Bytecode for the package: an editable install writes none, and with PYTHONDONTWRITEBYTECODE
# set every hook would recompile watchdog's modules (a regular pip install precompiles).
"$VENV/bin/python" -m compileall -q "$ROOT/watchdog" >&2
export PATH="$VENV/bin:$PATH"
