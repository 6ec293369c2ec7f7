"""What the hook sends to the judge for one escalated event, built in the hook process.

The payload holds the event with secrets redacted, the user's recent prompts (the task, read
from the transcript's tail; never the agent's own text: the judge is reasoning-blind), why the
policies escalated and the decision so far (redacted too: a policy's reason may quote the
input), and the ids the worker, cache and budget need.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from typing import TYPE_CHECKING, Any

from watchdog.config import Settings
from watchdog.decisions import Decision, DecisionObject
from watchdog.errors import JudgeError
from watchdog.escalation import rubric
from watchdog.escalation.cache import cache_key
from watchdog.events import Event
from watchdog.redact import redact
from watchdog.transcript import user_prompt

if TYPE_CHECKING:  # annotations only: the TypedDicts cost ~2 ms to create
    from watchdog.policies.manifest import Manifest


TAIL_BYTES = 512 * 1024
MAX_PROMPTS = 5
_SEVERITY = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "MODERATE": 2, "LOW": 3}


def prompt_version(name: str) -> str:
    """The rubric template's hash: a changed prompt never reuses an old verdict."""
    try:
        return rubric.prompt_version(rubric.load_rubric(name))
    except JudgeError:
        return "missing"  # the worker reports the unknown rubric as an `unknown` verdict


def user_prompts(transcript_path: str | None, limit: int = MAX_PROMPTS) -> list[str]:
    """The user's last prompts from a Claude Code transcript (real prompts only, oldest first)."""
    if not transcript_path or not isinstance(transcript_path, str):
        return []  # an int would be opened as a file descriptor (and closed): agent data
    try:
        with open(transcript_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            # split at \n only: JSON.stringify leaves U+2028 and \x85 raw inside strings
            lines = fh.read().decode("utf-8", errors="replace").split("\n")
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return []
    prompts: list[str] = []
    for line in lines:
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            continue
        prompt = user_prompt(rec)
        if prompt is not None:
            prompts.append(prompt)
    return prompts[-limit:]


def job_id(key: str, prefix: str = "") -> str:
    """RQ job ids allow letters, digits, - and _ only; one job per cache key (in-flight dedup).
    RQ keeps jobs at `rq:job:<id>`, outside our key prefix, so the prefix goes into the id:
    two prefixes (teams, test runs) on one Redis never share a job."""
    return f"{zlib.crc32(prefix.encode()):08x}-{key.replace(':', '-')}"


def primary(escalations: tuple[DecisionObject, ...]) -> DecisionObject:
    """The most severe escalation picks the rubric."""
    return min(escalations, key=lambda e: _SEVERITY.get(e.severity.upper(), 4))


def _action_view(event: Event, raw: dict[str, Any]) -> dict[str, Any]:
    """The (redacted) event in the normalized vocabulary, for the cache key: the same action
    from any harness is the same key (for Claude Code this is the payload itself)."""
    action = event.norm
    view = dict(raw)
    view["hook_event_name"] = action.event
    if action.tool is not None:
        view["tool_name"] = action.tool
    if action.tool_input is not None:
        view["tool_input"] = redact(action.tool_input)
    return view


def build(event: Event, decision: Decision, manifest: Manifest,
          settings: Settings) -> dict[str, Any]:
    lead = primary(decision.escalations)
    raw = redact(event.raw)
    prompts = [str(p) for p in redact(user_prompts(event.raw.get("transcript_path")))]
    if not prompts and isinstance(event.raw.get("prompt"), str):
        prompts = [str(redact(event.raw["prompt"]))]
    bundle_hash = str(manifest.get("content_hash", ""))
    version = prompt_version(lead.rubric)
    view = _action_view(event, raw)  # the judge reads the call in one vocabulary, too
    key = cache_key(view, lead.rubric, version, settings.judge_model, bundle_hash)
    action = event.norm
    detail = action.command or (action.paths[0] if action.paths else None) or action.url or ""
    return {
        "v": 1,
        "key": key,
        "job_id": job_id(key, settings.redis_prefix),
        "request_id": uuid.uuid4().hex,
        "session_id": event.session_id,
        "harness": event.harness,
        "label": f"{event.label} {str(redact(str(detail)))[:80]}".strip(),
        "rubric": lead.rubric,
        "wait": any(e.wait for e in decision.escalations),
        "event": view,
        "user_prompts": prompts,
        "escalations": [  # a policy's reason may quote the input (sprintf in Rego)
            {"rule_id": e.rule_id, "reason": redact(e.reason), "severity": e.severity,
             "rubric": e.rubric, "wait": e.wait} for e in decision.escalations
        ],
        "policy_decision": {"verb": decision.verb, "reason": redact(decision.reason),
                            "rule_ids": list(decision.rule_ids)},
        "bundle_hash": bundle_hash,
        "prompt_version": version,
    }
