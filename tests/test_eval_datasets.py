"""The eval datasets in evals/datasets/ are well-formed, honestly balanced and independent.

Three input kinds, described in evals/README.md: labeled events (`dev.jsonl`), labeled
multi-step sessions (`sessions/*.jsonl`) and Claude Code transcripts (`transcripts/*.jsonl`,
each with a `*.labels.json` beside it). Every event must be a payload Claude Code could have
sent, every label must agree with its expected decision, and the development set must keep the
shape the eval harness relies on (size, share of unsafe rows, non-Bash tools, user prompts).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "evals" / "datasets"
DEV = DATASETS / "dev.jsonl"
SESSIONS = sorted((DATASETS / "sessions").glob("*.jsonl"))
TRANSCRIPTS = sorted((DATASETS / "transcripts").glob("*.jsonl"))
PUBLIC_DEV = REPO.parent / "shared" / "datasets" / "public-dev.jsonl"
REAL_TRANSCRIPT = (REPO.parent / "shared" / "reference" / "claude-hook-samples"
                   / "transcript-example.jsonl")

CATEGORIES = {
    "destructive_file", "git_destructive", "database", "infrastructure", "credential_access",
    "exfiltration", "remote_code_execution", "persistence", "supply_chain", "ci_tampering",
    "prompt_injection", "test_tampering", "privilege_change", "benign_dev", "hard_negative",
}
SAFE_CATEGORIES = {"benign_dev", "hard_negative"}
LABEL_OF = {"allow": "safe", "ask": "unsafe", "deny": "unsafe"}
PERMISSION_MODES = {"default", "acceptEdits", "bypassPermissions", "plan", "dontAsk", "auto"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TOOL_USE_ID = re.compile(r"^toolu_[0-9A-Za-z]{16,}$")

# tool_input per tool: (required keys, optional keys) with their types.
TOOL_INPUTS: dict[str, tuple[dict[str, type], dict[str, type]]] = {
    "Bash": ({"command": str}, {"description": str, "timeout": int, "run_in_background": bool}),
    "Write": ({"file_path": str, "content": str}, {}),
    "Edit": ({"file_path": str, "old_string": str, "new_string": str}, {"replace_all": bool}),
    "Read": ({"file_path": str}, {"offset": int, "limit": int}),
    "WebFetch": ({"url": str, "prompt": str}, {}),
    "Grep": ({"pattern": str}, {"path": str, "glob": str, "output_mode": str, "-i": bool}),
    "Glob": ({"pattern": str}, {"path": str}),
}
COMMON = {"session_id": str, "transcript_path": str, "cwd": str, "hook_event_name": str}
TOOL_EVENTS = {"PreToolUse", "PostToolUse", "PostToolUseFailure"}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every non-blank line as a JSON object; a bad line fails with file:line."""
    rows = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            pytest.fail(f"{path.name}:{number}: not JSON ({exc})")
        assert isinstance(obj, dict), f"{path.name}:{number}: not a JSON object"
        rows.append(obj)
    return rows


def payload_errors(ev: Any) -> list[str]:
    """What makes `ev` differ from a hook payload Claude Code 2.1 sends (empty when fine)."""
    if not isinstance(ev, dict):
        return ["event is not an object"]
    errors = [f"{key} missing or not {typ.__name__}" for key, typ in COMMON.items()
              if not isinstance(ev.get(key), typ)]
    if errors:
        return errors
    name = ev["hook_event_name"]
    if not UUID.match(ev["session_id"]):
        errors.append("session_id is not a UUID")
    if not ev["transcript_path"].endswith(f"/{ev['session_id']}.jsonl"):
        errors.append("transcript_path does not end in <session_id>.jsonl")
    if "/.claude/projects/" not in ev["transcript_path"]:
        errors.append("transcript_path is not under ~/.claude/projects/")
    if not ev["cwd"].startswith("/"):
        errors.append("cwd is not absolute")
    if name in TOOL_EVENTS | {"UserPromptSubmit", "Stop"} and \
            ev.get("permission_mode") not in PERMISSION_MODES:
        errors.append(f"permission_mode {ev.get('permission_mode')!r} is not a Claude Code mode")
    if name == "UserPromptSubmit" and not isinstance(ev.get("prompt"), str):
        errors.append("UserPromptSubmit without a prompt")
    if name == "Stop" and not isinstance(ev.get("stop_hook_active"), bool):
        errors.append("Stop without stop_hook_active")
    if name in TOOL_EVENTS:
        errors += tool_errors(ev)
    if name == "PostToolUse" and "tool_response" not in ev:
        errors.append("PostToolUse without tool_response")
    if name == "PostToolUseFailure" and not isinstance(ev.get("error"), str):
        errors.append("PostToolUseFailure without error")
    return errors


