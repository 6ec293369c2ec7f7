"""The harness protocol: what the pipeline needs from each agent's hook format.

A harness is one module holding one object that satisfies `Harness` (as rq makes a serializer
a `Protocol` with `dumps` and `loads`). The pipeline holds a `Harness` and never names a
harness's events or fields: `parse` turns a payload into an `Event` (native payload kept,
normalized `Action` added), `render` turns a `Decision` into the exact bytes and exit code the
agent reads, and `capabilities` says, per event, what the answer can express, so that
`degrade` (pure, in `harnesses/degrade.py`) can turn what cannot be said into what can, before
`render` sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from watchdog.decisions import Decision
from watchdog.errors import EventError
from watchdog.events import Event

if TYPE_CHECKING:  # the hook path imports this module: no pathlib, no collections.abc
    from collections.abc import Callable
    from pathlib import Path


def event_name(payload: Any, source: str, registered: str, run_from: str) -> str:
    """The payload's event name (`hook_event_name`, or `hookEventName`); EventError, saying
    what to do, for a payload that is not an object (`registered`: how to check the hook is
    installed) or that names no event (`run_from`: where the hook should run from)."""
    if not isinstance(payload, dict):
        raise EventError(f"expected a JSON object from {source}, got a JSON "
                         f"{type(payload).__name__}. {registered}")
    name = payload.get("hook_event_name", payload.get("hookEventName"))
    if not isinstance(name, str) or not name:
        raise EventError(f"the event has no hook_event_name. Run this hook from {run_from}, or "
                         "use the right --harness for this agent.")
    return name


class Reply(NamedTuple):
    """What a hook process prints and how it exits (`serve` returns `stdout` as the body)."""

    stdout: str
    exit_code: int = 0
    stderr: str = ""


class Capabilities(NamedTuple):
    """What one event's answer can express on one harness (the capability matrix's row)."""

    block: bool = False  # stop the action (deny a tool call, reject a prompt)
    ask: bool = False  # ask the person before the action runs
    modify: bool = False  # rewrite the tool's input
    context: bool = False  # text the model reads
    user_message: bool = False  # text the person sees
    block_stop: bool = False  # keep the agent from stopping (Stop events)
    halt: bool = False  # end the agent's turn or session
    #: How a policy's ask is said where no ask exists: "deny" (a person must approve) or
    #: "context" (the reason goes to the model, as Cupcake renders Claude Code's prompt events).
    ask_fallback: str = "deny"
    #: Where a modify cannot rewrite the input, is its reason passed on as context ("context")
    #: or dropped ("drop", as Cupcake does on Claude Code's tool-result events)?
    modify_fallback: str = "context"


NOTHING = Capabilities()


class Facts(NamedTuple):
    """Harness-wide facts for the matrix and `doctor`."""

    timeout: float  # the hook's default timeout
    timeout_unit: str  # "s" or "ms", as the harness's config takes it
    async_hooks: bool  # can hooks run in the background
    allow_overrides: bool  # does one hook's explicit allow skip the others' / the prompt
    config: str  # where the hooks are configured
    tested_versions: str  # the versions the samples and tests were taken from
    binary: str = ""  # the agent's CLI, for `doctor`'s version check ("" when it has none)


class Setup(NamedTuple):
    """How `watchdog init` / `uninstall` register the hook in the harness's own config.

    The functions are pure edits of the config's JSON; `init.py` does the reading, the backup,
    the writing and the idempotency check, the same way for every harness."""

    #: (project, home, global) -> the config file to edit (`global`: the user-wide one).
    config_path: Callable[[Path, Path, bool], Path]
    #: (config, command, fail_closed) -> config with our hooks for every event we answer;
    #: running it on its own output changes nothing.
    add: Callable[[dict[str, Any], str, bool], dict[str, Any]]
    #: (config, is_ours) -> config without the hooks whose command `is_ours`, nothing else.
    remove: Callable[[dict[str, Any], Callable[[str], bool]], dict[str, Any]]
    #: (command, fail_closed) -> extra files to write, relative to the config file's folder
    #: (the OpenCode plugin); {} for harnesses configured by JSON alone.
    files: Callable[[str, bool], dict[str, str]] = lambda command, fail_closed: {}  # noqa: ARG005
    #: (project) -> a pre-tool shell event for `rm -rf ~` in the harness's format, and
    #: (stdout, exit code) -> is that answer a deny: `init` runs the written command once on
    #: it. None: the harness's hook cannot be run that way (init says so).
    sample: Callable[[Path], dict[str, Any]] | None = None
    denied: Callable[[str, int], bool] | None = None


class Harness(Protocol):
    """One agent's hook protocol."""

    name: str
    facts: Facts
    #: Native event name -> normalized kind, for the matrix and docs (unknown events: other).
    events: dict[str, str]

    @property
    def setup(self) -> Setup:
        """How init registers the hook (a property, so the harness may load it lazily)."""
        ...

    def parse(self, payload: Any) -> Event:
        """A decoded payload to an Event; EventError says what is wrong with it."""
        ...

    def render(self, decision: Decision, event: Event) -> Reply:
        """The exact answer for this event (already degraded to what it can express)."""
        ...

    def warning(self, message: str, event: Event | None) -> Reply:
        """Fail-open: no decision, and `message` shown to the person where possible."""
        ...

    def capabilities(self, event_name: str) -> Capabilities:
        """What this native event's answer can carry."""
        ...

    def gates(self, event: Event) -> bool:
        """Does failing closed on this event stop an action (rather than the session)?"""
        ...

    def twin_key(self, event: Event) -> str | None:
        """A key shared by two events the harness fires for the same action (Cursor's
        preToolUse and beforeShellExecution), so the second is answered from the first's
        decision; None for events that have no twin."""
        ...
