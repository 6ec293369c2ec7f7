"""Event: one hook event, as its harness sent it and in the normalized form everything reads.

A harness's `parse` keeps the whole payload in `raw`, unknown fields included: harnesses add
fields often, and Cupcake policies in `policies/<harness>/` read their harness's own payload as
`input`, so nothing may be dropped. Beside it sits `action`, the same event in one vocabulary
for every harness: what kind of event, what class of tool, the command, the paths, the MCP
server. The shipped pack, session taints, cache keys, the judge request and the evals read
`action`, never a harness's field names, so one policy pack serves every harness.

The normalized event and tool names are Claude Code's (`PreToolUse`, `Bash`): they are the names
Cupcake's routing was written in, and policies in `policies/common/` route on them.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

Kind = Literal[
    "pre_tool", "post_tool", "permission", "prompt", "session_start", "session_end", "stop",
    "compact", "other",
]
ToolClass = Literal[
    "shell", "write", "edit", "read", "web", "search", "mcp", "subagent", "notebook", "other",
]

#: The normalized event name (Claude Code's) of each kind; `other` keeps the native name.
KIND_EVENTS: dict[str, str] = {
    "pre_tool": "PreToolUse", "post_tool": "PostToolUse", "permission": "PermissionRequest",
    "prompt": "UserPromptSubmit", "session_start": "SessionStart", "session_end": "SessionEnd",
    "stop": "Stop", "compact": "PreCompact",
}
#: The normalized tool name of a class when a harness has no closer Claude Code name.
CLASS_TOOLS: dict[str, str] = {
    "shell": "Bash", "write": "Write", "edit": "Edit", "read": "Read", "web": "WebFetch",
    "search": "Grep", "subagent": "Task", "notebook": "NotebookEdit",
}
#: Claude Code's tools by class: the vocabulary every harness's tools are mapped onto.
TOOL_CLASSES: dict[str, ToolClass] = {
    "Bash": "shell", "PowerShell": "shell", "BashOutput": "shell", "KillShell": "shell",
    "Write": "write", "Edit": "edit", "MultiEdit": "edit", "Read": "read",
    "WebFetch": "web", "WebSearch": "web", "Grep": "search", "Glob": "search", "LS": "search",
    "Task": "subagent", "Agent": "subagent", "NotebookEdit": "notebook",
}
#: Payload keys that name a file a tool touches, in every harness seen so far.
PATH_KEYS = ("file_path", "path", "notebook_path", "filePath", "target_file", "absolute_path")


class Action(NamedTuple):
    """The normalized view of an event (`input.watchdog.action` for policies)."""

    kind: Kind
    event: str  # normalized event name (Claude Code's), routing key of policies/common/
    tool: str | None = None  # normalized tool name (Claude Code's where one fits)
    tool_class: ToolClass | None = None
    command: str | None = None  # a shell tool's command line
    paths: tuple[str, ...] = ()  # files the tool names, as given (relative or absolute)
    content: str | None = None  # text a write or edit puts into a file
    old_content: str | None = None  # text an edit replaces
    url: str | None = None
    prompt: str | None = None  # a user prompt's text
    mcp_server: str | None = None
    mcp_tool: str | None = None
    tool_input: dict[str, Any] | None = None  # the tool's arguments, Claude Code's key names

    def as_input(self) -> dict[str, Any]:
        """The JSON object policies read; absent fields are left out, not null."""
        out: dict[str, Any] = {"kind": self.kind, "event": self.event}
        for key in ("tool", "tool_class", "command", "content", "old_content", "url", "prompt",
                    "mcp_server", "mcp_tool"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["paths"] = list(self.paths)
        if self.tool_input is not None:
            out["tool_input"] = self.tool_input
        return out


class Event(NamedTuple):
    harness: str
    name: str  # the native event name as sent; unknown future events pass through unchanged
    session_id: str
    cwd: str
    raw: dict[str, Any]  # the payload as received
    tool_name: str | None = None  # the native tool name
    tool_input: dict[str, Any] | None = None  # the native tool arguments
    action: Action | None = None  # None only for events built by hand in tests

    @property
    def label(self) -> str:
        """`PreToolUse:Bash` or `Stop`, for logs and traces."""
        return f"{self.name}:{self.tool_name}" if self.tool_name else self.name

    @property
    def norm(self) -> Action:
        """The normalized action; events built without one get the Claude Code reading."""
        if self.action is not None:
            return self.action
        return claude_action(self.name, self.tool_name, self.tool_input, self.raw)


def claude_kind(name: str) -> Kind:
    for kind, event in KIND_EVENTS.items():
        if event == name:
            return kind  # type: ignore[return-value]
    if name in ("SubagentStop",):
        return "stop"
    if name in ("PostToolUseFailure", "PostToolBatch"):
        return "post_tool"
    return "other"


def mcp_parts(tool: str) -> tuple[str | None, str | None]:
    """`mcp__server__tool` (Claude Code, Factory) to its server and tool."""
    if tool.startswith("mcp__"):
        server, _, name = tool[5:].partition("__")
        return (server or None), (name or None)
    return None, None


def claude_action(name: str, tool: str | None, tool_input: dict[str, Any] | None,
                  raw: dict[str, Any], kind: Kind | None = None) -> Action:
    """The action of a payload that already uses Claude Code's vocabulary (Claude Code, Factory
    after its tool names are mapped, and OpenCode after Cupcake's mapping)."""
    kind = kind or claude_kind(name)
    event = KIND_EVENTS.get(kind, name) if kind != "other" else name
    if name in ("SubagentStop", "PostToolUseFailure", "PostToolBatch"):
        event = name
    tin = tool_input or {}
    server, mcp_tool = mcp_parts(tool) if tool else (None, None)
    tool_class: ToolClass | None = None
    if tool:
        tool_class = "mcp" if server else TOOL_CLASSES.get(tool, "other")
    command = tin.get("command") if tool_class == "shell" else None
    paths = tuple(v for k in PATH_KEYS if isinstance(v := tin.get(k), str) and v)
    content = tin.get("content") if isinstance(tin.get("content"), str) else None
    if isinstance(tin.get("new_string"), str):
        content = tin["new_string"]
    edits = tin.get("edits")
    if content is None and isinstance(edits, list):
        news = [e.get("new_string") for e in edits if isinstance(e, dict)]
        content = "\n".join(n for n in news if isinstance(n, str)) or None
    old = tin.get("old_string") if isinstance(tin.get("old_string"), str) else None
    prompt = raw.get("prompt") if kind == "prompt" and isinstance(raw.get("prompt"), str) \
        else None
    url = tin.get("url") if isinstance(tin.get("url"), str) else None
    return Action(
        kind=kind, event=event, tool=tool, tool_class=tool_class,
        command=command if isinstance(command, str) else None, paths=paths, content=content,
        old_content=old, url=url, prompt=prompt, mcp_server=server, mcp_tool=mcp_tool,
        tool_input=tool_input,
    )
