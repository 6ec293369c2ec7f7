"""Where watchdog keeps its files: user config, cache (compiled bundles) and state (logs).

XDG base directories on Linux, the usual folders on macOS, each overridable with a
`WATCHDOG_*_DIR` variable. Written by hand rather than with platformdirs because this runs in
every hook process and platformdirs costs about 5 ms to import.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `typing` and `collections.abc` cost ms on `hook --serve`'s path
if TYPE_CHECKING:
    from collections.abc import Mapping


def _home(env: Mapping[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def _xdg(env: Mapping[str, str], var: str, default: str, mac: str) -> str:
    value = env.get(var)
    if value and os.path.isabs(value):
        return value
    if sys.platform == "darwin":
        return os.path.join(_home(env), mac)
    return os.path.join(_home(env), default)


def config_home(env: Mapping[str, str]) -> str:
    """The parent of per-tool config dirs (`~/.config`): watchdog's and Cupcake's live there."""
    return _xdg(env, "XDG_CONFIG_HOME", ".config", ".config")


def config_dir(env: Mapping[str, str]) -> str:
    return env.get("WATCHDOG_CONFIG_DIR") or os.path.join(config_home(env), "watchdog")


def cupcake_global_dir(env: Mapping[str, str]) -> str:
    if sys.platform == "darwin" and not env.get("XDG_CONFIG_HOME"):
        return os.path.join(_home(env), "Library", "Application Support", "cupcake")
    return os.path.join(config_home(env), "cupcake")


def cache_dir(env: Mapping[str, str]) -> str:
    base = _xdg(env, "XDG_CACHE_HOME", ".cache", os.path.join("Library", "Caches"))
    return env.get("WATCHDOG_CACHE_DIR") or os.path.join(base, "watchdog")


def state_dir(env: Mapping[str, str]) -> str:
    base = _xdg(
        env, "XDG_STATE_HOME", os.path.join(".local", "state"), os.path.join("Library", "Logs")
    )
    return env.get("WATCHDOG_STATE_DIR") or os.path.join(base, "watchdog")
