"""Claude Code's hook registration: the `hooks` of `.claude/settings.json`, edited as JSON.

Pure functions for `init` and `uninstall` (which do the file work): `add` registers the hook for
every event watchdog answers, `remove` takes out exactly the entries that are ours.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from watchdog.errors import ConfigError
from watchdog.harnesses.base import Setup
from watchdog.harnesses.hook_commands import is_ours

if TYPE_CHECKING:  # annotations only: cursor.py imports this module on the hook path
    from collections.abc import Callable
    from pathlib import Path

TIMEOUT_S = 30
#: Claude Code events watchdog answers; tool events take a matcher.
TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PermissionRequest")
OTHER_EVENTS = ("UserPromptSubmit", "SessionStart", "Stop", "SubagentStop")
#: Claude Code ignores `onFailure` on these (see harness-protocols.md), so it is not written
#: there: the key would promise a fail-closed Stop hook that Claude Code does not give.
NO_ON_FAILURE = ("Stop", "SubagentStop")
WHERE = ".claude/settings.json"
#: `init --http`: the command is then the URL of `watchdog serve` (Claude Code posts the event
#: there and reads the same JSON back; the token comes from the environment).
HTTP_HEADERS = {"Authorization": "Bearer $WATCHDOG_SERVE_TOKEN"}
HTTP_ENV = ["WATCHDOG_SERVE_TOKEN"]


def _is_url(command: str) -> bool:
    return command.startswith(("http://", "https://"))


def _ours(hook: Any, command: str) -> bool:
    """A hook entry of ours: a watchdog command, or an http hook posting to serve's URL."""
    if not isinstance(hook, dict):
        return False
    if hook.get("type") == "http":
        url = hook.get("url")
        return isinstance(url, str) and (url == command or "/hook/claude" in url)
    return is_ours(hook.get("command"), command)


def _entry(command: str, blocks: bool) -> dict[str, Any]:
    new: dict[str, Any] = (
        {"type": "http", "url": command, "timeout": TIMEOUT_S, "headers": dict(HTTP_HEADERS),
         "allowedEnvVars": list(HTTP_ENV)} if _is_url(command)
        else {"type": "command", "command": command, "timeout": TIMEOUT_S})
    if blocks:
        new["onFailure"] = "block"
    return new


def config_path(project: Path, home: Path, global_: bool) -> Path:
    return (home if global_ else project) / ".claude" / "settings.json"


def _hooks(settings: dict[str, Any]) -> dict[str, Any]:
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigError(f"'hooks' in {WHERE} is not an object; fix it by hand.")
    return hooks


def ours_by_event(settings: dict[str, Any], command: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, hook entry) for each of our hooks, for `init`'s summary and checks."""
    hooks = settings.get("hooks")
    found: list[tuple[str, dict[str, Any]]] = []
    for event in TOOL_EVENTS + OTHER_EVENTS:
        groups = hooks.get(event) if isinstance(hooks, dict) else None
        for group in groups if isinstance(groups, list) else []:
            for hook in group.get("hooks", []) if isinstance(group, dict) else []:
                if _ours(hook, command):
                    found.append((event, hook))
    return found


def add(settings: dict[str, Any], command: str, fail_closed: bool) -> dict[str, Any]:
    """Add (or update) watchdog's hook for every event, in place; returns `settings`.

    `fail_closed` adds `"onFailure": "block"`; without it an `onFailure` already there stays,
    so re-running init never quietly turns a fail-closed setup open.
    """
    hooks = _hooks(settings)
    for event in TOOL_EVENTS + OTHER_EVENTS:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise ConfigError(f"hooks.{event} in {WHERE} is not a list; fix it.")
        blocks = fail_closed and event not in NO_ON_FAILURE
        found = False
        for group in groups:
            inner = group.get("hooks", []) if isinstance(group, dict) else []
            for i, hook in enumerate(inner):
                if _ours(hook, command):
                    found = True
                    keep = {k: v for k, v in hook.items() if k in ("onFailure", "timeout")}
                    inner[i] = {**_entry(command, blocks), **keep}
                    if blocks:
                        inner[i]["onFailure"] = "block"
        if not found:
            entry: dict[str, Any] = {"hooks": [_entry(command, blocks)]}
            if event in TOOL_EVENTS:
                entry = {"matcher": "*", **entry}
            groups.append(entry)
    return settings


def remove(settings: dict[str, Any], ours: Callable[[str], bool]) -> dict[str, Any]:
    """Take out our hook entries, in place; a group or event left empty by that goes too,
    and so does `hooks` if nothing else was in it. Nothing of the user's is touched."""
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return settings
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept_groups = []
        for group in groups:
            inner = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(inner, list):
                kept_groups.append(group)
                continue
            kept = [h for h in inner
                    if not (isinstance(h, dict) and (
                        (isinstance(h.get("command"), str) and ours(h["command"]))
                        or (h.get("type") == "http" and "/hook/claude" in str(h.get("url")))))]
            if kept:
                kept_groups.append({**group, "hooks": kept})
            elif not inner:
                kept_groups.append(group)
        if kept_groups:
            hooks[event] = kept_groups
        else:
            del hooks[event]
    if not hooks:
        del settings["hooks"]
    return settings


CHECK_COMMAND = "rm -rf ~"


def sample(project: Path) -> dict[str, Any]:
    """A PreToolUse Bash event as Claude Code sends it, for a call the default pack denies.

    A session id of its own, so no verdict owed to a real session is delivered to it (and so
    no Redis is touched with --watchdog: a deny is never escalated).
    """
    import uuid

    session = f"watchdog-init-check-{uuid.uuid4()}"
    return {
        "session_id": session,
        "transcript_path": str(project / ".claude" / f"{session}.jsonl"),  # never created
        "cwd": str(project),
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": CHECK_COMMAND,
                       "description": "watchdog init: check that the hook answers"},
        "tool_use_id": "toolu_watchdog_init_check",
    }


def denied(stdout: str, exit_code: int) -> bool:
    """A PreToolUse deny (or a halt) in Claude Code's answer."""
    try:
        answer = json.loads(stdout)
    except ValueError:
        return False
    if not isinstance(answer, dict):
        return False
    specific = answer.get("hookSpecificOutput")
    decision = specific.get("permissionDecision") if isinstance(specific, dict) else None
    return exit_code == 0 and (decision == "deny" or answer.get("continue") is False)


SETUP = Setup(config_path=config_path, add=add, remove=remove, sample=sample, denied=denied)
