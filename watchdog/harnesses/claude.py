"""Claude Code: its hook payload in, its exact hook response out.

`parse` accepts every event Claude Code sends, including ones added after this was written:
only `hook_event_name` is required; unknown fields stay in `Event.raw` and reach the policies.

`render` follows Cupcake's Claude output where Cupcake is right and does better where it drops
information, as measured against the real CLI (2.1.197, see docs/harnesses.md, "Differences from
Cupcake"):
* context (`add_context`, `agent_context`) is kept next to deny/ask on events that accept
  `additionalContext`, and on PreToolUse allow (Cupcake drops it there);
* halt is told apart from deny: `continue: false` + `stopReason`, and on PreToolUse also a deny,
  because `continue: false` alone lets the pending tool run; on PermissionRequest
  `interrupt: true`; on Stop only `continue: false` (a Stop "block" would make Claude go on);
* modify merges `updatedInput` over the original `tool_input` (Claude replaces the whole input,
  so a partial update would drop fields) and leaves the permission flow alone instead of
  answering "allow", which would skip Claude's own permission prompt (Cupcake issue #96);
* SessionStart ask answers as SessionStart (Cupcake names the wrong event, which Claude
  rejects); PreCompact deny blocks the compaction with `decision: block`.
Everything goes out as one JSON object with exit 0: exit 2 would show the hook's command line
to the model.
"""

from __future__ import annotations

import json
import os
from typing import Any

from watchdog.decisions import ALLOW, ASK, HALT, MODIFY, Decision, deep_merge
from watchdog.events import Event, claude_action
from watchdog.harnesses.base import Capabilities, Facts, Harness, Reply, Setup, event_name

NAME = "claude"

#: Events whose hookSpecificOutput takes `additionalContext` (Stop's would continue the turn).
CONTEXT_EVENTS = frozenset(
    {
        "PreToolUse", "PostToolUse", "PostToolUseFailure", "PostToolBatch", "UserPromptSubmit",
        "UserPromptExpansion", "SessionStart", "Setup", "SubagentStart", "Notification",
        "PostModelSwitch",
    }
)
#: Events that take a top-level `decision: "block"` with a `reason`.
BLOCK_EVENTS = frozenset(
    {
        "UserPromptSubmit", "UserPromptExpansion", "PostToolUse", "PostToolUseFailure",
        "PostToolBatch", "Stop", "SubagentStop", "ConfigChange", "PreCompact", "TaskCreated",
    }
)
#: Events where failing closed means stopping an action (elsewhere it would stop the session).
GATING_EVENTS = frozenset(
    {"PreToolUse", "PermissionRequest", "UserPromptSubmit", "UserPromptExpansion"}
)


def parse(payload: Any) -> Event:
    """A decoded stdin payload to an Event; EventError says what was wrong with it."""
    name = event_name(payload, "Claude Code", "Check that this hook is registered as a Claude "
                      "Code command hook.", "Claude Code's hooks")
    session = payload.get("session_id")
    cwd = payload.get("cwd")
    tool = payload.get("tool_name")
    tool_input = payload.get("tool_input")
    return Event(
        harness=NAME,
        name=name,
        session_id=session if isinstance(session, str) else "",
        cwd=cwd if isinstance(cwd, str) and cwd else os.getcwd(),
        raw=payload,
        tool_name=tool if isinstance(tool, str) else None,
        tool_input=tool_input if isinstance(tool_input, dict) else None,
        action=claude_action(name, tool if isinstance(tool, str) else None,
                             tool_input if isinstance(tool_input, dict) else None, payload),
    )


