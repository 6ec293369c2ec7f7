"""Factory Droid (`droid`): Claude Code's hook dialect with Droid's tool names and one rule that
changes what "no opinion" must look like.

Input. Droid's binary sends snake_case common fields (`hook_event_name`, `session_id`, ...);
Cupcake's Factory adapter expects camelCase (`hookEventName`, `sessionId`, `transcriptPath`,
`permissionMode`). `parse` accepts both. `Event.raw` is the payload with every key kept, plus a
snake_case alias for each camelCase common field it lacks (never overwriting): Cupcake's docs
and policies read `input.hook_event_name`, and so do watchdog's judge cache and Cupcake-watchdog
gate. (Cupcake itself copies nothing, so there a camelCase payload hides `hook_event_name` from
policies; here it does not.) Policies in `policies/factory/` route on the native names
(`PreToolUse` / `Execute`); the normalized action maps Droid's tools onto Claude Code's
(`Execute` -> Bash, `Create` -> Write, `FetchUrl` -> WebFetch, `ApplyPatch` -> Edit with the
paths named in the patch), so `policies/common/` serves Droid unchanged.

Output is Claude Code's (`claude.render`, whose differences from Cupcake are documented there),
adjusted for what Droid reads (harness-protocols.md §3.3, §11.5):
* the FIRST hook with a `permissionDecision` wins, allow included, so an allow would silence
  another hook's deny and skip Droid's own permission prompt. We never say allow: no opinion is
  `{}` and a rewrite is `updatedInput` alone. Cupcake always answers PreToolUse with an explicit
  allow; this is the one deliberate difference from its Factory output;
* `ask` is only logged by Droid 0.225.x and, being a permissionDecision, would also win, so
  PreToolUse cannot ask: a policy's ask arrives here as a deny telling a person to approve;
* PreToolUse takes no `additionalContext` in the documented matrix, so none is sent there;
* a block on PreToolUse, UserPromptSubmit and PreCompact also exits 2 with the reason on stderr:
  some versions block only that way (§11.5), and PreCompact has no JSON block at all. Droid
  parses stdout JSON on any exit code and takes the first permissionDecision before looking at
  exit 2 (§3.3), so both channels say the same thing.
"""

from __future__ import annotations

import copy
import os
import re
from typing import TYPE_CHECKING, Any

from watchdog.decisions import Decision
from watchdog.errors import ConfigError, EventError
from watchdog.events import CLASS_TOOLS, Action, Event, claude_action
from watchdog.harnesses import claude
from watchdog.harnesses.base import Capabilities, Facts, Harness, Reply, Setup

if TYPE_CHECKING:  # annotations only: pathlib costs ~9 ms on the hook path
    from collections.abc import Callable
    from pathlib import Path


NAME = "factory"

#: Droid's common fields, camelCase (Cupcake's reading) -> snake_case (Droid's binary).
COMMON_ALIASES = {
    "hookEventName": "hook_event_name", "sessionId": "session_id",
    "transcriptPath": "transcript_path", "permissionMode": "permission_mode",
}
#: Droid tool -> Claude Code tool; tools not listed (Read, Edit, MultiEdit, LS, Grep, Glob,
#: Task, WebSearch, TodoWrite, mcp__*) already have Claude Code's name.
TOOLS = {"Execute": "Bash", "Create": "Write", "FetchUrl": "WebFetch",
         "ApplyPatch": CLASS_TOOLS["edit"]}
#: Argument names other agents use for Claude's edit keys (Droid's own are undocumented).
ARG_ALIASES = {"old_str": "old_string", "new_str": "new_string"}
#: Where an ApplyPatch's text may sit (undocumented for Droid; Codex and others use these).
PATCH_KEYS = ("patch", "input", "patchText", "patch_text", "content", "command")
#: File headers: apply_patch's `*** Update File: p` / `*** Move to: p`, a unified diff's
#: `--- a/p` + `+++ b/p` pair (a lone `--- ` line may be a removed `-- ` line).
_ENVELOPE = re.compile(r"^\*\*\* (?:(?:Add|Update|Delete) File|Move to): (.+?)\s*$", re.MULTILINE)
_UNIFIED = re.compile(r"^--- (?:a/)?(.+?)(?:\t.*)?\n\+\+\+ (?:b/)?(.+?)(?:\t.*)?$", re.MULTILINE)

EVENTS: dict[str, str] = {
    "PreToolUse": "pre_tool", "PostToolUse": "post_tool", "UserPromptSubmit": "prompt",
    "SessionStart": "session_start", "SessionEnd": "session_end", "Stop": "stop",
    "SubagentStop": "stop", "PreCompact": "compact", "Notification": "other",
}
#: Events whose `additionalContext` reaches the model (harness-protocols.md §10).
CONTEXT_EVENTS = frozenset({"PostToolUse", "UserPromptSubmit", "SessionStart"})
#: Blocks that also exit 2 (stderr = reason). Not Stop/SubagentStop, where exit 2 makes Droid
#: go on (undoing a halt's `continue: false`), nor PostToolUse, whose tool already ran and
#: whose `decision: block` already feeds the reason back: exit 2 would feed it twice.
EXIT2_EVENTS = frozenset({"PreToolUse", "UserPromptSubmit", "PreCompact"})
GATING_EVENTS = frozenset({"PreToolUse", "UserPromptSubmit"})