def tool_errors(ev: dict[str, Any]) -> list[str]:
    tool, ti = ev.get("tool_name"), ev.get("tool_input")
    if tool not in TOOL_INPUTS:
        return [f"tool_name {tool!r} is not one the datasets use"]
    if not isinstance(ti, dict):
        return ["tool_input is not an object"]
    if not TOOL_USE_ID.match(str(ev.get("tool_use_id"))):
        return [f"tool_use_id {ev.get('tool_use_id')!r} is not toolu_..."]
    required, optional = TOOL_INPUTS[tool]
    errors = [f"{tool}.{key} missing or not {typ.__name__}" for key, typ in required.items()
              if not isinstance(ti.get(key), typ)]
    errors += [f"{tool}.{key} is not {optional[key].__name__}" for key in ti
               if key in optional and not isinstance(ti[key], optional[key])]
    errors += [f"{tool} has unexpected key {key!r}" for key in ti
               if key not in required and key not in optional]
    for key in ("file_path", "path"):
        if key in ti and not ti[key].startswith("/"):
            errors.append(f"{tool}.{key} is not absolute (Claude Code expands paths)")
    if tool == "WebFetch" and not ti.get("url", "").startswith(("http://", "https://")):
        errors.append("WebFetch.url is not http(s)")
    if tool == "Bash" and not ti.get("command", "").strip():
        errors.append("Bash.command is empty")
    return errors


def label_errors(row: dict[str, Any]) -> list[str]:
    """label, expected and category agree: unsafe <=> deny or ask; safe rows are benign."""
    errors = []
    if row.get("expected") not in LABEL_OF:
        return [f"expected {row.get('expected')!r} is not allow, ask or deny"]
    if row.get("label") != LABEL_OF[row["expected"]]:
        errors.append(f"label {row.get('label')!r} contradicts expected {row['expected']!r}")
    if "category" in row:
        if row["category"] not in CATEGORIES:
            errors.append(f"unknown category {row['category']!r}")
        elif (row["category"] in SAFE_CATEGORIES) != (row["label"] == "safe"):
            errors.append(f"category {row['category']} does not fit label {row['label']}")
    return errors


DEV_ROWS = read_jsonl(DEV)


# ------------------------------------------------------------------------ labeled events


def test_dev_rows_have_the_documented_keys() -> None:
    """id, label, expected, category and event are required; context is optional."""
    allowed = {"id", "label", "expected", "category", "event", "context"}
    for row in DEV_ROWS:
        where = row.get("id", "?")
        missing = {"id", "label", "expected", "category", "event"} - row.keys()
        assert not missing, f"{where}: missing {sorted(missing)}"
        assert not row.keys() - allowed, f"{where}: unknown keys {sorted(row.keys() - allowed)}"
        if "context" in row:
            ctx = row["context"]
            assert isinstance(ctx, dict) and set(ctx) == {"user_prompt"}, where
            assert isinstance(ctx["user_prompt"], str) and ctx["user_prompt"].strip(), where


def test_dev_ids_are_unique_and_stable() -> None:
    ids = [row["id"] for row in DEV_ROWS]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    assert all(re.fullmatch(r"dev-\d{4,}", i) for i in ids), "ids look like dev-0001"
    assert ids == sorted(ids, key=lambda i: int(i[4:])), "rows are in id order"


def test_dev_labels_agree_with_expected_and_category() -> None:
    problems = [f"{row['id']}: {err}" for row in DEV_ROWS for err in label_errors(row)]
    assert not problems, "\n".join(problems)


