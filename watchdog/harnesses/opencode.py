"""OpenCode: our plugin's events in (Cupcake's OpenCode shape), Cupcake's answers out.

OpenCode has no command hooks, only in-process JS plugins. Ours
(`watchdog/plugins/opencode/watchdog.js`, written to `.opencode/plugins/` by `init`) sends each
tool call to `watchdog hook --harness opencode` in the shape Cupcake's plugin sends, so the
policies Cupcake users keep in `policies/opencode/` see what Cupcake shows them:

    {"hook_event_name": "PreToolUse" | "PostToolUse", "session_id", "cwd", "tool": "bash",
     "args": {...}, "call_id"?, "agent"?, "message_id"?, "result"?: {"success", "output"?,
     "exit_code"?}}

`parse` adds what Cupcake's preprocessing adds before a policy reads `input`: `tool_name`
(bash -> Bash, ..., others unchanged), `tool_input` (= args) and `tool_response` (= result).
The normalized action speaks Claude Code's names (`filePath` -> `file_path`, `list` -> LS,
`apply_patch` -> Edit with the files its patch names).

`render` prints Cupcake's answer byte for byte (`{"decision": "allow"|"deny"|"block"|"ask",
"reason"?, "context"?}`, halt and block as "block"), with two additions Cupcake's plugin ignores:
* modify: Cupcake answers allow + context, because its plugin cannot rewrite arguments. OpenCode
  can, in place (`Object.assign(output.args, ...)`; a reassigned `output.args` is lost), so we
  add `updated_args`, the rewrite merged over the original args, which our plugin applies;
* `message`: text for the person (notices, fail-open warnings), which the plugin logs.
OpenCode never triggers `permission.ask`, so a plugin cannot ask: the capability matrix turns a
policy's ask into a deny. A throw stops the tool but not the turn, so halt is a block.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from watchdog.decisions import ASK, BLOCK, HALT, MODIFY, Decision, deep_merge
from watchdog.events import Action, Event, claude_action
from watchdog.harnesses.base import Capabilities, Facts, Harness, Reply, Setup, event_name

if TYPE_CHECKING:  # annotations only: pathlib costs ~9 ms on the hook path
    from pathlib import Path


NAME = "opencode"

#: Cupcake's preprocessing: OpenCode's tool -> `tool_name` (what policies/opencode/ route on).
CUPCAKE_TOOLS: dict[str, str] = {
    "bash": "Bash", "edit": "Edit", "write": "Write", "read": "Read", "grep": "Grep",
    "glob": "Glob", "list": "List", "patch": "Patch", "todowrite": "TodoWrite",
    "todoread": "TodoRead", "webfetch": "WebFetch", "task": "Task",
}
#: OpenCode's tool -> the normalized (Claude Code) tool, where it differs from Cupcake's name.
CLAUDE_TOOLS: dict[str, str] = {
    **CUPCAKE_TOOLS, "list": "LS", "patch": "Edit", "apply_patch": "Edit",
    "multiedit": "MultiEdit", "websearch": "WebSearch", "skill": "Skill",
}
#: OpenCode's camelCase argument names -> Claude Code's.
CLAUDE_KEYS = {"filePath": "file_path", "oldString": "old_string", "newString": "new_string",
               "replaceAll": "replace_all"}
_OPENCODE_KEYS = {v: k for k, v in CLAUDE_KEYS.items()}
#: Files an apply_patch names (`*** Update File: a.py`) or a unified diff (`+++ b/a.py`).
_PATCH_FILES = re.compile(r"^\*\*\* (?:Add|Update|Delete) File: (.+?)\s*$|^\+\+\+ (?:b/)?(.+?)\s*$",
                          re.MULTILINE)

EVENTS: dict[str, str] = {"PreToolUse": "pre_tool", "PostToolUse": "post_tool"}
PLUGIN_FILE = "plugins/watchdog.js"  # relative to .opencode/ or ~/.config/opencode/
_COMMAND_LINE = re.compile(r"^const COMMAND = .*// watchdog:command$", re.MULTILINE)
_FAIL_LINE = re.compile(r"^const FAIL_CLOSED = .*// watchdog:fail-closed$", re.MULTILINE)


def _claude_input(args: dict[str, Any]) -> dict[str, Any]:
    out = {CLAUDE_KEYS.get(k, k): v for k, v in args.items()}
    if isinstance(out.get("edits"), list):  # multiedit
        out["edits"] = [{CLAUDE_KEYS.get(k, k): v for k, v in e.items()} if isinstance(e, dict)
                        else e for e in out["edits"]]
    return out


def _action(name: str, tool: str | None, args: dict[str, Any] | None,
            raw: dict[str, Any]) -> Action:
    norm = CLAUDE_TOOLS.get(tool, tool) if tool else None
    tin = _claude_input(args) if args is not None else None
    action = claude_action(name, norm, tin, raw)
    patch = (tin or {}).get("patchText")
    if tool in ("patch", "apply_patch") and isinstance(patch, str):
        files = tuple(a or b for a, b in _PATCH_FILES.findall(patch) if (a or b) != "/dev/null")
        action = action._replace(paths=action.paths + files, content=action.content or patch)
    return action


def parse(payload: Any) -> Event:
    """The plugin's event to an Event, with Cupcake's added keys in `raw`."""
    name = event_name(payload, "the OpenCode plugin", "Check that watchdog.js in "
                      ".opencode/plugins/ is watchdog's own plugin.",
                      "watchdog's OpenCode plugin (watchdog init --harness opencode)")
    raw = dict(payload)
    tool = payload.get("tool") if isinstance(payload.get("tool"), str) else None
    if tool is not None:
        raw["tool_name"] = CUPCAKE_TOOLS.get(tool, tool)
    if "args" in payload:
        raw["tool_input"] = payload["args"]
    if "result" in payload:
        raw["tool_response"] = payload["result"]
    args = payload.get("args") if isinstance(payload.get("args"), dict) else None
    session, cwd = payload.get("session_id"), payload.get("cwd")
    return Event(
        harness=NAME,
        name=name,
        session_id=session if isinstance(session, str) else "",
        cwd=cwd if isinstance(cwd, str) and cwd else os.getcwd(),
        raw=raw,
        tool_name=raw.get("tool_name"),
        tool_input=args,
        action=_action(name, tool, args, raw),
    )


def dumps(obj: dict[str, Any]) -> str:
    """Cupcake's byte format: sorted keys, compact, UTF-8 unescaped, one line."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def _native_keys(args: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    """A rewrite written in Claude Code's names (`file_path`, by a policies/common/ rule) goes
    back to OpenCode's (`filePath`), which is what its tools read."""
    return {(_OPENCODE_KEYS[k] if k in _OPENCODE_KEYS and k not in original else k): v
            for k, v in args.items()}