#: Every event but PreToolUse: no ask (it becomes context) and no rewrite (dropped).
_OTHER = Capabilities(user_message=True, halt=True, ask_fallback="context", modify_fallback="drop")
_CAPS: dict[str, Capabilities] = {
    "PreToolUse": Capabilities(block=True, modify=True, user_message=True, halt=True),
    "PostToolUse": _OTHER._replace(block=True, context=True),
    "UserPromptSubmit": _OTHER._replace(block=True, context=True, modify_fallback="context"),
    "SessionStart": _OTHER._replace(context=True, modify_fallback="context"),
    "Stop": _OTHER._replace(block=True, block_stop=True),
    "SubagentStop": _OTHER._replace(block=True, block_stop=True),
    "PreCompact": _OTHER._replace(block=True),
}
#: Notification, SessionEnd and events added later: nothing to control, a message at most.
_NO_CONTROL = _OTHER._replace(halt=False)


# -- parse --------------------------------------------------------------------------------------


def _field(payload: dict[str, Any], snake: str, camel: str) -> str | None:
    value = payload.get(snake, payload.get(camel))
    return value if isinstance(value, str) else None


def patch_paths(text: str) -> tuple[str, ...]:
    """The files an apply_patch envelope or a unified diff names, in order, once each."""
    found = [m.group(1) for m in _ENVELOPE.finditer(text)]
    found += [p for m in _UNIFIED.finditer(text) for p in m.groups()]
    return tuple(dict.fromkeys(p for p in found if p != "/dev/null"))


def _patch_text(tool_input: dict[str, Any]) -> str | None:
    return next((v for k in PATCH_KEYS if isinstance(v := tool_input.get(k), str)), None)


def _claude_input(tool_input: dict[str, Any]) -> dict[str, Any]:
    """The arguments under Claude Code's key names (aliases added, nothing removed)."""
    out = dict(tool_input)
    for theirs, ours in ARG_ALIASES.items():
        if theirs in out and ours not in out:
            out[ours] = out[theirs]
    edits = out.get("edits")
    if isinstance(edits, list):
        out["edits"] = [_claude_input(e) if isinstance(e, dict) else e for e in edits]
    return out


def _action(name: str, tool: str | None, tool_input: dict[str, Any] | None,
            raw: dict[str, Any]) -> Action:
    """Claude Code's reading of the event after Droid's tool and argument names are mapped."""
    mapped = TOOLS.get(tool, tool) if tool else None
    tin = _claude_input(tool_input) if tool_input is not None else None
    action = claude_action(name, mapped, tin, raw)
    text = _patch_text(tool_input or {}) if tool == "ApplyPatch" else None
    if text is None:
        return action
    envelope = "*** Begin Patch" in text  # no `+++`/`---` headers to skip
    lines = text.splitlines()
    added = [ln[1:] for ln in lines if ln[:1] == "+" and (envelope or ln[:4] != "+++ ")]
    removed = [ln[1:] for ln in lines if ln[:1] == "-" and (envelope or ln[:4] != "--- ")]
    return action._replace(paths=patch_paths(text) or action.paths,
                           content="\n".join(added) or None,
                           old_content="\n".join(removed) or None)


def parse(payload: Any) -> Event:
    """A decoded Droid payload (camelCase or snake_case common fields) to an Event."""
    if not isinstance(payload, dict):
        raise EventError(
            f"expected a JSON object from Factory Droid, got a JSON {type(payload).__name__}. "
            "Check that this hook is registered as a Droid command hook."
        )
    name = _field(payload, "hook_event_name", "hookEventName")
    if not name:
        raise EventError(
            "the event has no hook_event_name (or hookEventName). Run this hook from Droid's "
            "hooks, or use the right --harness for this agent."
        )
    raw = dict(payload)
    for camel, snake in COMMON_ALIASES.items():
        if camel in payload and snake not in payload:
            raw[snake] = payload[camel]
    tool = payload.get("tool_name")
    tool = tool if isinstance(tool, str) else None
    tool_input = payload.get("tool_input")
    tool_input = tool_input if isinstance(tool_input, dict) else None
    cwd = payload.get("cwd")
    return Event(
        harness=NAME, name=name, session_id=_field(payload, "session_id", "sessionId") or "",
        cwd=cwd if isinstance(cwd, str) and cwd else os.getcwd(), raw=raw, tool_name=tool,
        tool_input=tool_input, action=_action(name, tool, tool_input, raw),
    )


# -- render -------------------------------------------------------------------------------------


