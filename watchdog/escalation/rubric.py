"""Judge prompts: rubric files in `prompts/`, and rendering one escalated event into messages.

Kept apart from judge.py (which imports litellm) so the hook can version a prompt for the
verdict cache key without loading any model client. The format is in prompts/README.md: front
matter (`description`, `critical`), then `## system` and `## user` sections with placeholders.
The judge is reasoning-blind: a rendered prompt holds the user's prompts and the tool call,
never the agent's own text; everything from the agent or a tool is fenced in tags carrying a
random per-call nonce, so fenced content cannot close its fence.

What is too long is cut, but never blindly: padding the head of a command or a file would
otherwise push its dangerous tail out of the judge's view. A clipped string keeps its head
(60% of its share) and its tail (40%) around a marker that counts the characters cut
(`[... 12345 more characters cut by watchdog: the judge did not see them ...]`). When the call is
still over its bound, every string's share shrinks alike, so each keeps a head and a tail.
After the tool call's closing tag, outside the fence, a note from watchdog says how much of the
call the judge saw (`tool_call_cut` gives the figures), and the rubrics tell the judge that
only that note speaks for watchdog. An `allow` on a call the judge saw only in part is not
silent: the worker delivers it as a `warn` that says so (watchdog/escalation/verdicts.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.errors import JudgeError


def _default_prompts_dir() -> Path:
    """prompts/ beside the package in a checkout; the copy shipped inside the wheel otherwise."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "prompts", here.parents[1] / "_prompts"):
        if candidate.is_dir():
            return candidate
    return here.parents[2] / "prompts"


PROMPTS_DIR = _default_prompts_dir()
DEFAULT_RUBRIC = "general"
CORRECTION_FILE = "_correction.md"


# Bounds on what goes into a prompt (characters), so one huge Write cannot blow the budget.
MAX_STRING_CHARS = 4000  # any one string inside tool_input
MAX_TOOL_CALL_CHARS = 16000  # the serialized tool call as a whole
MIN_STRING_CHARS = 400  # the least a string's share shrinks to when the call is over its bound
HEAD_SHARE = 0.6  # of a clipped text's bound: its head; the rest is its tail
MAX_PROMPTS = 10  # the most recent user prompts
MAX_PROMPT_CHARS = 4000  # each user prompt
MAX_NOTE_CHARS = 1000  # each policy note
MAX_ERROR_CHARS = 300  # the parse error quoted in the corrective message

_RUBRIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_SECTION = re.compile(r"^## +(\S+)\s*$", re.MULTILINE)
_PLACEHOLDERS = ("tool_call", "user_prompts", "policy_notes", "nonce")
_UNTRUSTED_PLACEHOLDERS = ("tool_call", "user_prompts", "policy_notes")
_FRONT_MATTER_KEYS = ("description", "critical")
_SEVERITY_RANK = {"CRITICAL": 4, "HIGH": 3, "MEDIUM": 2, "LOW": 1}
_TOOL_CALL_KEYS = ("hook_event_name", "tool_name", "tool_input", "cwd")
_SHRINK_STEPS = 8  # rounds of shrinking the strings' share; 2 or 3 in practice

@dataclass(frozen=True)
class Rubric:
    """One judge prompt, loaded from prompts/<name>.md. `critical` rubrics fall back to `ask`
    rather than `add_context` when the budget is exhausted."""

    name: str
    description: str
    critical: bool
    system: str
    user: str
    correction: str  # the corrective message for a reply that is not a verdict
    source: str  # the file's text plus the correction's, hashed into prompt_version



# -- rubrics -----------------------------------------------------------------------------------


def available_rubrics(prompts_dir: Path | None = None) -> list[str]:
    folder = prompts_dir or PROMPTS_DIR
    return sorted(p.stem for p in folder.glob("*.md")
                  if not p.name.startswith("_") and p.name != "README.md")


