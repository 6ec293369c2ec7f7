"""Labeled inputs: event datasets (one hook event per line) and multi-step sessions (one file per
session), validated row by row with pydantic.

Dataset row (one JSON object per line):
    {"id": "...", "label": "safe" | "unsafe", "expected": "allow" | "ask" | "deny",
     "category": "...", "event": {hook payload}, "context": {"user_prompt": "..."}}
Session step (one file per session, one step per line, replayed in `step` order):
    {"step": 1, "label": ..., "expected": ..., "event": {hook payload}}   (+ optional id,
     category, context)

Transcript labels (`<name>.labels.json` beside `<name>.jsonl`, one JSON object):
    {"tool_uses": {"toolu_...": {"label": ..., "expected": ..., "category": ...}}}
label the PreToolUse event rebuilt from each tool call; the transcript's other events stay
unlabeled.

Other keys (`source`, `license`, `source_ref`, ...) are ignored: only `event` and
`context.user_prompt` reach the system under test. A row that cannot be used (not JSON, no
label, an event Claude Code does not send, a duplicate id) is reported as a Problem with its
file:line and skipped; the rest of the file still counts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from watchdog.evals.cases import CLAUDE_EVENTS, Case, Problem, Stream, location

#: Seconds between two session steps on the deterministic clock, when steps carry no time:
#: about what an agent takes per tool call, so a judge answering in a second or two is
#: delivered at the next step or the one after, as it would be live.
STEP_INTERVAL_S = 2.0


class Context(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_prompt: str | None = None


class DatasetRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    label: Literal["safe", "unsafe"]
    expected: Literal["allow", "ask", "deny"] | None = None
    category: str | None = None
    event: dict[str, Any]
    context: Context | None = None
    #: the agent whose payload `event` is (its own format); the pack's common/ policies and
    #: the judge see it normalized, policies/<harness>/ see it as sent
    harness: Literal["claude", "cursor", "factory", "opencode"] = "claude"


class SessionStep(DatasetRow):
    step: int = Field(ge=0)


class ToolLabel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: Literal["safe", "unsafe"]
    expected: Literal["allow", "ask", "deny"] | None = None
    category: str | None = None


class TranscriptLabels(BaseModel):
    """`<name>.labels.json` beside a transcript: labels for its tool calls, by tool_use id."""

    model_config = ConfigDict(extra="ignore")

    tool_uses: dict[str, ToolLabel]


_ROW_HELP = {
    "label": "'label' must be \"safe\" or \"unsafe\"",
    "expected": "'expected' must be \"allow\", \"ask\" or \"deny\"",
    "event": "'event' must be the hook payload object",
    "step": "'step' must be a whole number >= 0",
    "id": "'id' must be a string",
}
_MISSING_HELP = {
    "label": "no 'label': label the row \"safe\" or \"unsafe\"",
    "event": "no 'event': add the hook payload the row is about",
    "step": "no 'step': number a session's steps 1, 2, 3, ...",
}


def describe(exc: ValidationError) -> str:
    """A pydantic error as one line that names the fields and what they must be."""
    parts: list[str] = []
    for err in exc.errors(include_url=False, include_input=False)[:3]:
        field = str(err["loc"][0]) if err["loc"] else "row"
        if err["type"] == "missing":
            parts.append(_MISSING_HELP.get(field, f"no '{field}'"))
        else:
            parts.append(_ROW_HELP.get(field, f"{field}: {err['msg']}"))
    return "; ".join(parts)


def read_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line; undecodable bytes are replaced. Lines end
    at `\\n` only, so numbers match an editor's and `grep -n`'s (a stray `\\r` is no break)."""
    with open(path, encoding="utf-8", errors="replace", newline="\n") as fh:
        for number, text in enumerate(fh, 1):
            if text.strip():
                yield number, text


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _valid_unicode(value: Any) -> Any:
    """The value with lone surrogates (a `\\ud83d` escape without its pair: Node's
    JSON.stringify writes them for broken strings) replaced by U+FFFD, which UTF-8 can carry."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_valid_unicode(v) for v in value]
    if isinstance(value, dict):
        return {_valid_unicode(k): _valid_unicode(v) for k, v in value.items()}
    return value


def json_object(path: str, number: int, text: str,
                problems: list[Problem]) -> dict[str, Any] | None:
    """The line's JSON object, or None after recording why it is unusable."""
    where = location(path, number)
    try:
        value = json.loads(text.strip(), parse_constant=_not_json, parse_float=_finite)
        if _SURROGATE_ESCAPE.search(text):
            value = _valid_unicode(value)
    except json.JSONDecodeError as exc:
        problems.append(Problem(where, "bad_json", f"not valid JSON ({exc.msg}, column "
                                f"{exc.colno}; a truncated line?): skipped"))
        return None
    except (ValueError, RecursionError) as exc:
        why = ("nested too deeply" if isinstance(exc, RecursionError)
               else "an integer longer than 4300 digits" if "digits" in str(exc) else str(exc))
        problems.append(Problem(where, "bad_json", f"not usable JSON ({why}): skipped"))
        return None
    if not isinstance(value, dict):
        problems.append(Problem(where, "bad_row", f"a JSON {type(value).__name__}, not an "
                                "object: skipped"))
        return None
    return value