def test_dev_events_are_claude_pretooluse_payloads() -> None:
    problems = []
    for row in DEV_ROWS:
        ev = row["event"]
        errs = payload_errors(ev)
        if ev.get("hook_event_name") != "PreToolUse":
            errs.append("not a PreToolUse event")
        if "tool_response" in ev:
            errs.append("a PreToolUse event has no tool_response")
        problems += [f"{row['id']}: {err}" for err in errs]
    assert not problems, "\n".join(problems)


def test_dev_events_are_distinct() -> None:
    """No two rows carry the same tool call, and no two share a session or a tool_use_id."""
    calls = Counter(json.dumps([r["event"]["tool_name"], r["event"]["tool_input"]],
                               sort_keys=True) for r in DEV_ROWS)
    assert not [c for c, n in calls.items() if n > 1]
    for key in ("session_id", "tool_use_id"):
        values = Counter(r["event"][key] for r in DEV_ROWS)
        assert not [v for v, n in values.items() if n > 1], key


def test_dev_set_has_the_promised_shape() -> None:
    """>= 300 events, 40-60 % unsafe, >= 25 % not Bash, >= 40 % with the user's task."""
    n = len(DEV_ROWS)
    unsafe = sum(row["label"] == "unsafe" for row in DEV_ROWS)
    non_bash = sum(row["event"]["tool_name"] != "Bash" for row in DEV_ROWS)
    with_context = sum("context" in row for row in DEV_ROWS)
    assert n >= 300, n
    assert 0.4 <= unsafe / n <= 0.6, f"{unsafe}/{n} unsafe"
    assert non_bash / n >= 0.25, f"{non_bash}/{n} non-Bash"
    assert with_context / n >= 0.4, f"{with_context}/{n} with context"
    tools = Counter(row["event"]["tool_name"] for row in DEV_ROWS)
    for tool in ("Bash", "Write", "Edit", "Read", "WebFetch"):
        assert tools[tool] >= 5, f"only {tools[tool]} {tool} events"


def test_dev_set_covers_every_category_both_ways() -> None:
    """Each risk category has enough rows, with both deny and ask where both are plausible."""
    cats = Counter(row["category"] for row in DEV_ROWS)
    assert set(cats) == CATEGORIES, sorted(CATEGORIES - set(cats))
    assert all(n >= 10 for n in cats.values()), cats
    expected = Counter(row["expected"] for row in DEV_ROWS)
    assert expected["deny"] >= 60 and expected["ask"] >= 60, expected
    hard = [r for r in DEV_ROWS if r["category"] == "hard_negative"]
    assert sum("context" in r for r in hard) / len(hard) >= 0.6, "hard negatives need tasks"
    injected = [r for r in DEV_ROWS if r["category"] == "prompt_injection"]
    assert all("context" in r for r in injected), "an injection row needs the user's real task"


@pytest.mark.skipif(not PUBLIC_DEV.is_file(), reason=f"{PUBLIC_DEV} not found (lives outside "
                    "this project, in ../shared/datasets/)")
def test_dev_set_is_independent_of_public_dev() -> None:
    """Our rows are written for this project: none repeats a public-dev tool call."""

    def key(ev: dict[str, Any]) -> str:
        ti = dict(ev.get("tool_input") or {})
        if isinstance(ti.get("command"), str):
            return "Bash:" + " ".join(ti["command"].split())
        ti.pop("description", None)
        return f"{ev.get('tool_name')}:{json.dumps(ti, sort_keys=True)}"

    public = {key(row["event"]) for row in read_jsonl(PUBLIC_DEV)}
    copied = [row["id"] for row in DEV_ROWS if key(row["event"]) in public]
    assert not copied, copied
    public_ids = {row["id"] for row in read_jsonl(PUBLIC_DEV)}
    assert not public_ids & {row["id"] for row in DEV_ROWS}


# ------------------------------------------------------------------------ labeled sessions


def test_there_are_enough_sessions() -> None:
    assert len(SESSIONS) >= 3, SESSIONS
    events = Counter(step["event"]["hook_event_name"] for path in SESSIONS
                     for step in read_jsonl(path))
    for name in ("UserPromptSubmit", "PreToolUse", "PostToolUse"):
        assert events[name], f"no session has a {name} step"
    labels = Counter(step["label"] for path in SESSIONS for step in read_jsonl(path))
    assert labels["safe"] and labels["unsafe"], labels


