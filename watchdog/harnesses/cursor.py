"""Cursor: its hook payloads in, its exact hook responses out (`watchdog hook --harness cursor`).

Cursor gives shell and MCP calls events of their own (`beforeShellExecution`,
`beforeMCPExecution`, fields at the top level), and newer versions also fire `preToolUse` for
every tool, so those calls come twice (`twin_key`). `parse` keeps the payload whole (Cupcake
policies in `policies/cursor/` read Cursor's fields and route on its names) and adds the action
in Claude Code's words (`Shell` is `Bash`, an MCP tool `mcp__<server>__<tool>`).

`render` prints Cupcake 0.5.2's bytes for the ten events Cupcake knows (cupcake.md §2.3,
checklist 29-32) and the documented shapes for the others:
* a permission event always gets a flat `permission` (Cursor blocks the call otherwise,
  preToolUse included); a deny adds `user_message` (the person) and `agent_message` (the model:
  agent contexts joined by "; ", else the reason), except beforeReadFile (`permission` only);
* halt is a deny (a hook cannot end a Cursor session); on `stop` every blocking verb is a
  `followup_message`, as in Cupcake, so a halt there keeps the agent going like a block;
* a modify rewrites only on preToolUse (`updated_input`, merged over the original input);
* `ask` exists only on beforeShellExecution/beforeMCPExecution: Cursor does not enforce it on
  preToolUse, subagentStart or reads, so degrade makes a policy's ask a deny there whose reason
  says a person must approve (Cupcake prints the bare reason);
* headless runs (`@cursor/sdk`, `cursor-agent -p`) auto-allow an ask. The one marker found is
  `is_background_agent: true` (documented on sessionStart); a payload carrying it gets an ask
  rendered as a deny. `agent -p` sends no marker (a third-party probe of Cursor CLI 2026.08.11
  found sessionStart identical to an interactive one and no environment variable of its own),
  so there an ask stays an ask: a rule that must hold headless should deny.
Formats are the documented ones; no real Cursor client was run.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
import zlib
from typing import TYPE_CHECKING, Any

from watchdog.decisions import ASK, BLOCKING, DENY, MODIFY, Decision, deep_merge
from watchdog.errors import ConfigError
from watchdog.events import Action, Event, Kind, claude_action
from watchdog.harnesses.base import Capabilities, Facts, Harness, Reply, Setup, event_name
from watchdog.harnesses.claude import dumps
from watchdog.harnesses.claude_setup import CHECK_COMMAND
from watchdog.harnesses.hook_commands import is_ours

if TYPE_CHECKING:  # annotations only: pathlib costs ~9 ms on the hook path
    from collections.abc import Callable
    from pathlib import Path


NAME = "cursor"

#: Native event -> its kind and the Claude Code event name its action takes.
EVENT_MAP: dict[str, tuple[Kind, str]] = {
    **dict.fromkeys(("beforeShellExecution", "beforeMCPExecution", "beforeReadFile",
                     "beforeTabFileRead", "preToolUse"), ("pre_tool", "PreToolUse")),
    **dict.fromkeys(("afterShellExecution", "afterMCPExecution", "afterFileEdit",
                     "afterTabFileEdit", "postToolUse"), ("post_tool", "PostToolUse")),
    "postToolUseFailure": ("post_tool", "PostToolUseFailure"),
    "beforeSubmitPrompt": ("prompt", "UserPromptSubmit"),
    "stop": ("stop", "Stop"), "subagentStop": ("stop", "SubagentStop"),
    "sessionStart": ("session_start", "SessionStart"),
    "sessionEnd": ("session_end", "SessionEnd"), "preCompact": ("compact", "PreCompact"),
    **{n: ("other", n) for n in ("subagentStart", "afterAgentResponse", "afterAgentThought",
                                 "workspaceOpen")},
}
EVENTS: dict[str, str] = {name: kind for name, (kind, _) in EVENT_MAP.items()}

#: The answer's shape per event (from the documented output fields); other events take `{}`.
SHAPES: dict[str, str] = {
    "beforeShellExecution": "permission", "beforeMCPExecution": "permission",
    "preToolUse": "permission", "beforeReadFile": "read", "beforeTabFileRead": "tab",
    "subagentStart": "subagent", "beforeSubmitPrompt": "prompt", "stop": "stop",
    "subagentStop": "stop", "postToolUse": "context", "sessionStart": "context",
    "preCompact": "notice",
}
#: Shapes whose answer stops an action: failing closed denies there.
GATE_SHAPES = ("permission", "read", "tab", "subagent", "prompt")
#: Events that can ask a person (preToolUse's ask is accepted and not enforced).
ASK_EVENTS = ("beforeShellExecution", "beforeMCPExecution")
#: Cursor's preToolUse tool names -> Claude Code's (MCP tools arrive as `MCP:<tool>`).
TOOLS = {
    "Shell": "Bash", "Read": "Read", "Write": "Write", "Edit": "Edit", "Grep": "Grep",
    "Glob": "Glob", "LS": "LS", "Delete": "Delete", "Task": "Task", "WebFetch": "WebFetch",
    "WebSearch": "WebSearch",
}
#: Payload keys that may name the MCP server (only beforeMCPExecution documents one).
MCP_SERVER_KEYS = ("mcp_server_name", "mcp_server")
HEADLESS_NOTE = ("a person must approve this, and this Cursor run has nobody to ask "
                 "(is_background_agent): run it yourself if it is what you want, or change "
                 "the rule")


def _object(value: Any) -> dict[str, Any] | None:
    """A tool input as an object: beforeMCPExecution sends it as a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _claude_input(tool: str, tin: dict[str, Any]) -> dict[str, Any]:
    """Cursor's argument names renamed to Claude Code's where they differ (one path key)."""
    out = dict(tin)
    if "file_path" not in out:
        for key in ("path", "target_file", "filePath"):
            if isinstance(out.get(key), str):
                out["file_path"] = out.pop(key)
                break
    if tool == "Write" and "content" not in out and isinstance(out.get("contents"), str):
        out["content"] = out.pop("contents")
    return out