def _parse_front_matter(path: Path, text: str) -> tuple[dict[str, str], str]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise JudgeError(f"{path}: must start with a '---' front-matter block "
                         "(see prompts/README.md)")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise JudgeError(f"{path}: the front matter has no closing '---' line") from None
    meta: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or key not in _FRONT_MATTER_KEYS:
            raise JudgeError(f"{path}:{number}: expected 'key: value' with a key among "
                             f"{', '.join(_FRONT_MATTER_KEYS)}, got {line.strip()!r}")
        meta[key] = value.strip()
    return meta, "\n".join(lines[end + 1:])


def _parse_sections(path: Path, body: str) -> dict[str, str]:
    marks = list(_SECTION.finditer(body))
    if body[: marks[0].start() if marks else len(body)].strip():
        raise JudgeError(f"{path}: text before '## system'; put everything in the "
                         "'## system' and '## user' sections")
    sections: dict[str, str] = {}
    for i, mark in enumerate(marks):
        name = mark.group(1)
        if name not in ("system", "user") or name in sections:
            raise JudgeError(f"{path}: unexpected section '## {name}'; a rubric has exactly "
                             "'## system' then '## user' (use ### inside them)")
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        sections[name] = body[mark.end():end].strip()
    if list(sections) != ["system", "user"] or not all(sections.values()):
        raise JudgeError(f"{path}: needs a non-empty '## system' section, then '## user'")
    return sections


def _check_placeholders(path: Path, sections: Mapping[str, str]) -> None:
    for name, text in sections.items():
        for found in _PLACEHOLDER.findall(text):
            if found not in _PLACEHOLDERS:
                raise JudgeError(f"{path}: unknown placeholder {{{{{found}}}}} in '## {name}'; "
                                 f"known: {', '.join(_PLACEHOLDERS)}")
            if name == "system" and found in _UNTRUSTED_PLACEHOLDERS:
                raise JudgeError(f"{path}: {{{{{found}}}}} belongs in '## user': untrusted "
                                 "data never goes into the system prompt")
    if "tool_call" not in _PLACEHOLDER.findall(sections["user"]):
        raise JudgeError(f"{path}: '## user' must contain {{{{tool_call}}}}")


