"""An agent's own config file, changed by `init` and `uninstall` the same way for every harness.

The harness's `Setup` says where the file is and how its JSON changes (pure functions); this
module does the file work around them: read (a missing file is `{}`), apply, and only when
the JSON really changed, copy the old file to a backup beside it and write the new one
atomically. Running `init` twice therefore writes nothing the second time, and `uninstall`
after `init` leaves the user's file as it was, less our entries.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.errors import ConfigError
from watchdog.harnesses.base import Setup
from watchdog.harnesses.hook_commands import is_ours


def read(path: Path) -> dict[str, Any]:
    """The config's JSON object; ConfigError (never a silent overwrite) when it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror}); fix its permissions.") from exc
    try:
        loaded = json.loads(text or "{}")
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix it, then run this again."
                          ) from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} is not a JSON object; fix it by hand.")
    return loaded


def write(path: Path, data: dict[str, Any]) -> Path | None:
    """Write `data` atomically; the previous file (if any) is kept as `<name>.watchdog-<ts>.bak`,
    whose path is returned."""
    path.parent.mkdir(parents=True, exist_ok=True)
    backup: Path | None = None
    if path.exists():
        backup = path.with_name(f"{path.name}.watchdog-{time.strftime('%Y%m%d-%H%M%S')}.bak")
        n = 1
        while backup.exists():
            backup = path.with_name(f"{path.name}.watchdog-{time.strftime('%Y%m%d-%H%M%S')}"
                                    f"-{n}.bak")
            n += 1
        backup.write_bytes(path.read_bytes())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return backup


Edit = Callable[[dict[str, Any]], dict[str, Any]]


def _change(path: Path, edit: Edit) -> tuple[bool, Path | None]:
    before = read(path)
    after = edit(copy.deepcopy(before))
    if after == before and (path.exists() or not after):
        return False, None
    return True, write(path, after)


def install(setup: Setup, project: Path, home: Path, global_: bool, command: str,
            fail_closed: bool) -> list[str]:
    """Register `command` in the harness's config (and write its extra files); what changed."""
    path = setup.config_path(project, home, global_)
    done: list[str] = []
    changed, backup = _change(path, lambda c: setup.add(c, command, fail_closed))
    if changed:
        done.append(str(path) + (f" (backup: {backup.name})" if backup else ""))
    closed = setup.files(command, True)
    for rel, text in setup.files(command, fail_closed).items():
        target = path.parent / rel
        old = target.read_text(encoding="utf-8", errors="replace") if target.exists() else None
        if old == text or (old is not None and old == closed.get(rel)):
            continue  # as wanted, or fail-closed already: a re-run never makes it fail open
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        done.append(str(target))
    return done


def uninstall(setup: Setup, project: Path, home: Path, global_: bool,
              command: str = "") -> list[str]:
    """Remove our hook entries (and extra files) from the harness's config; what changed."""
    path = setup.config_path(project, home, global_)
    done: list[str] = []
    if path.exists():
        changed, backup = _change(path, lambda c: setup.remove(c, lambda x: is_ours(x, command)))
        if changed:
            done.append(str(path) + (f" (backup: {backup.name})" if backup else ""))
    for rel in setup.files(command or "watchdog", False):
        target = path.parent / rel
        if target.is_file():
            target.unlink()
            done.append(f"{target} (removed)")
    return done