def dumps(obj: dict[str, Any]) -> str:
    """Cupcake's byte format: sorted keys, compact, UTF-8 unescaped, one line."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def _context(decision: Decision, extra: str | None = None) -> str | None:
    parts = ([extra] if extra else []) + list(decision.agent_messages) + list(decision.context)
    return "\n".join(parts) if parts else None


def _hso(event: str, **fields: Any) -> dict[str, Any]:
    body = {"hookEventName": event}
    body.update({k: v for k, v in fields.items() if v is not None})
    return {"hookSpecificOutput": body}


def _with_context(out: dict[str, Any], event: str, context: str | None) -> dict[str, Any]:
    if context and event in CONTEXT_EVENTS:
        out.setdefault("hookSpecificOutput", {"hookEventName": event})
        out["hookSpecificOutput"]["additionalContext"] = context
    return out


def _halt(out: dict[str, Any], reason: str) -> dict[str, Any]:
    out["continue"] = False
    out["stopReason"] = reason
    return out


def _render_blocking(decision: Decision, event: Event) -> dict[str, Any]:
    name = event.name
    reason = decision.reason or "Blocked by policy"
    halt = decision.verb == HALT
    context = _context(decision)
    if name == "PreToolUse":
        out = _hso(name, permissionDecision="deny", permissionDecisionReason=reason)
        out = _with_context(out, name, context)
        return _halt(out, reason) if halt else out
    if name == "PermissionRequest":
        body: dict[str, Any] = {"behavior": "deny", "message": reason}
        if halt:
            body["interrupt"] = True
        out = _hso(name, decision=body)
        return _halt(out, reason) if halt else out
    if name in ("Stop", "SubagentStop") and halt:
        return _halt({}, reason)
    if name in BLOCK_EVENTS:
        out = _with_context({"decision": "block", "reason": reason}, name, context)
        return _halt(out, reason) if halt else out
    return _halt({}, reason)


def render(decision: Decision, event: Event) -> dict[str, Any]:
    """The response object for this event; `{}` means no opinion."""
    out = _render(decision, event)
    if decision.notices:
        out["systemMessage"] = "\n".join(decision.notices)
    return out


def _render(decision: Decision, event: Event) -> dict[str, Any]:
    name = event.name
    if decision.blocking:
        return _render_blocking(decision, event)
    if decision.verb == ASK:
        reason = decision.reason or "A policy asks for confirmation"
        if name == "PreToolUse":
            out = _hso(name, permissionDecision="ask", permissionDecisionReason=reason)
            return _with_context(out, name, _context(decision))
        if name == "PermissionRequest":
            return {}  # let Claude Code's own permission dialog ask
        return _with_context({}, name, _context(decision, reason))
    if decision.verb == MODIFY:
        updated = decision.updated_input or {}
        if name == "PreToolUse":
            merged = deep_merge(updated, event.tool_input or {})
            context = _context(decision, decision.reason)
            return _hso(name, updatedInput=merged, additionalContext=context)
        if name == "PermissionRequest":
            merged = deep_merge(updated, event.tool_input or {})
            return _hso(name, decision={"behavior": "allow", "updatedInput": merged})
        if name in ("UserPromptSubmit", "SessionStart"):
            return _with_context({}, name, _context(decision, decision.reason))
        return _with_context({}, name, _context(decision))
    assert decision.verb == ALLOW
    return _with_context({}, name, _context(decision))


def warning(message: str) -> dict[str, Any]:
    """Fail-open answer: no decision, and a message the user sees (never the model)."""
    return {"systemMessage": f"watchdog: {message}"}


def accepts_context(event_name: str) -> bool:
    """Can this event's answer carry additionalContext? Owed verdicts wait for one that can."""
    return event_name in CONTEXT_EVENTS


def gates(event_name: str | None) -> bool:
    return event_name in GATING_EVENTS


_FULL = Capabilities(block=True, ask=True, modify=True, context=True, user_message=True,
                     halt=True)
_CAPS: dict[str, Capabilities] = {
    "PreToolUse": _FULL,
    "PermissionRequest": _FULL._replace(context=False),
}

EVENTS: dict[str, str] = {
    "PreToolUse": "pre_tool", "PostToolUse": "post_tool", "PostToolUseFailure": "post_tool",
    "PostToolBatch": "post_tool", "PermissionRequest": "permission",
    "UserPromptSubmit": "prompt", "UserPromptExpansion": "prompt",
    "SessionStart": "session_start", "SessionEnd": "session_end", "Stop": "stop",
    "SubagentStop": "stop", "PreCompact": "compact", "Notification": "other",
    "SubagentStart": "other", "Setup": "other", "ConfigChange": "other", "TaskCreated": "other",
    "PostModelSwitch": "other",
}


class Claude:
    """Claude Code's command and HTTP hooks (`"type": "http"` posts the same JSON)."""

    name = NAME
    events = EVENTS
    facts = Facts(timeout=600, timeout_unit="s", async_hooks=True, allow_overrides=True,
                  config=".claude/settings.json (project), ~/.claude/settings.json (user)",
                  tested_versions="2.1.197 (real CLI in tests)", binary="claude")

    @property
    def setup(self) -> Setup:
        from watchdog.harnesses import claude_setup  # init and doctor only

        return claude_setup.SETUP

    def parse(self, payload: Any) -> Event:
        return parse(payload)

    def render(self, decision: Decision, event: Event) -> Reply:
        return Reply(dumps(render(decision, event)))

    def warning(self, message: str, event: Event | None) -> Reply:
        return Reply(dumps(warning(message)))

    def capabilities(self, event_name: str) -> Capabilities:
        if event_name in _CAPS:
            return _CAPS[event_name]
        return Capabilities(
            block=event_name in BLOCK_EVENTS, context=event_name in CONTEXT_EVENTS,
            user_message=True, halt=True, block_stop=event_name in ("Stop", "SubagentStop"),
            ask_fallback="context",
            modify_fallback="context" if event_name in ("UserPromptSubmit", "SessionStart")
            else "drop",
        )

    def gates(self, event: Event) -> bool:
        return gates(event.name)

    def twin_key(self, event: Event) -> str | None:
        return None


HARNESS: Harness = Claude()
