"""When an escalated event's verdict reaches the agent, and when it has gone stale: the rules
the hook (escalate.py, pending.py) and the offline evals (evals/runner.py) share.

Pure, and in the normalized vocabulary (`events.Action`), so every harness follows them:
* a verdict answers the event itself when it is cached, or arrives within the wait deadline of
  a `wait: true` escalation; otherwise it is owed and delivered at the session's next event
  that can carry context;
* a verdict on a write or an edit goes stale when the same file is edited again before it is
  delivered (the judge then judged content that is no longer there), and says so.
"""

from __future__ import annotations

from typing import Literal

from watchdog.events import Action

#: Tool classes whose action a later edit of the same file supersedes.
EDITING = frozenset({"write", "edit", "notebook"})
How = Literal["cache", "inline", "wait", "later"]


def touched_path(action: Action) -> str | None:
    """The file a write or edit changes (its first path), else None."""
    if action.tool_class not in EDITING or not action.paths:
        return None
    return action.paths[0]


def edits_file(action: Action) -> str | None:
    """The file this event is about to edit (a pre-tool write/edit), which makes a pending
    verdict on that same file stale; None for anything else."""
    return touched_path(action) if action.kind == "pre_tool" else None


def how_delivered(cached: bool, inline: bool, wait: bool, latency_s: float,
                  deadline_s: float) -> How:
    """How the verdict reaches the agent: at once (cache hit, or an inline judge), within the
    wait, or at a later event."""
    if cached:
        return "cache"
    if inline:
        return "inline"
    if wait and latency_s <= deadline_s:
        return "wait"
    return "later"
