"""One hook event, from the bytes the agent sent to the answer it reads.

    bytes -> harness.parse -> Event -> evaluation.evaluate -> Decision (the policy's)
          -> escalation (with --watchdog) -> degrade (capability matrix) -> harness.render

The command hook, `serve` and the evals all call `run`; a face only reads its input and writes
its output. Everything that can go wrong is caught here once. A WatchdogError or an unexpected
exception gives one line for stderr (never a traceback: that goes to the log) and the
configured fail mode: `open` answers with no decision plus a message the user sees; `closed`
denies gating events (tool calls, prompts) with the reason. When the event itself could not be
read, failing closed exits 2, the only answer every harness honours without knowing the event.
Whatever fails after the policy decided, the answer is at least the policy's decision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from watchdog import config, coverage, dirs, harnesses, logs
from watchdog.decisions import DENY, STRENGTH, Decision
from watchdog.errors import ConfigError, EventError, WatchdogError
from watchdog.evaluation import evaluate
from watchdog.events import Event
from watchdog.harnesses.base import Harness, Reply
from watchdog.harnesses.degrade import degrade
from watchdog.trace import Trace

if TYPE_CHECKING:  # annotations only: the TypedDicts cost ~2 ms to create
    from watchdog.policies.manifest import Manifest


EXIT_OK, EXIT_USAGE, EXIT_BLOCK = 0, 1, 2


class Result(NamedTuple):
    stdout: str
    stderr: list[str]
    exit_code: int
    decision: Decision | None
    trace: list[str]
    degradations: tuple[str, ...] = ()  # what the harness could not express (degrade.py)


def read_event(data: bytes) -> Any:
    text = data.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise EventError(
            "stdin was empty; the agent sent no event. If several hooks share this event, "
            "Claude Code may have given this one an empty stdin (anthropics/claude-code#42702)."
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventError(f"stdin is not valid JSON ({exc.msg} at char {exc.pos}).") from exc
    except RecursionError as exc:
        raise EventError("stdin is JSON nested too deeply to be a hook event.") from exc
    if "\\ud" in text or "\\uD" in text:  # a lone surrogate escape (JSON.stringify of a
        value = _no_surrogates(value)      # broken string) can't be encoded as UTF-8 later
    return value


def _no_surrogates(value: Any) -> Any:
    """Replace lone surrogates with U+FFFD, so logs, the answer and Rego get valid UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, list):
        return [_no_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    return value


def _record_session(event: Event, manifest: Manifest, settings: config.Settings,
                    trace: Trace) -> None:
    """Session taints for `input.watchdog.session`, kept only when a policy reads them."""
    scopes = manifest.get("scopes", {}).values()
    if event.norm.kind != "post_tool" or not any(s.get("reads_session") for s in scopes):
        return
    from watchdog import session

    added = session.record(settings.state_dir, event)
    if added:
        trace(f"session taints: {', '.join(sorted(added))}")


def _escalate(event: Event, decision: Decision, manifest: Manifest,
              settings: config.Settings, trace: Trace, harness: Harness) -> Decision:
    """With --watchdog: only when this event escalates or the session is owed a verdict does
    the escalation code (redis, rq) load."""
    from watchdog.escalation import pending

    wants = bool(decision.escalations) and not decision.blocking
    if not wants and not pending.has_pending(settings.state_dir, event.session_id):
        return decision
    from watchdog.escalation import escalate

    return escalate.run(event, decision, manifest, settings, trace,
                        deliver=harness.capabilities(event.name).context)


def _describe(exc: BaseException, settings: config.Settings) -> str:
    """The user's one line for a failure: ours say what to do; a bug points at the log."""
    if isinstance(exc, WatchdogError):
        return str(exc)
    return (f"internal error ({type(exc).__name__}: {exc}). The traceback is in "
            f"{logs.log_path(settings.state_dir)}; please report it")


def _degraded(decision: Decision, what: str, exc: BaseException, settings: config.Settings,
              event: Event, trace: Trace) -> Decision:
    """A step after the policy decided failed: keep `decision`, say so, log it (with the
    traceback when it is a bug)."""
    message = _describe(exc, settings)
    fields: dict[str, Any] = {"message": message, "step": what, "session_id": event.session_id,
                              "hook_event": event.name, "verb": decision.verb}
    if not isinstance(exc, WatchdogError):
        import traceback

        fields["traceback"] = traceback.format_exc()
    kind = exc.kind if isinstance(exc, WatchdogError) else "internal_error"
    logs.write(settings.state_dir, "error", kind, **fields)
    trace(f"{what} failed ({kind}): {exc}; keeping the policy decision {decision.verb}")
    note = f"watchdog: {what} failed, policy decision only: {message}"
    return decision._replace(notices=decision.notices + (note,))


def _after_policy(event: Event, decision: Decision, manifest: Manifest,
                  settings: config.Settings, trace: Trace, harness: Harness,
                  escalate: bool) -> Decision:
    """Everything after the policy decided (session taints, escalation, delivery): nothing
    here may lose or weaken that decision, whatever fails (Redis, the state dir, a bug)."""
    try:
        _record_session(event, manifest, settings, trace)
    except Exception as exc:  # noqa: BLE001 - the policy decision stands
        decision = _degraded(decision, "recording session taints", exc, settings, event, trace)
    if not escalate:
        return decision
    policy = decision
    try:
        return _escalate(event, decision, manifest, settings, trace, harness)
    except Exception as exc:  # noqa: BLE001 - the policy decision stands
        return _degraded(policy, "the escalation step", exc, settings, event, trace)


def _recall_twin(settings: config.Settings, key: str, trace: Trace) -> Decision | None:
    """The decision already made for this action's twin event (Cursor), if any. Each twin
    still evaluates its own policies (a Cupcake policy may route on one twin's name only);
    the twin's decision only adds to it, and spares a second escalation."""
    from watchdog import twins

    try:
        found = twins.recall(settings.state_dir, key)
    except Exception:  # noqa: BLE001 - no twin: this event escalates itself, never weaker
        return None
    if found is not None:
        trace(f"twin event decided {found.verb} for this action")
    return found


def _stronger(own: Decision, twin: Decision) -> Decision:
    """The stronger of this event's decision and its twin's (this event's on a tie)."""
    if STRENGTH.get(twin.verb, 0) > STRENGTH.get(own.verb, 0):
        return twin._replace(notices=own.notices + twin.notices)
    return own


def _escalated_by_twin(own: Decision, twin: Decision) -> bool:
    """Did the twin already escalate everything this event would? (Then its verdict stands
    for both and no second job is sent.)"""
    wanted = {e.rule_id for e in own.escalations}
    return bool(wanted) and wanted <= set(twin.escalated)


def _defer_ask_to_twin(harness: Harness, event: Event, decision: Decision,
                       trace: Trace) -> Decision:
    """An ask on an event that cannot ask but has a twin that can (Cursor's preToolUse of a
    shell or MCP call, whose beforeShellExecution asks): allow here, and let the twin ask.
    Degrading it to a deny here would block the call before the person is ever asked."""
    if decision.verb != "ask" or harness.capabilities(event.name).ask:
        return decision
    trace("ask deferred to the twin event, which can ask the person")
    return decision._replace(verb="allow", reason=None)


def _remember_twin(settings: config.Settings, key: str, decision: Decision, event: Event,
                   trace: Trace) -> Decision:
    from watchdog import twins

    try:
        twins.remember(settings.state_dir, key, decision)
    except Exception as exc:  # noqa: BLE001 - the twin is then evaluated again: never weaker
        return _degraded(decision, "keeping the decision for the twin event", exc, settings,
                         event, trace)
    return decision


def _render(harness: Harness, decision: Decision, policy: Decision, event: Event,
            settings: config.Settings, trace: Trace) -> Reply:
    """The harness's answer, degraded to what this event can express (each change logged);
    if the merged decision cannot be rendered, the policy's is."""
    try:
        return _degrade_and_render(harness, decision, policy, event, settings, trace)
    except Exception as exc:  # noqa: BLE001 - fall back to what the policy said
        if decision is policy:
            raise
        import traceback

        logs.write(settings.state_dir, "error", "internal_error", step="render",
                   message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        return _degrade_and_render(harness, policy, policy, event, settings, trace)


def _degrade_and_render(harness: Harness, decision: Decision, policy: Decision, event: Event,
                        settings: config.Settings, trace: Trace) -> Reply:
    caps = harness.capabilities(event.name)
    said, notes = degrade(decision, policy, caps, harness.name, event.name, event.norm.kind)
    trace.degradations.extend(notes)
    for note in notes:
        trace(f"degraded: {note}")
        logs.write(settings.state_dir, "info", "degraded", harness=harness.name,
                   hook_event=event.name, session_id=event.session_id, change=note,
                   verb=decision.verb, rule_ids=list(decision.rule_ids))
    return harness.render(said, event)


def _fail(
    harness: Harness | None, event: Event | None, settings: config.Settings,
    exc: BaseException, policy: Decision | None = None,
) -> tuple[Reply, Decision | None]:
    """Apply the fail mode to a failure; returns the answer and the decision. A policy that
    had already blocked keeps blocking, whatever the fail mode."""
    message = _describe(exc, settings)
    blocked = policy is not None and policy.blocking
    if settings.on_error == "closed" or blocked or getattr(exc, "fail_closed", False):
        reason = f"watchdog failed closed: {message}"
        if blocked and policy is not None and policy.reason:
            reason = f"{policy.reason} ({reason})"
        if harness is None or event is None:
            return Reply("", EXIT_BLOCK), None
        if harness.gates(event):
            decision = Decision(DENY, reason, ("WATCHDOG-FAIL-CLOSED",), severity="HIGH")
            return harness.render(decision, event), decision
    if harness is None:
        harness = harnesses.get("claude")
    return harness.warning(f"not working, no decision made: {message}", event), None


def run(
    harness_name: str,
    stdin: bytes,
    env: Mapping[str, str] | None = None,
    policy_dir: str | None = None,
    escalate: bool = False,
    explain: bool = False,
) -> Result:
    """Process one event end to end. Never raises; the Result says what to print and exit."""
    env = os.environ if env is None else env
    trace = Trace(explain)
    stderr: list[str] = []
    harness: Harness | None = None
    event: Event | None = None
    decision: Decision | None = None
    policy: Decision | None = None
    try:
        settings = config.load(env, policy_dir=policy_dir)
    except ConfigError as exc:
        on_error = "closed" if env.get("WATCHDOG_ON_ERROR", "").endswith("closed") else "open"
        settings = config.Settings(
            on_error=on_error, state_dir=dirs.state_dir(env), cache_dir=dirs.cache_dir(env)
        )
        config_error: ConfigError | None = exc
    else:
        config_error = None
    try:
        if config_error is not None:
            raise config_error
        harness = harnesses.get(harness_name)
        event = harness.parse(read_event(stdin))
        trace(f"event {event.label} session={event.session_id or '-'} cwd={event.cwd}")
        decision, warnings, manifest = evaluate(event, settings, trace, escalate)
        policy = decision
        twin_key = harness.twin_key(event)
        twin = _recall_twin(settings, twin_key, trace) if twin_key else None
        if twin is not None and _escalated_by_twin(decision, twin):
            decision = _stronger(decision, twin)  # the twin escalated: its verdict is in twin
        else:
            decision = _after_policy(event, decision, manifest, settings, trace, harness,
                                     escalate)
            if twin is not None:
                decision = _stronger(decision, twin)
        if twin_key:
            decision = _remember_twin(settings, twin_key, decision, event, trace)
            decision = _defer_ask_to_twin(harness, event, decision, trace)
        if config.has_unknown_env(env):
            decision = coverage.misspelt_env(env, event, settings, decision)
        for w in warnings:
            stderr.append(f"watchdog: warning: {w}")
            logs.write(settings.state_dir, "warning", "cache_warning", message=w)
        reply = _render(harness, decision, policy, event, settings, trace)
    except Exception as exc:  # noqa: BLE001 - the one place every failure is caught
        reply, decision = _fail(harness, event, settings, exc, policy)
        kind = exc.kind if isinstance(exc, WatchdogError) else "internal_error"
        if isinstance(exc, WatchdogError):
            stderr.append(f"watchdog: {exc}")
        else:
            stderr.append(
                f"watchdog: internal error: {type(exc).__name__}: {exc} "
                f"(traceback in {logs.log_path(settings.state_dir)})"
            )
        fields: dict[str, Any] = {
            "harness": harness_name,
            "message": str(exc),
            "on_error": settings.on_error,
            "hook_event": event.name if event else None,
            "session_id": event.session_id if event else None,
        }
        if getattr(exc, "problems", None):
            fields["problems"] = exc.problems  # type: ignore[attr-defined]
        if not isinstance(exc, WatchdogError):
            import traceback

            fields["traceback"] = traceback.format_exc()
        logs.write(settings.state_dir, "error", kind, **fields)
        trace(f"failed ({kind}): {exc}; on_error={settings.on_error}")
    if settings.log_decisions and event is not None and decision is not None:
        logs.write(
            settings.state_dir, "info", "decision",
            harness=event.harness, session_id=event.session_id, hook_event=event.name,
            tool=event.tool_name, verb=decision.verb, rule_ids=list(decision.rule_ids),
            reason=(decision.reason or "")[:500] or None, latency_ms=round(trace.total_ms(), 2),
            escalations=[e.rule_id for e in decision.escalations],
        )
    trace(f"total {trace.total_ms():.2f} ms")
    if reply.stderr:
        stderr.append(reply.stderr)
    return Result(reply.stdout, stderr, reply.exit_code, decision, trace.lines,
                  tuple(trace.degradations))
