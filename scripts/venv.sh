# Sourced by scripts/demo and scripts/test: make .venv with the package and its dev tools.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WATCHDOG_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.watchdog-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  echo "setup: installing agent-watchdog[${WATCHDOG_EXTRAS:-dev}] into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q -e "$ROOT[${WATCHDOG_EXTRAS:-dev}]" >&2
  touch "$STAMP"
fi
# Bytecode for the package: an editable install writes none, and with PYTHONDONTWRITEBYTECODE
# set every hook would recompile watchdog's modules (a regular pip install precompiles).
"$VENV/bin/python" -m compileall -q "$ROOT/watchdog" >&2
export PATH="$VENV/bin:$PATH"