def load_rubric(name: str, prompts_dir: Path | None = None) -> Rubric:
    """Read and check prompts/<name>.md; an unknown name lists the rubrics there are."""
    folder = prompts_dir or PROMPTS_DIR
    path = folder / f"{name}.md"
    if not _RUBRIC_NAME.fullmatch(name) or not path.is_file():
        names = ", ".join(available_rubrics(folder)) or "none"
        raise JudgeError(f"no judge rubric {name!r} in {folder} (available: {names}). Fix the "
                         f"policy's `rubric`, or add {name}.md there (see prompts/README.md).")
    try:
        text = path.read_text(encoding="utf-8")
        correction = (folder / CORRECTION_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise JudgeError(f"cannot read the rubric {path} or {CORRECTION_FILE}: {exc}. "
                         "Check the prompts folder.") from exc
    if "{{error}}" not in correction:
        raise JudgeError(f"{folder / CORRECTION_FILE} must contain {{{{error}}}}, where the "
                         "reason the reply was rejected goes")
    meta, body = _parse_front_matter(path, text)
    sections = _parse_sections(path, body)
    _check_placeholders(path, sections)
    critical = meta.get("critical", "false").lower()
    if critical not in ("true", "false"):
        raise JudgeError(f"{path}: critical must be true or false, not {critical!r}")
    if not meta.get("description"):
        raise JudgeError(f"{path}: the front matter needs a one-line description")
    return Rubric(name=name, description=meta["description"], critical=critical == "true",
                  system=sections["system"], user=sections["user"], correction=correction,
                  source=text + "\0" + correction)


def prompt_version(rubric: Rubric) -> str:
    """A short hash of the rubric's text (and the correction): part of the verdict cache key."""
    return hashlib.sha256(rubric.source.encode("utf-8")).hexdigest()[:12]


def pick_rubric(payload: Mapping[str, Any]) -> str:
    """The payload's `rubric` when it names one; else the rubric of the most severe
    escalation (on a tie a specific rubric beats `general`, then the first listed wins);
    `general` when nothing names one."""
    if isinstance(payload.get("rubric"), str) and payload["rubric"]:
        return str(payload["rubric"])
    best: tuple[int, bool, int] | None = None
    chosen = DEFAULT_RUBRIC
    escalations = payload.get("escalations")
    for index, item in enumerate(escalations if isinstance(escalations, list) else []):
        if not isinstance(item, Mapping) or not isinstance(item.get("rubric"), str):
            continue
        rubric = item["rubric"] or DEFAULT_RUBRIC
        rank = (-_SEVERITY_RANK.get(str(item.get("severity", "")).upper(), 0),
                rubric == DEFAULT_RUBRIC, index)
        if best is None or rank < best:
            best, chosen = rank, rubric
    return chosen


# -- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cut:
    """How much of the tool call the judge was shown, in characters of the call as JSON."""

    shown: int
    total: int
    places: int  # how many markers stand for cut text

    @property
    def unseen(self) -> int:
        return self.total - self.shown


_CUT_MARKER = "[... {} more characters cut by watchdog: the judge did not see them ...]"
_CUT_MARKER_RE = re.compile(re.escape(_CUT_MARKER).replace(r"\{\}", r"\d+"))


def cut_marker(count: int) -> str:
    return _CUT_MARKER.format(count)


def clip(text: str, limit: int) -> str:
    """`text`, or when longer than `limit` its head and tail (`limit` characters in all) around
    a marker that counts what was cut: the end of a text is as telling as its start."""
    if len(text) <= limit:
        return text
    head = int(limit * HEAD_SHARE)
    return text[:head] + cut_marker(len(text) - limit) + text[len(text) - (limit - head):]


def _clip_strings(value: Any, limit: int, cuts: list[int]) -> Any:
    """A copy of `value` with every string clipped to `limit`; each cut's size goes to `cuts`."""
    if isinstance(value, str):
        if len(value) > limit:
            cuts.append(len(value) - limit)
        return clip(value, limit)
    if isinstance(value, Mapping):
        return {str(k): _clip_strings(v, limit, cuts) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clip_strings(v, limit, cuts) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _tool_call_text(event: Mapping[str, Any]) -> tuple[str, Cut]:
    """The tool call as the judge sees it, and how much of it that is. Strings get
    MAX_STRING_CHARS each; while the call is over MAX_TOOL_CALL_CHARS their share shrinks in
    proportion (to MIN_STRING_CHARS at least), and what is still over is clipped whole."""
    call = {key: event[key] for key in _TOOL_CALL_KEYS if key in event}
    full = _dumps(call)
    limit, text = MAX_STRING_CHARS, full
    cuts: list[int] = []
    for _ in range(_SHRINK_STEPS):
        cuts = []
        text = _dumps(_clip_strings(call, limit, cuts))
        if len(text) <= MAX_TOOL_CALL_CHARS or limit == MIN_STRING_CHARS:
            break
        # aim a little under: keys, short strings and markers do not shrink with the share
        limit = max(MIN_STRING_CHARS, int(limit * MAX_TOOL_CALL_CHARS / len(text) * 0.95))
    if len(text) > MAX_TOOL_CALL_CHARS:
        cuts.append(len(text) - MAX_TOOL_CALL_CHARS)
        text = clip(text, MAX_TOOL_CALL_CHARS)
    if not cuts:
        return text, Cut(shown=len(text), total=len(text), places=0)
    marks = sum(len(m) for m in _CUT_MARKER_RE.findall(text))  # text the call never had
    return text, Cut(shown=min(len(full), len(text) - marks), total=len(full), places=len(cuts))


def tool_call_cut(payload: Mapping[str, Any]) -> Cut:
    """How much of the payload's tool call a rendered prompt shows the judge."""
    event = payload.get("event")
    return _tool_call_text(event if isinstance(event, Mapping) else {})[1]


def _cut_note(cut: Cut) -> str:
    # Outside the fence: the one statement about cuts that comes from watchdog, not the data.
    return (f"Note from watchdog: this tool call has {cut.total} characters, too many to show "
            f"whole. {cut.unseen} of them were cut in {cut.places} "
            f"{'place' if cut.places == 1 else 'places'}, each marked inside the tags as "
            f"`{_CUT_MARKER.format('N')}`; you saw the other {cut.shown}: what comes before "
            "and after each marker.")


def _prompts_text(prompts: Any) -> str:
    items = [p for p in prompts if isinstance(p, str)] if isinstance(prompts, list) else []
    if not items:
        return "(no user prompt recorded)"
    first = max(0, len(items) - MAX_PROMPTS)
    lines = [f"({first} earlier prompts left out)"] if first else []
    lines += [f"[{n}] {clip(p, MAX_PROMPT_CHARS)}"
              for n, p in enumerate(items[first:], start=first + 1)]
    return "\n\n".join(lines)


def _notes_text(escalations: Any, decision: Any) -> str:
    lines = []
    for item in escalations if isinstance(escalations, list) else []:
        if isinstance(item, Mapping):
            lines.append(f"- [{item.get('rule_id', '?')}] "
                         f"{clip(str(item.get('reason', '')), MAX_NOTE_CHARS)} "
                         f"(severity {item.get('severity', '?')})")
    if not lines:
        lines.append("- (no escalation notes)")
    verb, reason, rules = "allow", "", []
    if isinstance(decision, Mapping):
        verb = str(decision.get("verb") or "allow")
        reason = clip(str(decision.get("reason") or ""), MAX_NOTE_CHARS)
        rules = [str(r) for r in decision.get("rule_ids") or [] if r]
    summary = f"The policies' own decision: {verb}"
    summary += f": {reason}" if reason else ""
    summary += f" (rules: {', '.join(rules)})" if rules else ""
    return "\n".join(lines) + "\n\n" + summary


def _fence(tag: str, nonce: str, text: str) -> str:
    return f"<{tag}_{nonce}>\n{text}\n</{tag}_{nonce}>"


def _fill(template: str, values: Mapping[str, str]) -> str:
    # One pass: text substituted in is never scanned again, so data cannot inject placeholders.
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def render(rubric: Rubric | str, payload: Mapping[str, Any],
           nonce: str | None = None) -> list[dict[str, str]]:
    """The chat messages for one escalated event: the rubric's system prompt, then the user
    message with the user's prompts, the policy notes and the tool call, each fenced, and
    after the tool call's fence watchdog's note on what was cut, if anything was. A rubric
    given by name is loaded from the default prompts folder."""
    if isinstance(rubric, str):
        rubric = load_rubric(rubric)
    event = payload.get("event")
    if not isinstance(event, Mapping):
        raise JudgeError("the judge payload has no `event` object; the job was built wrongly")
    tool_call, cut = _tool_call_text(event)
    data = {
        "tool_call": tool_call,
        "user_prompts": _prompts_text(payload.get("user_prompts")),
        "policy_notes": _notes_text(payload.get("escalations"), payload.get("policy_decision")),
    }
    if nonce is not None and any(nonce in text for text in data.values()):
        raise ValueError(f"nonce {nonce!r} occurs in the data, so the data could close its "
                         "fence; use another one")
    while nonce is None or any(nonce in text for text in data.values()):
        nonce = secrets.token_hex(8)  # 64 random bits: a collision is only ever bad luck
    fenced = _fence("untrusted_tool_call", nonce, data["tool_call"])
    values = {
        "nonce": nonce,
        "tool_call": fenced + (f"\n\n{_cut_note(cut)}" if cut.places else ""),
        "user_prompts": _fence("user_prompts", nonce, data["user_prompts"]),
        "policy_notes": _fence("policy_notes", nonce, data["policy_notes"]),
    }
    return [{"role": "system", "content": _fill(rubric.system, values)},
            {"role": "user", "content": _fill(rubric.user, values)}]


# -- cost --------------------------------------------------------------------------------------


def correction(rubric: Rubric, problem: str) -> str:
    """The corrective user message after a reply that was not a verdict."""
    return _fill(rubric.correction, {"error": clip(problem, MAX_ERROR_CHARS)})
