"""Verdict: what the judge model decided about one escalated event, and the strict parser that
turns the model's reply into one.

The model's reply is untrusted text, so `parse_verdict` accepts exactly one JSON object (bare,
or in one ```json fence) with exactly the keys below, and raises `JudgeError` for anything
else: prose around the object, two objects, a missing or extra key, a wrong type, an
out-of-range confidence. A reply that is not a verdict is a failure, never "looks fine".

`unknown` is a decision only watchdog itself makes (`Verdict.unknown`), when the judge could
not produce a verdict; a model answering "unknown" is rejected like any other invalid value.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from watchdog.errors import JudgeError

Decision = Literal["allow", "ask", "add_context", "warn", "unknown"]
MODEL_DECISIONS: tuple[str, ...] = ("allow", "ask", "add_context", "warn")
MAX_TEXT_CHARS = 2000

_Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)
]
_FENCE = re.compile(r"\A```[ \t]*(?:json)?[ \t]*\r?\n(?P<body>.*?)\r?\n?[ \t]*```\Z",
                    re.DOTALL | re.IGNORECASE)
_MAX_ERRORS_SHOWN = 3
_MAX_KEY_SHOWN = 40  # a reply's keys are the model's text: the error message quotes only this


class Verdict(BaseModel):
    """One judgement. On `ask`, `question` is what to ask the human: the reason when omitted."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    decision: Decision
    reason: _Text
    question: _Text | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]

    @classmethod
    def unknown(cls, reason: str) -> Verdict:
        """The judge failed to decide: the caller logs it and delivers it as a warning."""
        text = reason.strip()[:MAX_TEXT_CHARS] or "the judge gave no verdict"
        return cls(decision="unknown", reason=text, confidence=0.0)

    @model_validator(mode="before")
    @classmethod
    def _question_defaults_to_reason(cls, data: Any) -> Any:
        if (isinstance(data, dict) and data.get("decision") == "ask"
                and data.get("question") is None and isinstance(data.get("reason"), str)):
            return {**data, "question": data["reason"]}
        return data


def _shown(key: str) -> str:
    """A key from the reply, quoted (newlines escaped) and cut short for an error message."""
    text = repr(key[:_MAX_KEY_SHOWN])
    return text + "..." if len(key) > _MAX_KEY_SHOWN else text


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise JudgeError(f"judge reply repeats the key {_shown(key)}")
        seen[key] = value
    return seen


def _reject_constant(name: str) -> Any:
    raise JudgeError(f"judge reply contains {name}, which is not valid JSON")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:_MAX_ERRORS_SHOWN]:
        where = ".".join(str(p) for p in err["loc"]) or "reply"
        if err["type"] == "missing":
            parts.append(f"missing key {_shown(where)}")
        elif err["type"] == "extra_forbidden":
            parts.append(f"unexpected key {_shown(where)}")
        else:
            parts.append(f"{where}: {err['msg']}")  # a field of ours: no need to quote it
    more = len(exc.errors()) - _MAX_ERRORS_SHOWN
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_verdict(text: str) -> Verdict:
    """Parse a model reply into a Verdict, or raise JudgeError saying what was wrong with it."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group("body").strip()
    if not body:
        raise JudgeError("judge reply is empty; expected one JSON object")
    if not body.startswith("{"):
        raise JudgeError("judge reply is not a JSON object (text before or instead of '{')")
    try:
        data = json.loads(body, object_pairs_hook=_reject_duplicates,
                          parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            raise JudgeError("judge reply has text after the JSON object") from None
        raise JudgeError(f"judge reply is not valid JSON: {exc.msg} at char {exc.pos}") from None
    except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
        raise JudgeError(f"judge reply is not usable JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):  # pragma: no cover - guarded by the '{' check above
        raise JudgeError("judge reply is not a JSON object")
    if data.get("decision") == "unknown":
        raise JudgeError(f"decision: 'unknown' is not allowed; answer one of "
                         f"{', '.join(MODEL_DECISIONS)}")
    try:
        return Verdict.model_validate(data)
    except ValidationError as exc:
        raise JudgeError(f"judge reply is not a verdict: {_describe(exc)}") from None