def render(decision: Decision, event: Event) -> Reply:
    """Claude Code's answer, minus what Droid would misread (see the module docstring)."""
    out = claude.render(decision, event)
    hso = out.get("hookSpecificOutput")
    if isinstance(hso, dict):
        if event.name not in CONTEXT_EVENTS:
            hso.pop("additionalContext", None)
        if hso.get("permissionDecision") == "allow":  # the first allow wins: never say it
            del hso["permissionDecision"]
        if set(hso) <= {"hookEventName"}:
            del out["hookSpecificOutput"]
    if decision.blocking and event.name in EXIT2_EVENTS:
        return Reply(claude.dumps(out), 2, decision.reason or "Blocked by policy")
    return Reply(claude.dumps(out))


# -- setup: the `hooks` key of .factory/settings.json ------------------------------------------

SETTINGS = ".factory/settings.json"
TIMEOUT_S = 30  # Droid's default is 60 s; a hung hook fails open, so keep ours well under it
#: Events watchdog answers, as Cupcake's `init --harness factory` registers them.
TOOL_EVENTS = ("PreToolUse", "PostToolUse")
OTHER_EVENTS = ("UserPromptSubmit", "SessionStart", "Stop", "SubagentStop")


def config_path(project: Path, home: Path, global_: bool) -> Path:
    """settings.json, not hooks.json: the one file every Droid version seen reads (§11.5)."""
    return (home if global_ else project) / SETTINGS


def _groups(hooks: Any, event: str) -> list[Any]:
    if not isinstance(hooks, dict):
        raise ConfigError(f"'hooks' in {SETTINGS} is not an object; fix it by hand.")
    groups = hooks.setdefault(event, [])
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("hooks", []), list) for g in groups):
        raise ConfigError(f"hooks.{event} in {SETTINGS} is not a list of objects with a "
                          "'hooks' list; fix it by hand.")
    return groups


def add(config: dict[str, Any], command: str, fail_closed: bool) -> dict[str, Any]:
    """`config` with `command` hooked on every event we answer, next to the user's hooks; a
    watchdog entry already there (an older path or flags) is updated, not doubled.

    `fail_closed` changes nothing: Droid has no option that blocks when a hook crashes or times
    out (both count as exit 1, a non-blocking error). watchdog's own `on_error = "closed"`
    still denies when watchdog itself fails."""
    from watchdog.harnesses.hook_commands import is_ours

    out = copy.deepcopy(config)
    for event in TOOL_EVENTS + OTHER_EVENTS:
        groups = _groups(out.setdefault("hooks", {}), event)
        ours = [h for g in groups for h in g.get("hooks", [])
                if isinstance(h, dict) and is_ours(h.get("command"), command)]
        for hook in ours:
            hook["command"] = command
            hook.setdefault("timeout", TIMEOUT_S)
        if not ours:
            entry: dict[str, Any] = {"hooks": [
                {"type": "command", "command": command, "timeout": TIMEOUT_S}]}
            groups.append({"matcher": "*", **entry} if event in TOOL_EVENTS else entry)
    return out


def remove(config: dict[str, Any], is_ours: Callable[[str], bool]) -> dict[str, Any]:
    """Claude Code's removal (the nesting is the same): our entries go, and a group, event or
    `hooks` left empty by that."""
    from watchdog.harnesses import claude_setup

    return claude_setup.remove(copy.deepcopy(config), is_ours)


def sample(project: Path) -> dict[str, Any]:
    """`init`'s check event: Claude Code's, as Droid sends it (Execute, an autonomy level)."""
    from watchdog.harnesses import claude_setup

    event = claude_setup.sample(project)
    event.pop("tool_use_id", None)  # Droid sends none
    return {**event, "permission_mode": "auto-low", "tool_name": "Execute",
            "transcript_path": str(project / ".factory" / f"{event['session_id']}.jsonl")}


def denied(stdout: str, exit_code: int) -> bool:
    """Our PreToolUse deny: the JSON deny, with exit 2 (or 0, should that change)."""
    from watchdog.harnesses import claude_setup

    return exit_code in (0, 2) and claude_setup.denied(stdout, 0)


class Factory:
    """Factory Droid's command hooks (the `droid` CLI)."""

    name = NAME
    events = EVENTS
    facts = Facts(timeout=60, timeout_unit="s", async_hooks=False, allow_overrides=True,
                  config="~/.factory/settings.json hooks (user), .factory/settings.json "
                         "(project)",
                  tested_versions="documented format; no real client run", binary="droid")
    setup = Setup(config_path=config_path, add=add, remove=remove, sample=sample,
                  denied=denied)

    def parse(self, payload: Any) -> Event:
        return parse(payload)

    def render(self, decision: Decision, event: Event) -> Reply:
        return render(decision, event)

    def warning(self, message: str, event: Event | None) -> Reply:
        return Reply(claude.dumps(claude.warning(message)))

    def capabilities(self, event_name: str) -> Capabilities:
        return _CAPS.get(event_name, _NO_CONTROL)

    def gates(self, event: Event) -> bool:
        return event.name in GATING_EVENTS

    def twin_key(self, event: Event) -> str | None:
        return None  # Droid fires one event per action


HARNESS: Harness = Factory()