def render(decision: Decision, event: Event) -> dict[str, Any]:
    """The answer object; Cupcake's exactly, plus `updated_args` for modify and `message`."""
    verb = decision.verb
    out: dict[str, Any]
    if decision.blocking or verb == ASK:
        default = "A policy asks for confirmation" if verb == ASK else "Blocked by policy"
        out = {"decision": "block" if verb in (HALT, BLOCK) else verb,
               "reason": decision.reason or default}
    else:
        out = {"decision": "allow"}
        first = [decision.reason] if verb == MODIFY and decision.reason else []
        context = first + list(decision.agent_messages) + list(decision.context)
        if context:
            out["context"] = context
        if verb == MODIFY:
            original = event.tool_input or {}
            updated = _native_keys(decision.updated_input or {}, original)
            out["updated_args"] = deep_merge(updated, original)
    if decision.notices:
        out["message"] = "\n".join(decision.notices)
    return out


# -- setup: init writes the plugin; OpenCode loads .opencode/plugins/*.js without a config entry


def config_path(project: Path, home: Path, global_: bool) -> Path:
    """OpenCode's config beside the plugins folder (`.opencode/` or `~/.config/opencode/`)."""
    return (home / ".config" / "opencode" if global_ else project / ".opencode") / "opencode.json"


def _unchanged(config: dict[str, Any], *_: Any) -> dict[str, Any]:
    return config


def plugin_text(command: str, fail_closed: bool = False) -> str:
    """The shipped plugin with the hook command (and the fail mode) written into it."""
    from importlib import resources

    text = resources.files("watchdog").joinpath("plugins", "opencode", "watchdog.js").read_text(
        encoding="utf-8")
    text, n = _COMMAND_LINE.subn(
        lambda _: f"const COMMAND = {json.dumps(command)} // watchdog:command", text)
    text, m = _FAIL_LINE.subn(
        lambda _: f"const FAIL_CLOSED = {'true' if fail_closed else 'false'} "
                  "// watchdog:fail-closed", text)
    assert n == 1 and m == 1, "watchdog.js lost its COMMAND or FAIL_CLOSED line"
    return text


def files(command: str, fail_closed: bool = False) -> dict[str, str]:
    return {PLUGIN_FILE: plugin_text(command, fail_closed)}


def sample(project: Path) -> dict[str, Any]:
    return {"hook_event_name": "PreToolUse", "session_id": "watchdog-init-check",
            "cwd": str(project), "tool": "bash", "args": {"command": "rm -rf ~"}}


def denied(stdout: str, exit_code: int) -> bool:
    """The plugin throws on deny, block and ask, and on exit 2."""
    if exit_code == 2:
        return True
    try:
        answer = json.loads(stdout)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("decision") in ("deny", "block", "ask")


_PRE = Capabilities(block=True, modify=True, context=True, user_message=True)
#: The tool has run: a block is the reason appended to the output the model reads (as Claude
#: Code's PostToolUse block is feedback); an ask or a modify is said to the model the same way.
_POST = Capabilities(block=True, context=True, user_message=True, ask_fallback="context")


class OpenCode:
    """OpenCode through watchdog's plugin (`tool.execute.before` and `.after`)."""

    name = NAME
    events = EVENTS
    facts = Facts(timeout=30000, timeout_unit="ms", async_hooks=False, allow_overrides=False,
                  config=".opencode/plugins/watchdog.js (project), "
                         "~/.config/opencode/plugins/watchdog.js (user); "
                         "WATCHDOG_OPENCODE_TIMEOUT_MS",
                  tested_versions="1.18.33 (real CLI in tests)", binary="opencode")
    setup = Setup(config_path=config_path, add=_unchanged, remove=_unchanged, files=files,
                  sample=sample, denied=denied)

    def parse(self, payload: Any) -> Event:
        return parse(payload)

    def render(self, decision: Decision, event: Event) -> Reply:
        return Reply(dumps(render(decision, event)))

    def warning(self, message: str, event: Event | None) -> Reply:
        return Reply(dumps({"decision": "allow", "message": f"watchdog: {message}"}))

    def capabilities(self, event_name: str) -> Capabilities:
        if event_name == "PreToolUse":
            return _PRE
        if event_name == "PostToolUse":
            return _POST
        return Capabilities(user_message=True)

    def gates(self, event: Event) -> bool:
        return event.name == "PreToolUse"

    def twin_key(self, event: Event) -> str | None:
        return None


HARNESS: Harness = OpenCode()