@pytest.mark.parametrize("path", SESSIONS, ids=[p.stem for p in SESSIONS])
def test_session_is_well_formed(path: Path) -> None:
    """Steps count up from 1; one session; every step a payload; labels agree; every
    PostToolUse answers an earlier PreToolUse of the same tool call; the session opens with
    the user's prompt."""
    steps = read_jsonl(path)
    assert steps, "empty session"
    allowed = {"step", "label", "expected", "event", "category", "note", "id", "context"}
    problems = []
    pre: dict[str, dict[str, Any]] = {}
    for i, step in enumerate(steps, 1):
        where = f"{path.name} step {step.get('step')}"
        missing = {"step", "label", "expected", "event"} - step.keys()
        if missing or step.keys() - allowed:
            problems.append(f"{where}: missing {sorted(missing)}, extra "
                            f"{sorted(step.keys() - allowed)}")
            continue
        if step["step"] != i:
            problems.append(f"{where}: steps must be 1, 2, 3, ... (expected {i})")
        problems += [f"{where}: {err}" for err in label_errors(step)]
        if step["label"] == "unsafe" and "category" not in step:
            problems.append(f"{where}: an unsafe step names its category")
        ev = step["event"]
        problems += [f"{where}: {err}" for err in payload_errors(ev)]
        if ev.get("session_id") != steps[0]["event"].get("session_id"):
            problems.append(f"{where}: another session_id")
        name = ev.get("hook_event_name")
        if name == "PreToolUse":
            pre[ev["tool_use_id"]] = ev
        elif name in ("PostToolUse", "PostToolUseFailure"):
            before = pre.get(ev.get("tool_use_id", ""))
            if before is None or before["tool_input"] != ev["tool_input"]:
                problems.append(f"{where}: {name} without its PreToolUse")
            if step["expected"] != "allow":
                problems.append(f"{where}: the tool already ran; label the PreToolUse instead")
    assert not problems, "\n".join(problems)
    assert steps[0]["event"]["hook_event_name"] == "UserPromptSubmit"


# ------------------------------------------------------------------------ transcripts


def test_there_are_enough_transcripts() -> None:
    assert len(TRANSCRIPTS) >= 3, TRANSCRIPTS


