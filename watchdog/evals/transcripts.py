"""Claude Code session transcripts back into the hook events the hook saw.

A transcript (`~/.claude/projects/<project>/<session>.jsonl`) records what happened, not the hook
calls, so the stream is rebuilt from its lines (format: harness-protocols.md §1.6), checked
against the hook payloads the real CLI sent for the same session:

| event | from |
|---|---|
| SessionStart | the first chained line (`source: resume` when it has a parent) |
| UserPromptSubmit | a `user` line with the user's text (not meta, a tool result, a command) |
| PreToolUse | each `tool_use` block of an `assistant` line |
| SubagentStart, its tool events, SubagentStop | an `Agent`/`Task` call; the subagent's file |
| PostToolUse(Failure) | the matching `tool_result`; `toolUseResult` is `tool_response` |
| CwdChanged | a line whose `cwd` differs from the one before |
| Stop / StopFailure | the end of an assistant message without tool calls (or an API error) |
| PreCompact, SessionStart(compact) | a `system` `compact_boundary` line |

A subagent's file is `<session>/subagents/agent-<id>.jsonl` beside the session's (2.1), or
`agent-<id>.jsonl` (older versions); `is_error` on a result makes it a PostToolUseFailure.

Choices, each to replay what the hook saw:
* Lines are replayed in file order, not along the `parentUuid` chain: a rewound branch's tool
  calls did happen, and the hook saw them.
* Tools of one assistant message are replayed one after another (pre, then post), the order
  Claude Code 2.1 fires their hooks in.
* A tool call a hook or the user denied gets no post event: Claude Code fires none. Denials
  are recognised by Claude Code's own texts (`Permission to use … has been denied`, `… hook
  error:`), a blocking hook record for the call's id, or, on a shell call, an error that is not
  how a command that ran fails (`Exit code N`): a hook's reason is quoted verbatim. On other
  tools a hook's verbatim reason cannot be told from a failure and replays as
  PostToolUseFailure. A call rejected by input validation (`<tool_use_error>`) fires no hook
  and is not replayed.
* Relative `file_path`/`notebook_path` are joined to the line's cwd, as Claude Code does before
  calling hooks.
* A result line without `toolUseResult` (subagent transcripts omit it) gives the result's text
  as `tool_response`, wrapped in Bash's `{stdout, stderr, interrupted, isImage}` for Bash.
* `prompts` are the user's own prompts so far (never the agent's text, nor a subagent's task,
  which the agent wrote): what the judge is told the task is.

A corrupt or truncated line is reported by file:line and skipped; the rest still replays.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from watchdog.evals.cases import Case, Problem, Stream, location
from watchdog.evals.datasets import json_object, read_lines, transcript_labels
from watchdog.transcript import blocks, message, user_prompt
from watchdog.transcript import text as text_of

CHAINED = frozenset({"user", "assistant", "system", "attachment", "progress"})
AGENT_TOOLS = frozenset({"Agent", "Task"})
SHELL_TOOLS = frozenset({"Bash", "PowerShell"})
#: How a shell command that ran and failed is reported ("Exit code 3", a timeout); any other
#: error text on a shell call is a hook's or the user's denial, quoted verbatim.
_SHELL_FAILURE = re.compile(r"\s*(Exit code \d+|Command timed out|Shell cwd was reset)")
_PATH_KEYS = ("file_path", "notebook_path")
_DENIED = re.compile(r"Permission to use .* has been denied|doesn't want to proceed with this "
                     r"tool use|^PreToolUse:\S+ hook error:", re.DOTALL)
MAX_SUBAGENT_DEPTH = 3
_MODE_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure", "UserPromptSubmit",
                          "Stop", "SubagentStop"})

Line = tuple[int, dict[str, Any]]


def _time(rec: dict[str, Any], default: float) -> float:
    stamp = rec.get("timestamp")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):  # OSError: a local time the OS lacks
            pass
    return default


def _kind(rec: dict[str, Any]) -> str | None:
    """A line's `type` (None when it is not a string: a damaged line is replayed as nothing)."""
    kind = rec.get("type")
    return kind if isinstance(kind, str) else None


def _object(rec: dict[str, Any], key: str) -> dict[str, Any]:
    value = rec.get(key)
    return value if isinstance(value, dict) else {}


def _message_id(rec: dict[str, Any], number: int) -> str:
    """Lines of one API response share message.id (one content block per line)."""
    mid = message(rec).get("id")
    return str(mid) if mid else f"line{number}"


