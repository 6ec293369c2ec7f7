"""The verdict record: what the judge (or a fallback) decided about one escalated event.

Written by the worker (`verdicts.judge_payload`, `jobs`), stored in Redis (the result key, the
verdict cache) as JSON, read back by the hook (`pending`, `escalate`), merged by
`decisions.merge_advisory`, and replayed by the evals. One TypedDict names every key once, so
mypy checks each of them; `total=False` because a fallback or a lost job carries fewer keys.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast


class Cut(TypedDict):
    shown: int  # characters of the tool call the judge saw
    total: int


class VerdictRecord(TypedDict, total=False):
    decision: str  # allow | add_context | warn | ask | unknown
    confidence: float
    reason: str
    question: str  # for ask: what to put to the person
    label: str  # the event it is about, for messages ("PreToolUse:Bash git push ...")
    model: str
    cost_usd: float | None
    latency_ms: float
    cached: bool  # came from the verdict cache
    stale: bool  # the file it judged was edited again before delivery
    path: str | None  # that file
    cut: Cut  # the judge saw only part of a long tool call
    budget: bool  # a budget fallback: no model was called
    budget_why: str
    missing: bool  # the job's result is gone (expired, lost worker)
    lost: bool  # the verdict never arrived, or arrived damaged
    error: str
    # Stamped by the worker when it stores the record (jobs._finish):
    rubric: str
    session_id: str
    judged_at: float
    recorded: bool  # evals: replayed from a recorded run, not judged now


def from_dump(value: dict[str, Any]) -> VerdictRecord:
    """A record built from a validated model dump (`Verdict.model_dump()`) plus our keys."""
    return cast(VerdictRecord, value)


def from_json(value: object) -> VerdictRecord | None:
    """A record read back from Redis (already JSON-decoded): ours when it is an object with a
    string `decision`; None for anything else (the caller says what that means)."""
    if isinstance(value, dict) and isinstance(value.get("decision"), str):
        return cast(VerdictRecord, value)
    return None