def _tool(name: str, raw: dict[str, Any], tin: dict[str, Any] | None
          ) -> tuple[str | None, dict[str, Any] | None, str | None]:
    """Claude Code's tool name and arguments for the event's tool, and its MCP tool name."""
    if name in ("beforeShellExecution", "afterShellExecution"):
        command = raw.get("command")
        return "Bash", ({"command": command} if isinstance(command, str) else {}), None
    path = raw.get("file_path")
    file = {"file_path": path} if isinstance(path, str) and path else {}
    if name in ("beforeReadFile", "beforeTabFileRead"):
        return "Read", file, None
    if name in ("afterFileEdit", "afterTabFileEdit"):
        edits = raw.get("edits")
        return "Edit", {**file, **({"edits": edits} if isinstance(edits, list) else {})}, None
    native = raw.get("tool_name")
    if not isinstance(native, str) or not native:
        return None, None, None
    if name in ("beforeMCPExecution", "afterMCPExecution") or native.startswith("MCP:"):
        mcp_tool = native.removeprefix("MCP:")
        server = next((s for k in MCP_SERVER_KEYS if isinstance(s := raw.get(k), str) and s), "")
        # An unnamed server stays empty: `mcp____tool` still splits into (None, tool).
        return f"mcp__{server}__{mcp_tool}", tin, mcp_tool
    if name in ("preToolUse", "postToolUse", "postToolUseFailure"):
        tool = TOOLS.get(native, native)
        return tool, _claude_input(tool, tin or {}), None
    return None, None, None


def _action(name: str, raw: dict[str, Any], tin: dict[str, Any] | None) -> Action:
    kind, claude_name = EVENT_MAP.get(name, ("other", name))
    tool, claude_input, mcp_tool = _tool(name, raw, tin)
    action = claude_action(claude_name, tool, claude_input, raw, kind=kind)
    if mcp_tool is not None:
        return action._replace(tool_class="mcp", mcp_tool=mcp_tool)
    if tool == "Delete":  # no Claude Code tool deletes a file; it is a write to the tree
        return action._replace(tool_class="write")
    return action


