"""Event: the normalized hook event every harness maps onto.

A harness's `parse` fills the fields policies and routing need and keeps the whole payload in
`raw`, unknown fields included: harnesses add fields often, and Cupcake policies read the
payload as `input`, so nothing may be dropped. Event names are Claude Code's (PascalCase), the
names Cupcake's routing uses.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Event(NamedTuple):
    harness: str
    name: str  # hook_event_name as sent; unknown future events pass through unchanged
    session_id: str
    cwd: str
    raw: dict[str, Any]  # the payload as received
    tool_name: str | None = None
    tool_input: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """`PreToolUse:Bash` or `Stop`, for logs and traces."""
        return f"{self.name}:{self.tool_name}" if self.tool_name else self.name
