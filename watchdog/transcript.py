"""Reading Claude Code transcript records: the one definition of "the user's prompt".

Used by the hook when it builds a judge request (the user's recent prompts, read from the
transcript's tail) and by the eval harness when it rebuilds a session's hook events. A real
prompt is a `user` line that is not injected text (`isMeta`), not a tool result, and not a slash
command's or an interruption's bookkeeping. Format: harness-protocols.md §1.6.
"""

from __future__ import annotations

from typing import Any

NOT_PROMPTS = ("<command-", "<local-command-", "[Request interrupted by user")


def text(content: Any) -> str:
    """The text of a message's content (a string, or text blocks joined by newlines)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b["text"] for b in content if isinstance(b, dict)
                         and b.get("type") == "text" and isinstance(b.get("text"), str))
    return ""


def message(rec: dict[str, Any]) -> dict[str, Any]:
    """A record's `message` object; {} when it is absent or not an object (a damaged line)."""
    value = rec.get("message")
    return value if isinstance(value, dict) else {}


def blocks(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The content blocks of a record's message (none when the content is a string)."""
    content = message(rec).get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def user_prompt(rec: Any) -> str | None:
    """The user's prompt on this record, or None for meta text, tool results and commands."""
    if not isinstance(rec, dict) or rec.get("type") != "user" or rec.get("isMeta"):
        return None
    if rec.get("toolUseResult") is not None:
        return None
    if any(b.get("type") == "tool_result" for b in blocks(rec)):
        return None
    prompt = text(message(rec).get("content"))
    if not prompt.strip() or prompt.lstrip().startswith(NOT_PROMPTS):
        return None
    return prompt
