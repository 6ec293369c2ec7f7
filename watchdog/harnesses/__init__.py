"""The agents whose hooks watchdog answers; each module holds one `Harness` (see base.py).

Modules load on demand: the hook imports only the harness it runs for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from watchdog.errors import ConfigError

if TYPE_CHECKING:
    from watchdog.harnesses.base import Harness

#: --harness name -> module under watchdog.harnesses.
NAMES: dict[str, str] = {
    "claude": "claude", "cursor": "cursor", "factory": "factory", "opencode": "opencode",
}

#: How each agent is called in messages.
DISPLAY: dict[str, str] = {
    "claude": "Claude Code", "cursor": "Cursor", "factory": "Factory Droid",
    "opencode": "OpenCode",
}


def display(name: str) -> str:
    return DISPLAY.get(name, name)


def get(name: str) -> Harness:
    """The harness called `name`; ConfigError names the supported ones."""
    module = NAMES.get(name)
    if module is None:
        raise ConfigError(
            f"unknown harness '{name}'. Supported: {', '.join(NAMES)}. "
            "Fix --harness in the agent's hook configuration."
        )
    harness: Harness = importlib.import_module(f"watchdog.harnesses.{module}").HARNESS
    return harness