def _response(tool: str, text: str) -> Any:
    """A tool_response for a result line without `toolUseResult` (subagent transcripts omit
    it): Bash's shape around the text, which is its stdout; the text itself otherwise."""
    if tool == "Bash":
        return {"stdout": text, "stderr": "", "interrupted": False, "isImage": False}
    return text


def read(path: str, problems: list[Problem]) -> list[Line]:
    """The transcript's JSON objects with their line numbers; bad lines become Problems."""
    return [(n, obj) for n, text in read_lines(path)
            if (obj := json_object(path, n, text, problems)) is not None]


@dataclass
class _Session:
    """What every replay of one session shares (its subagents' included)."""

    path: str
    session_id: str
    transcript_path: str
    out: list[tuple[dict[str, Any], str, float]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    prompt_id: str | None = None
    permission_mode: str | None = None
    last_cwd: str = ""
    now: float = 0.0  # the replay clock: never goes back (a batch's results may come first)


class _Replay:
    """Rebuilds one transcript's events; a subagent's transcript is a nested _Replay."""

    def __init__(self, path: str, lines: list[Line], problems: list[Problem],
                 parent: _Replay | None = None, agent: tuple[str, str] | None = None) -> None:
        self.path, self.lines, self.problems, self.agent = path, lines, problems, agent
        first = next((r for _, r in lines if _kind(r) in CHAINED), {})
        self.depth: int = parent.depth + 1 if parent else 0
        self.session: _Session = parent.session if parent else _Session(
            path, str(first.get("sessionId") or ""), os.path.abspath(path))
        self.cwd: str = str(first.get("cwd") or (parent.cwd if parent else ""))
        self.stopped = False  # a Stop was emitted in this turn: the next is stop_hook_active
        self.last_text = ""  # a subagent's final answer, for its SubagentStop
        self.stop_line: tuple[int, dict[str, Any]] | None = None
        self.results: dict[str, tuple[int, dict[str, Any], dict[str, Any]]] = {}
        self.denied: set[str] = set()
        self.message_end: dict[str, int] = {}
        self.message_tools: set[str] = set()
        for index, (number, rec) in enumerate(lines):
            self._index(index, number, rec)

    # -- indexes -------------------------------------------------------------------------------

    def _index(self, index: int, number: int, rec: dict[str, Any]) -> None:
        kind = _kind(rec)
        if kind == "user":
            for block in blocks(rec):
                tool_id = block.get("tool_use_id")
                if block.get("type") == "tool_result" and isinstance(tool_id, str):
                    self.results.setdefault(tool_id, (number, rec, block))
        elif kind == "assistant":
            mid = _message_id(rec, number)
            self.message_end[mid] = index
            if any(b.get("type") == "tool_use" for b in blocks(rec)):
                self.message_tools.add(mid)
        elif kind == "attachment":
            att = _object(rec, "attachment")
            stdout = str(att.get("stdout") or "")
            if att.get("hookEvent") == "PreToolUse" and isinstance(att.get("toolUseID"), str) and (
                    att.get("type") == "hook_blocking_error"
                    or re.search(r'"permissionDecision"\s*:\s*"deny"', stdout)):
                self.denied.add(att["toolUseID"])

    # -- emitting ------------------------------------------------------------------------------

    def emit(self, name: str, number: int, rec: dict[str, Any] | None, **fields: Any) -> None:
        """Append one payload, with the fields Claude Code puts on every event of its kind."""
        s = self.session
        if rec is not None:
            s.now = max(s.now, _time(rec, s.now))
            cwd = rec.get("cwd")
            if isinstance(cwd, str) and cwd:
                self.cwd = cwd
        payload: dict[str, Any] = {"session_id": s.session_id,
                                   "transcript_path": s.transcript_path, "cwd": self.cwd}
        if s.prompt_id and name != "SessionStart":
            payload["prompt_id"] = s.prompt_id
        if s.permission_mode and name in _MODE_EVENTS:
            payload["permission_mode"] = s.permission_mode
        if self.agent and name != "SubagentStop":
            payload["agent_id"], payload["agent_type"] = self.agent
        payload["hook_event_name"] = name
        payload.update(fields)
        s.out.append((payload, location(self.path, number), s.now))
        if s.last_cwd and self.cwd != s.last_cwd:
            old, s.last_cwd = s.last_cwd, self.cwd
            self.emit("CwdChanged", number, None, old_cwd=old, new_cwd=self.cwd)
        s.last_cwd = self.cwd

    # -- the walk ------------------------------------------------------------------------------

    def run(self) -> None:
        first = next(((n, r) for n, r in self.lines if _kind(r) in CHAINED), None)
        if first is None:
            return
        if self.depth == 0:
            number, rec = first
            self.emit("SessionStart", number, rec,
                      source="resume" if rec.get("parentUuid") else "startup")
        for index, (number, rec) in enumerate(self.lines):
            kind = _kind(rec)
            if kind == "user" and self.depth == 0:
                self._user(number, rec)
            elif kind == "assistant":
                self._assistant(index, number, rec)
            elif kind == "system" and rec.get("subtype") == "compact_boundary":
                trigger = _object(rec, "compactMetadata").get("trigger") or "auto"
                self.emit("PreCompact", number, rec, trigger=trigger, custom_instructions=None)
                self.emit("SessionStart", number, rec, source="compact")

    def _user(self, number: int, rec: dict[str, Any]) -> None:
        if isinstance(rec.get("permissionMode"), str):
            self.session.permission_mode = rec["permissionMode"]
        prompt = user_prompt(rec)
        if prompt is None:
            return
        if isinstance(rec.get("promptId"), str):
            self.session.prompt_id = rec["promptId"]
        self.session.prompts.append(prompt)
        self.stopped = False
        self.emit("UserPromptSubmit", number, rec, prompt=prompt)

    def _assistant(self, index: int, number: int, rec: dict[str, Any]) -> None:
        for block in blocks(rec):
            if block.get("type") == "tool_use":
                self._tool(number, rec, block)
        mid = _message_id(rec, number)
        if mid in self.message_tools or self.message_end.get(mid) != index:
            return  # a tool round trip, or not the message's last line yet
        text = "\n".join(text_of(message(r).get("content")) for n, r in self.lines
                         if r.get("type") == "assistant" and _message_id(r, n) == mid).strip()
        if rec.get("isApiErrorMessage"):
            self.emit("StopFailure", number, rec, error="unknown", last_assistant_message=text)
        elif self.depth == 0:
            self.emit("Stop", number, rec, stop_hook_active=self.stopped,
                      last_assistant_message=text, background_tasks=[], session_crons=[])
            self.stopped = True
        else:  # a subagent's answer: its SubagentStop is emitted by the parent's replay
            self.last_text, self.stop_line = text, (number, rec)

    def _tool(self, number: int, rec: dict[str, Any], block: dict[str, Any]) -> None:
        name = str(block.get("name") or "")
        tool_id = str(block.get("id") or "")
        raw_input = block.get("input")
        tool_input = dict(raw_input) if isinstance(raw_input, dict) else {}
        cwd = rec.get("cwd") if isinstance(rec.get("cwd"), str) else self.cwd
        for key in _PATH_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str) and value and not value.startswith(("/", "~")) and cwd:
                tool_input[key] = os.path.normpath(os.path.join(cwd, value))
        common = {"tool_name": name, "tool_input": tool_input}
        result = self.results.get(tool_id)
        text = text_of(result[2].get("content")) if result else ""
        if result and result[2].get("is_error") and text.lstrip().startswith("<tool_use_error>"):
            return  # rejected by input validation: Claude Code fires no hook at all
        self.emit("PreToolUse", number, rec, **common, tool_use_id=tool_id)
        if name in AGENT_TOOLS:
            self._subagent(number, rec, tool_input, result)
        if result is None:
            return  # the session ended (or was interrupted) before the tool finished
        res_number, res_rec, res_block = result
        structured = res_rec.get("toolUseResult")
        interrupted = isinstance(structured, dict) and bool(structured.get("interrupted"))
        if tool_id in self.denied or res_block.get("is_error") and (
                _DENIED.search(text)
                or name in SHELL_TOOLS and not interrupted and not _SHELL_FAILURE.match(text)):
            return  # denied before it ran: Claude Code fires no post event
        if res_block.get("is_error"):
            self.emit("PostToolUseFailure", res_number, res_rec, **common, tool_use_id=tool_id,
                      error=text, is_interrupt=interrupted)
        else:
            response = structured if structured is not None else _response(name, text)
            self.emit("PostToolUse", res_number, res_rec, **common, tool_response=response,
                      tool_use_id=tool_id)

    def _subagent(self, number: int, rec: dict[str, Any], tool_input: dict[str, Any],
                  result: tuple[int, dict[str, Any], dict[str, Any]] | None) -> None:
        structured = result[1].get("toolUseResult") if result else None
        if not isinstance(structured, dict) or not isinstance(structured.get("agentId"), str):
            return  # never started (denied, interrupted) or not recorded
        agent_id = str(structured["agentId"])
        agent_type = str(structured.get("agentType") or tool_input.get("subagent_type")
                         or "general-purpose")
        candidates = self._subagent_candidates(agent_id)
        sub_path = next((p for p in candidates if os.path.isfile(p)), None)
        sub: _Replay | None = None
        start_rec = rec
        if sub_path is not None and self.depth < MAX_SUBAGENT_DEPTH:
            lines = read(sub_path, self.problems)
            sub = _Replay(sub_path, lines, self.problems, parent=self,
                          agent=(agent_id, agent_type))
            start_rec = next((r for _, r in lines if _kind(r) in CHAINED), rec)
        else:
            self.problems.append(Problem(
                location(self.path, number), "missing_subagent",
                f"no transcript for subagent {agent_id} (looked for {candidates[0]}): its own "
                "tool calls are not replayed"))
        self.emit("SubagentStart", number, start_rec, agent_id=agent_id, agent_type=agent_type)
        text, stop_number, stop_rec = text_of(structured.get("content")), number, None
        if sub is not None:
            sub.run()
            text = sub.last_text or text
            if sub.stop_line is not None:
                stop_number, stop_rec = sub.stop_line
        (sub or self).emit(
            "SubagentStop", stop_number, stop_rec, stop_hook_active=False, agent_id=agent_id,
            agent_type=agent_type, agent_transcript_path=os.path.abspath(sub_path or candidates[0]),
            last_assistant_message=text, background_tasks=[], session_crons=[])

    def _subagent_candidates(self, agent_id: str) -> list[str]:
        """Where Claude Code keeps a subagent's transcript (2.1, then older versions)."""
        folder = os.path.dirname(os.path.abspath(self.session.path))
        return [os.path.join(folder, self.session.session_id, "subagents",
                             f"agent-{agent_id}.jsonl"),
                os.path.join(folder, f"agent-{agent_id}.jsonl")]


