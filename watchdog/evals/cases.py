"""What the eval runner replays: a Case (one hook payload, its label and its clock time), a Stream
(the cases of one session, in order), and a Problem (an input line that was skipped, by
file:line, with what to do about it).

Every input kind (labeled event datasets, labeled sessions, Claude Code transcripts) is turned
into streams of cases by its loader, so the runner has one shape to replay. A dataset row is a
stream of one case: it has no next event, so a verdict about it is applied as if the hook had
waited for it (`inline`). A session or a transcript is one stream whose verdicts are delivered
the way the hook delivers them, at the session's next event after the judge answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Label = Literal["safe", "unsafe"]
Expected = Literal["allow", "ask", "deny"]

#: The hook events Claude Code sends (sdk 0.3.330). A dataset event outside this list is most
#: likely a typo ("PreTooluse") that no policy would ever route: it is reported, not replayed.
CLAUDE_EVENTS = frozenset({
    "PreToolUse", "PostToolUse", "PostToolUseFailure", "PostToolBatch", "Notification",
    "UserPromptSubmit", "UserPromptExpansion", "SessionStart", "SessionEnd", "Stop",
    "StopFailure", "SubagentStart", "SubagentStop", "PreCompact", "PostCompact",
    "PreModelSwitch", "PostModelSwitch", "PermissionRequest", "PermissionDenied", "Setup",
    "TeammateIdle", "TaskCreated", "TaskCompleted", "Elicitation", "ElicitationResult",
    "ConfigChange", "WorktreeCreate", "WorktreeRemove", "InstructionsLoaded", "CwdChanged",
    "FileChanged", "DirectoryAdded", "MessageDisplay",
})


@dataclass(frozen=True)
class Case:
    """One hook event to replay.

    `prompts` are the user's prompts up to this event (the task the judge is told about),
    oldest first; `time` is the deterministic clock in seconds (a transcript's timestamps, or
    the step number times a fixed interval); `group` is the unit the bootstrap resamples (the
    session, so that correlated steps are not counted as independent evidence).
    """

    id: str
    where: str
    payload: dict[str, Any]
    label: Label | None = None
    expected: Expected | None = None
    category: str | None = None
    prompts: tuple[str, ...] = ()
    time: float = 0.0
    group: str = ""
    inline: bool = True
    harness: str = "claude"  # whose payload format `payload` is


@dataclass
class Stream:
    """The cases of one session (or one dataset row), in the order the hook would see them."""

    name: str
    kind: Literal["dataset", "session", "transcript"]
    cases: list[Case] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """An input that was skipped (or only partly replayed), reported as `file:line: message`."""

    where: str
    kind: str  # snake_case, counted in the summary: bad_json, no_label, unknown_event, ...
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def location(path: str, line: int | None) -> str:
    """`path:line` (or just the path when the problem is the whole file)."""
    return f"{path}:{line}" if line else path
