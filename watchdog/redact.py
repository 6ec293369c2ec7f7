"""Secret redaction: the last step before agent data leaves the process.

Tool inputs carry whatever the agent touched: `.env` files, `curl -H "Authorization: ..."`,
connection strings, keys pasted into prompts, presigned URLs, webhook URLs. An escalated event
is queued in Redis, sent to the judge's LLM provider and logged, Cupcake's watchdog prompt is
built from the preprocessed input, and eval reports quote events; none of them may receive a
credential, so everything that leaves goes through `redact()` first. A secret becomes
`[REDACTED:<kind>]` and the text around it stays, so the judge still reads
`curl -H "Authorization: Bearer [REDACTED:bearer-token]"` or
`https://discord.com/api/webhooks/123/[REDACTED:discord-webhook]`.

Where secrets are found is watchdog/secret_patterns.py: provider formats (AWS, GitHub, GitLab,
Slack, Stripe, OpenAI, Anthropic, Google, npm, PyPI, Hugging Face, Docker Hub, Vault, ...),
JWTs, private key blocks, URL userinfo (also in URLs turned into paths), `Authorization` and
`Cookie` headers, signed-URL and keyed query parameters, webhook URLs, credentials given as
command arguments (`--password x`, `-p x` for the tools where it means a password, `curl -u`,
`mysql -px`, `aws configure set NAME x`, here-strings and `echo x |` into `--password-stdin`),
values whose name says secret (`export DB_PASSWORD=x`, `PGPASSWORD=x`, `API_KEY="x"`,
`"password": "x"`, `.env` lines, to the end of the value even with brackets in it), quoted
high-entropy strings, and in `redact()` every string under a secret-named key.

Left alone (watchdog/secret_names.py): placeholders, documented examples, references and masks
(`AKIAIOSFODNN7EXAMPLE`, `your_api_key_here`, `<your-token>`, `change-me`, `$API_KEY`,
`${{ secrets.X }}`, `sk-****abcd`), which the judge needs to read as what they are.

Not covered: a secret nobody can recognise, i.e. in no known format, with no secret-sounding name
next to it and not in quotes (`./deploy f8Kd93jQ...`); a quoted random string shorter than about
32 characters without such a name; a letters-only value given to a lowercase name in code
(`password=hunter`, which reads as a variable); the words after the first in an unquoted YAML
value (`password: two words`). Redaction fails closed (an internal error withholds the whole
string) and is idempotent: redacting the output again changes nothing.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

from watchdog.secret_names import is_placeholder, secret_kind
from watchdog.secret_patterns import finders as _finders

__all__ = ["redact", "redact_text", "secret_kind"]

FAILED = "[REDACTED:unscannable]"
TOO_DEEP = "[REDACTED:too-deep]"
MAX_DEPTH = 200  # deeper than any JSON an agent sends; also ends a cyclic structure
_MAX_PASSES = 8  # two in practice; more only for contrived input
MARKER = re.compile(r"\[REDACTED:[a-z0-9-]+\]")
_ALWAYS = frozenset({"private-key"})  # a key block is a key, whatever words it holds


# -- redaction --------------------------------------------------------------------------------


def _redact_once(text: str) -> str:
    """One scan. Markers already in the text stay as they are (a span is cut around them);
    overlapping spans become one marker for their union, so no part of a secret survives."""
    marks = [m.span() for m in MARKER.finditer(text)]
    mark_ends = [end for _, end in marks]
    spans: list[tuple[int, int, int, str]] = []
    for rank, finder in enumerate(_finders()):
        for start, end, kind in finder(text):
            if kind not in _ALWAYS and is_placeholder(text[start:end].strip("\"'")):
                continue
            i = bisect.bisect_right(mark_ends, start)  # the first marker ending after start
            if i == len(marks) or marks[i][0] >= end:
                if end > start:
                    spans.append((start, end, rank, kind))
                continue
            while i < len(marks) and marks[i][0] < end:  # keep the pieces that hold a word
                if _has_alnum(text, start, marks[i][0]):
                    spans.append((start, marks[i][0], rank, kind))
                start = max(start, marks[i][1])
                i += 1
            if _has_alnum(text, start, end):
                spans.append((start, end, rank, kind))
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    pos = 0
    cur_start, cur_end, cur_rank, cur_kind = spans[0]
    for start, end, rank, kind in [*spans[1:], (len(text) + 1, 0, 0, "")]:
        if start < cur_end:
            if rank < cur_rank:
                cur_rank, cur_kind = rank, kind
            cur_end = max(cur_end, end)
            continue
        out += [text[pos:cur_start], f"[REDACTED:{cur_kind}]"]
        pos = cur_end
        cur_start, cur_end, cur_rank, cur_kind = start, end, rank, kind
    out.append(text[pos:])
    return "".join(out)


def _has_alnum(text: str, start: int, end: int) -> bool:
    return any(c.isalnum() for c in text[start:end])


def redact_text(text: str) -> str:
    """`text` with each secret found replaced by `[REDACTED:<kind>]`; never raises.

    Scans again until nothing changes (one pass when nothing is found, usually two otherwise),
    so the result is a fixed point. On an internal error the whole text is withheld.
    """
    try:
        if not isinstance(text, str):
            text = str(text)
        for _ in range(_MAX_PASSES):
            redacted = _redact_once(text)
            if redacted == text:
                break
            text = redacted
        return text
    except Exception:
        return FAILED


def redact(value: Any) -> Any:
    """A copy of JSON-like `value` with every string redacted, and each non-empty string under
    a secret-named key (`password`, `GITHUB_TOKEN`, `apiKey`, `Authorization`, ...) replaced
    whole. Tuples become lists; other values come back as they are. Never raises."""
    try:
        return _redact_value(value, 0)
    except Exception:
        return FAILED


def _redact_value(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                out[key] = _redact_value(item, depth + 1)
                continue
            new_key = redact_text(key)
            kind = secret_kind(key) or secret_kind(new_key)
            if (kind and isinstance(item, str) and item and not MARKER.fullmatch(item)
                    and not is_placeholder(item)):
                out[new_key] = f"[REDACTED:{kind}]"
            else:
                out[new_key] = _redact_value(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_redact_value(item, depth + 1) for item in value]
    return value