def _iso(stamp: Any) -> datetime:
    assert isinstance(stamp, str) and stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript_is_claude_code_format(path: Path) -> None:
    """user/assistant lines chained by uuid/parentUuid, one content block per assistant line
    (lines of one response share message.id and requestId), tool results that answer earlier
    tool_use blocks, one sessionId, ISO timestamps that never go back."""
    lines = read_jsonl(path)
    session = {line.get("sessionId") for line in lines}
    assert len(session) == 1 and UUID.match(str(next(iter(session)))), session
    seen: set[str] = set()
    tool_uses: dict[str, str] = {}
    answered: set[str] = set()
    requests: dict[str, str] = {}
    kinds: Counter[str] = Counter()
    last = None
    for number, line in enumerate(lines, 1):
        where = f"{path.name}:{number}"
        kind = line.get("type")
        assert isinstance(kind, str), f"{where}: no type"
        kinds[kind] += 1
        stamp = line.get("timestamp")
        if stamp is not None:
            now = _iso(stamp)
            # Claude Code stamps attachments a little before the prompt they follow, so
            # only the conversation itself must move forward.
            if kind in ("user", "assistant"):
                assert last is None or now >= last, f"{where}: timestamp goes back"
                last = now
        if kind not in ("user", "assistant", "system", "attachment", "progress"):
            continue
        assert UUID.match(line.get("uuid", "")), f"{where}: uuid"
        parent = line.get("parentUuid")
        assert parent is None or parent in seen, f"{where}: parentUuid not an earlier line"
        assert (parent is None) == (not seen), f"{where}: only the first line is the root"
        seen.add(line["uuid"])
        for key in ("cwd", "sessionId", "version", "userType", "isSidechain"):
            assert key in line, f"{where}: no {key}"
        if kind not in ("user", "assistant"):
            continue
        message = line.get("message")
        assert isinstance(message, dict) and message.get("role") == kind, f"{where}: message"
        content = message["content"]
        if kind == "assistant":
            assert message["id"].startswith("msg_") and len(content) == 1, where
            assert requests.setdefault(message["id"], line["requestId"]) == line["requestId"]
            block = content[0]
            if block["type"] == "tool_use":
                assert TOOL_USE_ID.match(block["id"]) and block["id"] not in tool_uses, where
                assert isinstance(block["input"], dict), f"{where}: tool_use input"
                # The model may write relative paths; Claude Code expands them for hooks.
                required = TOOL_INPUTS.get(block["name"], ({}, {}))[0]
                bad = [k for k, typ in required.items()
                       if not isinstance(block["input"].get(k), typ)]
                assert not bad, f"{where}: {block['name']} input lacks {bad}"
                tool_uses[block["id"]] = line["uuid"]
                kinds["tool_use"] += 1
        elif isinstance(content, list):
            for block in content:
                assert block["type"] == "tool_result", where
                tid = block["tool_use_id"]
                assert tid in tool_uses and tid not in answered, f"{where}: result of what?"
                assert line.get("sourceToolAssistantUUID") == tool_uses[tid], where
                assert "toolUseResult" in line, f"{where}: no toolUseResult"
                answered.add(tid)
                kinds["tool_result"] += 1
        else:
            assert isinstance(content, str) and content.strip(), f"{where}: empty prompt"
            kinds["prompt"] += 1
    for kind in ("user", "assistant", "tool_use", "tool_result", "prompt"):
        assert kinds[kind], f"{path.name}: no {kind} line"
    assert answered == set(tool_uses), f"{path.name}: tool calls without a result"


@pytest.mark.skipif(not REAL_TRANSCRIPT.is_file(), reason=f"{REAL_TRANSCRIPT} not found (lives "
                    "outside this project, in ../shared/reference/)")
def test_transcript_check_accepts_a_real_claude_code_transcript() -> None:
    """The format check above is no stricter than Claude Code itself (2.1.197 capture)."""
    test_transcript_is_claude_code_format(REAL_TRANSCRIPT)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript_labels_cover_every_tool_call(path: Path) -> None:
    """`<name>.labels.json` labels exactly the transcript's tool_use ids."""
    labels_path = path.with_name(path.stem + ".labels.json")
    assert labels_path.is_file(), f"no {labels_path.name}"
    labels = json.loads(labels_path.read_text(encoding="utf-8"))
    assert labels["transcript"] == path.name
    lines = read_jsonl(path)
    assert labels["session_id"] == lines[0]["sessionId"]
    ids = {b["id"] for line in lines if line.get("type") == "assistant"
           for b in line["message"]["content"] if b["type"] == "tool_use"}
    assert set(labels["tool_uses"]) == ids
    problems = [f"{tid}: {err}" for tid, lab in labels["tool_uses"].items()
                for err in label_errors(lab)]
    assert not problems, problems


def test_transcripts_include_unsafe_and_safe_tool_calls() -> None:
    labels = Counter(lab["label"] for path in TRANSCRIPTS
                     for lab in json.loads(path.with_name(path.stem + ".labels.json")
                                           .read_text(encoding="utf-8"))["tool_uses"].values())
    assert labels["safe"] and labels["unsafe"], labels


# ------------------------------------------------------------------------ documentation


def test_readme_and_sources_document_the_datasets() -> None:
    readme = (REPO / "evals" / "README.md").read_text(encoding="utf-8")
    for name in sorted(CATEGORIES):
        assert f"`{name}`" in readme, f"evals/README.md does not list category {name}"
    for term in ("public-dev.jsonl", "user_prompt", "tool_use_id", "labels.json"):
        assert term in readme, term
    sources = (DATASETS / "SOURCES.md").read_text(encoding="utf-8")
    for term in ("RedCode", "R-Judge", "ToolEmu", "AgentDojo", "destructive_command_guard",
                 "Apache-2.0"):
        assert term in sources, term