def parse(payload: Any) -> Event:
    """A decoded stdin payload to an Event; EventError says what was wrong with it."""
    name = event_name(payload, "Cursor", "Check that .cursor/hooks.json runs this hook as "
                      "'watchdog hook --harness cursor'.", "Cursor's hooks.json")
    session = payload.get("conversation_id") or payload.get("session_id")
    cwd = payload.get("cwd")
    if not isinstance(cwd, str) or not cwd:
        roots = payload.get("workspace_roots")
        firsts = [r for r in roots if isinstance(r, str) and r] if isinstance(roots, list) else []
        cwd = firsts[0] if firsts else os.getcwd()
    tool = payload.get("tool_name")
    tin = _object(payload.get("tool_input"))
    return Event(
        harness=NAME, name=name, session_id=session if isinstance(session, str) else "",
        cwd=cwd, raw=payload, tool_name=tool if isinstance(tool, str) else None,
        tool_input=tin, action=_action(name, payload, tin),
    )


def headless(event: Event) -> bool:
    """Does the payload say nobody can answer an ask? (Only `is_background_agent` does.)"""
    return event.raw.get("is_background_agent") is True


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def _gate(decision: Decision, event: Event, shape: str) -> dict[str, Any]:
    """A gate's answer is always a decision (Cursor blocks on an answer without one)."""
    notices = "\n".join(decision.notices)
    verb, reason = decision.verb, decision.reason
    if verb == ASK and (event.name not in ASK_EVENTS or headless(event)):
        # Only reached without the degrade step, or headless: never let an ask through.
        if event.name in ASK_EVENTS:
            reason = f"{reason or 'A policy asks for confirmation'} ({HEADLESS_NOTE})"
        verb = DENY
    if verb in BLOCKING:
        text = reason or "Blocked by policy"
        if shape == "prompt":
            return {"continue": False, "user_message": _join(text, notices)}
        if shape in ("read", "tab"):
            return {"permission": "deny", **({"user_message": notices} if notices else {})}
        if shape == "subagent":
            return {"permission": "deny", "user_message": _join(text, notices)}
        agent = "; ".join(decision.agent_messages) or text
        return {"agent_message": agent, "permission": "deny", "user_message": _join(text, notices)}
    if verb == ASK:
        text = reason or "A policy asks for confirmation"
        agent = "; ".join(decision.agent_messages) or text
        return {"agent_message": agent, "permission": "ask", "question": text,
                "user_message": _join(text, notices)}
    out: dict[str, Any] = {"continue": True} if shape == "prompt" else {"permission": "allow"}
    if verb == MODIFY and event.name == "preToolUse" and decision.updated_input is not None:
        out["updated_input"] = deep_merge(decision.updated_input, event.tool_input or {})
    if notices:
        out["user_message"] = notices
    return out


def render(decision: Decision, event: Event) -> dict[str, Any]:
    """The response object for this event; `{}` where Cursor reads no answer."""
    shape = SHAPES.get(event.name)
    if shape in GATE_SHAPES:
        out = _gate(decision, event, shape)
        if shape == "tab":  # Tab reads take no message
            out.pop("user_message", None)
        return out
    if shape == "stop":
        return {"followup_message": decision.reason or "Blocked by policy"} \
            if decision.blocking else {}
    if shape == "context":
        text = _join(*decision.agent_messages, *decision.context)
        return {"additional_context": text} if text else {}
    if shape == "notice" and decision.notices:
        return {"user_message": "\n".join(decision.notices)}
    return {}