def events(path: str, problems: list[Problem]) -> list[tuple[dict[str, Any], str, float]]:
    """The hook payloads the transcript implies, each with its file:line and clock time."""
    replay = _Replay(path, read(path, problems), problems)
    replay.run()
    return replay.session.out


def load_transcript(path: str, problems: list[Problem], seen: dict[str, str]) -> list[Stream]:
    """One stream of cases for the transcript; ids are `<file stem>#<n>`. With a
    `<name>.labels.json` beside it, its PreToolUse events carry the labels given there."""
    stem = os.path.splitext(os.path.basename(path))[0]
    stream = Stream(path, "transcript")
    prompts: list[str] = []
    tool_labels = transcript_labels(path, problems)
    labeled: set[str] = set()
    for n, (payload, where, clock) in enumerate(events(path, problems), 1):
        if payload["hook_event_name"] == "UserPromptSubmit" and "agent_id" not in payload:
            prompts.append(str(payload.get("prompt", "")))
        case_id = f"{stem}#{n}"
        if case_id in seen:
            problems.append(Problem(where, "duplicate_id", f"id {case_id!r} was already used at "
                                    f"{seen[case_id]}: skipped (two transcripts with one name?)"))
            continue
        seen[case_id] = where
        tool_label = None
        if payload["hook_event_name"] == "PreToolUse":
            tool_label = tool_labels.get(str(payload.get("tool_use_id")))
            labeled.add(str(payload.get("tool_use_id")))
        stream.cases.append(Case(
            id=case_id, where=where, payload=payload, prompts=tuple(prompts), time=clock,
            group=path, inline=False, label=tool_label.label if tool_label else None,
            expected=tool_label.expected if tool_label else None,
            category=tool_label.category if tool_label else None))
    for tool_id in sorted(set(tool_labels) - labeled):
        problems.append(Problem(os.path.splitext(path)[0] + ".labels.json", "unused_label",
                                f"a label for {tool_id}, which is no replayed tool call of "
                                f"{os.path.basename(path)}: ignored"))
    if not stream.cases:
        problems.append(Problem(path, "empty_transcript", "no hook events could be rebuilt "
                                "from this transcript (no user or assistant lines)"))
        return []
    return [stream]