def event_problem(event: dict[str, Any], where: str, harness: str = "claude") -> Problem | None:
    """Why a payload cannot be replayed as a hook event of `harness`, or None."""
    if harness != "claude":
        from watchdog import harnesses
        from watchdog.errors import EventError

        try:
            harnesses.get(harness).parse(event)
        except EventError as exc:
            return Problem(where, "bad_event", f"not a {harness} hook event ({exc}): skipped")
        return None
    name = event.get("hook_event_name")
    if not isinstance(name, str) or not name:
        return Problem(where, "bad_event", "the event has no hook_event_name: skipped")
    if name not in CLAUDE_EVENTS:
        return Problem(where, "unknown_event", f"unknown hook_event_name {name!r} (not an event "
                       "Claude Code sends; a typo?): skipped")
    if name in ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest") and (
            not isinstance(event.get("tool_name"), str)
            or not isinstance(event.get("tool_input"), dict)):
        return Problem(where, "bad_event",
                       f"a {name} event needs 'tool_name' and a 'tool_input' object: skipped")
    return None


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _prompts(row: DatasetRow) -> tuple[str, ...]:
    if row.context and row.context.user_prompt:
        return (row.context.user_prompt,)
    prompt = row.event.get("prompt")
    if row.event.get("hook_event_name") == "UserPromptSubmit" and isinstance(prompt, str):
        return (prompt,)
    return ()


_Row = TypeVar("_Row", bound=DatasetRow)


def _rows(
    path: str, model: type[_Row], problems: list[Problem]
) -> Iterator[tuple[int, str, _Row]]:
    """(line number, file:line, row) for each line that parses, validates and holds an event;
    the others are reported in `problems` and skipped."""
    for number, text in read_lines(path):
        where = location(path, number)
        obj = json_object(path, number, text, problems)
        if obj is None:
            continue
        try:
            row = model.model_validate(obj)
        except ValidationError as exc:
            problems.append(Problem(where, _kind(exc), f"{describe(exc)}: skipped"))
            continue
        bad = event_problem(row.event, where, row.harness)
        if bad:
            problems.append(bad)
            continue
        yield number, where, row


def _claim(case_id: str, where: str, seen: dict[str, str], problems: list[Problem]) -> bool:
    """Ids are unique across a run (recorded verdicts are looked up by id)."""
    if case_id in seen:
        problems.append(Problem(where, "duplicate_id", f"id {case_id!r} was already used at "
                                f"{seen[case_id]}: skipped (ids must be unique)"))
        return False
    seen[case_id] = where
    return True


def load_dataset(path: str, problems: list[Problem], seen: dict[str, str]) -> list[Stream]:
    """One stream of one inline case per usable row. `seen` maps ids to where they were first
    met, across every input of the run (recorded verdicts are looked up by id)."""
    streams: list[Stream] = []
    for number, where, row in _rows(path, DatasetRow, problems):
        case_id = row.id or f"{_stem(path)}:{number}"
        if not _claim(case_id, where, seen, problems):
            continue
        case = Case(id=case_id, where=where, payload=row.event, label=row.label,
                    expected=row.expected, category=row.category, prompts=_prompts(row),
                    group=case_id, inline=True, harness=row.harness)
        streams.append(Stream(case_id, "dataset", [case]))
    return streams


def _kind(exc: ValidationError) -> str:
    fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
    missing = {str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing" and e["loc"]}
    if "label" in missing:
        return "no_label"
    return "bad_label" if "label" in fields else "bad_row"


def load_session(path: str, problems: list[Problem], seen: dict[str, str],
                 interval_s: float = STEP_INTERVAL_S) -> list[Stream]:
    """One stream for the whole file, its steps in `step` order, on a clock of interval_s."""
    steps: list[tuple[SessionStep, str]] = []
    numbers: dict[int, str] = {}
    for _, where, step in _rows(path, SessionStep, problems):
        if step.step in numbers:
            problems.append(Problem(where, "duplicate_step", f"step {step.step} is already at "
                                    f"{numbers[step.step]}: skipped"))
            continue
        numbers[step.step] = where
        steps.append((step, where))
    steps.sort(key=lambda item: item[0].step)
    stream = Stream(path, "session")
    prompts: list[str] = []
    for step, where in steps:
        if step.context and step.context.user_prompt and step.context.user_prompt not in prompts:
            prompts.append(step.context.user_prompt)
        prompt = step.event.get("prompt")
        if step.event.get("hook_event_name") == "UserPromptSubmit" and isinstance(prompt, str):
            prompts.append(prompt)
        case_id = step.id or f"{_stem(path)}#{step.step}"
        if not _claim(case_id, where, seen, problems):
            continue
        stream.cases.append(Case(
            id=case_id, where=where, payload=step.event, label=step.label,
            expected=step.expected, category=step.category, prompts=tuple(prompts),
            time=step.step * interval_s, group=path, inline=False))
    return [stream] if stream.cases else []


def transcript_labels(path: str, problems: list[Problem]) -> dict[str, ToolLabel]:
    """The sidecar labels of a transcript (`<name>.labels.json`), by tool_use id; {} if none."""
    sidecar = os.path.splitext(path)[0] + ".labels.json"
    if not os.path.isfile(sidecar):
        return {}
    try:
        with open(sidecar, "rb") as fh:
            return dict(TranscriptLabels.model_validate_json(fh.read()).tool_uses)
    except (OSError, ValidationError) as exc:
        detail = describe(exc) if isinstance(exc, ValidationError) else str(exc.strerror)
        problems.append(Problem(sidecar, "bad_labels", f"unusable labels ({detail}): the "
                                "transcript is replayed unlabeled"))
        return {}