def warning(message: str, event: Event | None) -> dict[str, Any]:
    """Fail-open: an allow carrying the message where the shape has `user_message` (Cursor
    documents it shown on deny; on allow it is unverified). stop and the observe-only events
    get `{}`: their only fields (`followup_message`, `additional_context`) would go to the
    model and make it act. An event that could not be read gets one object that reads as
    "go on" in every shape (Cursor ignores fields an event does not take)."""
    text = f"watchdog: {message}"
    if event is None:
        return {"continue": True, "permission": "allow", "user_message": text}
    shape = SHAPES.get(event.name)
    if shape == "prompt":
        return {"continue": True, "user_message": text}
    if shape == "tab":
        return {"permission": "allow"}
    if shape in GATE_SHAPES:
        return {"permission": "allow", "user_message": text}
    return {"user_message": text} if shape == "notice" else {}


#: Where nothing can be stopped, an ask is context (none of these can deny) and a rewrite dropped.
_QUIET = Capabilities(ask_fallback="context", modify_fallback="drop")
_GATE = Capabilities(block=True, user_message=True, modify_fallback="drop")
_CAPS: dict[str, Capabilities] = {
    "permission": _GATE._replace(ask=True), "read": _GATE, "subagent": _GATE, "prompt": _GATE,
    "tab": _GATE._replace(user_message=False),
    "stop": _QUIET._replace(block_stop=True), "context": _QUIET._replace(context=True),
    "notice": _QUIET._replace(user_message=True),
}
#: preToolUse: deny and `updated_input`, no enforced ask, `agent_message` only on a deny.
_PRE_TOOL = Capabilities(block=True, modify=True, user_message=True)


def capabilities(event_name: str) -> Capabilities:
    if event_name == "preToolUse":
        return _PRE_TOOL
    return _CAPS.get(SHAPES.get(event_name, ""), _QUIET)


def twin_key(event: Event) -> str | None:
    """conversation + generation + tool + sha256 of the command (or MCP tool and input): the
    same for preToolUse and the beforeShellExecution/beforeMCPExecution of one call. The MCP
    server is left out, since only beforeMCPExecution names it."""
    if event.name not in ("preToolUse", *ASK_EVENTS):
        return None
    generation = event.raw.get("generation_id")
    if not isinstance(generation, str) or not generation:
        return None
    action = event.norm
    if action.tool_class == "shell" and action.command is not None:
        tool, what = "Bash", action.command
    elif action.tool_class == "mcp" and action.mcp_tool:
        tool = f"mcp:{action.mcp_tool}"
        what = json.dumps(action.tool_input, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
    else:
        return None
    # Two CRC-32s (zlib, already loaded; hashlib costs ms on the hook path): 64 bits within one
    # generation is plenty, and the command itself never reaches the state dir.
    data = what.encode("utf-8", "replace")
    digest = f"{zlib.crc32(data):08x}{zlib.crc32(data[::-1]):08x}{len(data):x}"
    return f"cursor:v1:{event.session_id}:{generation}:{tool}:{digest}"


# --- setup: .cursor/hooks.json, {"version": 1, "hooks": {event: [{"command": ...}]}} ----------

#: The events watchdog registers: the gates, tool results, the edit record and the stop.
HOOK_EVENTS = ("beforeShellExecution", "beforeMCPExecution", "beforeReadFile", "preToolUse",
               "postToolUse", "beforeSubmitPrompt", "stop", "afterFileEdit")
WHERE = ".cursor/hooks.json"


def config_path(project: Path, home: Path, global_: bool) -> Path:
    return (home if global_ else project) / ".cursor" / "hooks.json"


def add(config: dict[str, Any], command: str, fail_closed: bool) -> dict[str, Any]:
    """A copy of `config` with our hook on every event; an entry of ours is updated in place.

    `fail_closed` sets Cursor's `failClosed: true` (a crash, timeout or bad output then
    blocks) on the gating events; without it a `failClosed` already there stays. No
    `timeout` is written: Cursor's default is undocumented and the unit is disputed (seconds
    in Cursor's docs, milliseconds per one integrator)."""
    out = copy.deepcopy(config)
    version = out.setdefault("version", 1)
    if isinstance(version, bool) or version != 1:
        raise ConfigError(f"'version' in {WHERE} is {version!r}; Cursor reads version 1 only. "
                          "Fix it by hand.")
    hooks = out.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigError(f"'hooks' in {WHERE} is not an object; fix it by hand.")
    for event in HOOK_EVENTS:
        entries = hooks.setdefault(event, [])
        if not isinstance(entries, list):
            raise ConfigError(f"hooks.{event} in {WHERE} is not a list; fix it by hand.")
        closes = fail_closed and SHAPES.get(event) in GATE_SHAPES
        ours = [e for e in entries if isinstance(e, dict) and is_ours(e.get("command"), command)]
        if not ours:
            ours = [{}]
            entries.append(ours[0])
        for entry in ours:
            entry["command"] = command
            if closes:
                entry["failClosed"] = True
    return out


def remove(config: dict[str, Any], ours: Callable[[str], bool]) -> dict[str, Any]:
    """A copy of `config` without the entries whose command `ours`; an event list we emptied
    goes, and `hooks` if we emptied it. A file left as `{"version": 1}` configures nothing
    and becomes `{}`. Nothing of the user's is touched."""
    out = copy.deepcopy(config)
    hooks = out.get("hooks")
    if not isinstance(hooks, dict):
        return out
    removed = False
    for event in list(hooks):
        entries = hooks[event]
        if not isinstance(entries, list):
            continue
        kept = [e for e in entries if not (isinstance(e, dict)
                                           and isinstance(e.get("command"), str)
                                           and ours(e["command"]))]
        removed = removed or len(kept) < len(entries)
        if kept or not entries:
            hooks[event] = kept
        else:
            del hooks[event]
    if removed and not hooks:
        del out["hooks"]
        if out == {"version": 1}:
            return {}
    return out


def sample(project: Path) -> dict[str, Any]:
    """`init`'s check: a beforeShellExecution of `rm -rf ~` (the default pack denies it), in
    a conversation of its own so no twin or owed verdict of a real one answers it."""
    ids = f"watchdog-init-check-{uuid.uuid4()}"
    return {"conversation_id": ids, "generation_id": ids, "hook_event_name":
            "beforeShellExecution", "workspace_roots": [str(project)],
            "command": CHECK_COMMAND, "cwd": str(project), "sandbox": False}


def denied(stdout: str, exit_code: int) -> bool:
    try:
        answer = json.loads(stdout)
    except ValueError:
        return False
    return exit_code == 0 and isinstance(answer, dict) and answer.get("permission") == "deny"


SETUP = Setup(config_path=config_path, add=add, remove=remove, sample=sample, denied=denied)


class Cursor:
    """Cursor's command hooks (IDE agent, `cursor-agent`, `@cursor/sdk`)."""

    name = NAME
    events = EVENTS
    #: timeout 0: Cursor documents a "platform default" without its value, and one integrator
    #: reads hooks.json's `timeout` as milliseconds where Cursor's docs say seconds.
    facts = Facts(timeout=0, timeout_unit="s (default undocumented, unit disputed)",
                  async_hooks=False, allow_overrides=False,
                  config=".cursor/hooks.json (project), ~/.cursor/hooks.json (user)",
                  tested_versions="documented format (cursor.com/docs/hooks, Cupcake 0.5.2's "
                                  "adapter); no real client run", binary="cursor-agent")
    setup = SETUP

    def parse(self, payload: Any) -> Event:
        return parse(payload)

    def render(self, decision: Decision, event: Event) -> Reply:
        return Reply(dumps(render(decision, event)))

    def warning(self, message: str, event: Event | None) -> Reply:
        return Reply(dumps(warning(message, event)))

    def capabilities(self, event_name: str) -> Capabilities:
        return capabilities(event_name)

    def gates(self, event: Event) -> bool:
        return SHAPES.get(event.name) in GATE_SHAPES

    def twin_key(self, event: Event) -> str | None:
        return twin_key(event)


HARNESS: Harness = Cursor()
