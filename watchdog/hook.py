"""One hook event: stdin to the harness's response on stdout, with the configured fail mode.

    stdin -> harness.parse -> Event -> routing -> engine.evaluate -> decisions.combine
          -> Decision -> harness.render -> stdout (+ one log record)

Everything that can go wrong is caught here once. A WatchdogError or an unexpected exception
gives one line on stderr (never a traceback: that goes to the log) and the configured fail
mode: `open` answers with no decision plus a `systemMessage` so the user sees the watchdog is
not working; `closed` denies gating events (tool calls, prompts) with the reason. When the
event itself could not be read, failing closed exits 2, the only answer Claude Code honours
without knowing the event. Imports stay minimal: regopy loads only when a policy routes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from watchdog import config, coverage, dirs, logs
from watchdog.decisions import ALLOW_DECISION, DENY, Decision, DecisionSet, combine, parse_set
from watchdog.errors import (
    ConfigError,
    EventError,
    PolicyCompileError,
    WatchdogError,
)
from watchdog.events import Event
from watchdog.policies import bundle, layout, routing

HARNESSES = ("claude",)
EXIT_OK, EXIT_USAGE, EXIT_BLOCK = 0, 1, 2


class Result(NamedTuple):
    stdout: str
    stderr: list[str]
    exit_code: int
    decision: Decision | None
    trace: list[str]


class Trace:
    """Collects --explain lines with timings; costs nothing when off."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.lines: list[str] = []
        self._t0 = time.perf_counter()
        self._last = self._t0

    def __call__(self, text: str) -> None:
        if self.on:
            now = time.perf_counter()
            self.lines.append(f"[{(now - self._last) * 1000:7.2f} ms] {text}")
            self._last = now

    def total_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1000


def _harness(name: str) -> Any:
    if name == "claude":
        from watchdog.harnesses import claude

        return claude
    raise ConfigError(
        f"unknown harness '{name}'. Supported: {', '.join(HARNESSES)}. "
        "Fix --harness in the agent's hook configuration."
    )


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


def roots_for(settings: config.Settings, event: Event) -> list[layout.Root]:
    """Global roots first, then the project root (explicit, or found above the event's cwd)."""
    return layout.discover(
        event.harness, event.cwd, settings.policy_dir, config.global_dirs(settings)
    )


def _input_doc(
    base: dict[str, Any], manifest: dict[str, Any], scope: str, extra: dict[str, Any] | None,
    signal_values: dict[str, Any] | None,
) -> dict[str, Any]:
    """One scope's `input`: the preprocessed event plus builtin_config, watchdog, signals."""
    doc = dict(base)
    builtin_config = manifest.get("builtins", {}).get(scope)
    if builtin_config:
        doc["builtin_config"] = builtin_config
    if extra:
        doc["watchdog"] = extra
    if signal_values is not None:
        doc["signals"] = dict(signal_values)
    return doc


def _shell_input(event: Event, base: dict[str, Any]) -> dict[str, Any] | None:
    """`input.watchdog.shell` for a shell tool's command (bashlex loads only here, and only
    when a policy of a matched scope may read it: the manifest's `reads_shell`)."""
    from watchdog.preprocess import SHELL_TOOLS

    tool_input = base.get("tool_input")
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    if event.tool_name not in SHELL_TOOLS or not isinstance(command, str):
        return None
    from watchdog import shell

    return shell.parse(command, event.cwd, os.path.expanduser("~"))


def _run_signals(
    event: Event, base: dict[str, Any], manifest: dict[str, Any], matched: dict[str, list[str]],
    settings: config.Settings, trace: Trace,
) -> dict[str, dict[str, Any]]:
    """Run the signals the matched packages need (Cupcake: input.signals); scope -> values.
    A scope appears only when it required at least one signal."""
    from watchdog import signals

    wanted = {scope: names for scope, packages in matched.items()
              if (names := signals.required(manifest, scope, packages, base))}
    if not wanted:
        return {}

    def done(scope: str, name: str, ok: bool, value: Any, ms: float) -> None:
        shown = json.dumps(value)[:200] if ok else f"no value: {value}"
        trace(f"signal {scope}/{name} ({ms:.1f} ms): {shown}")

    results, failures = signals.run(
        wanted, manifest.get("signals", {}), json.dumps(base).encode(), event.cwd or None, done)
    for failure in failures:
        logs.write(settings.state_dir, "warning", "signal_failed", scope=failure.scope,
                   signal=failure.name, reason=failure.reason, session_id=event.session_id)
    return results


def _watchdog_input(settings: config.Settings) -> dict[str, Any]:
    """`input.watchdog` with --watchdog: the judge budget as last seen (a local snapshot)."""
    from watchdog.escalation.pending import read_budget_snapshot

    budget = read_budget_snapshot(settings.state_dir)
    return {"enabled": True, "budget": budget} if budget else {"enabled": True}


class Evaluated(NamedTuple):
    decision: Decision
    warnings: list[str]
    manifest: dict[str, Any]


def evaluate(
    event: Event, settings: config.Settings, trace: Trace, escalate: bool = False
) -> Evaluated:
    """The policy decision for one event, warnings for stderr and the log, and the manifest."""
    warnings: list[str] = []
    said: list[str] = []
    roots = roots_for(settings, event)
    trace(f"roots: {', '.join(f'{r.scope}={r.path}' for r in roots) or 'none'}")
    if not roots:
        roots, said = coverage.no_roots(event, settings, trace)
        if not roots:
            return Evaluated(_with_notices(ALLOW_DECISION, said), warnings, {})
    loaded = bundle.load(event.harness, roots, settings.cache_dir)
    manifest = loaded.manifest
    trace(f"bundle: {'compiled' if loaded.rebuilt else 'cached'} {manifest.get('bundle')}")
    if loaded.cache_warning:
        warnings.append(loaded.cache_warning)
    if manifest.get("error"):
        err = manifest["error"]
        if settings.policy_errors == "closed":
            raise coverage.Unprotected(f"{err['message']} (policy_errors is 'closed')",
                                       err.get("problems"))
        raise PolicyCompileError(err["message"], err.get("problems"))
    for problem in manifest.get("problems", []) if loaded.rebuilt else []:
        logs.write(settings.state_dir, "error", "policy_skipped", problem=problem)
    for item in manifest.get("excluded", []) if loaded.rebuilt else []:
        logs.write(settings.state_dir, "error", "policy_excluded", file=item.get("file"),
                   problems=item.get("problems"), rule_ids=item.get("rule_ids"))
    said = said + coverage.policy_notices(event, settings, roots, manifest)
    decision, warns, manifest = _evaluate_bundle(event, settings, trace, escalate, roots,
                                                 loaded, warnings)
    return Evaluated(_with_notices(decision, said), warns, manifest)


def _with_rule_ids(decision: Decision, settings: config.Settings) -> Decision:
    """`reason [WD-RULE, ...]` for a halt, deny, block or ask: the agent reads which rule
    stopped it, and the user can search the log for the id. `rule_ids = false` gives
    Cupcake's exact reason text."""
    if (not settings.rule_ids or not decision.rule_ids or decision.reason is None
            or decision.verb not in ("halt", "deny", "block", "ask")):
        return decision
    return decision._replace(reason=f"{decision.reason} [{', '.join(decision.rule_ids)}]")


def _with_notices(decision: Decision, said: list[str]) -> Decision:
    return decision._replace(notices=tuple(said) + decision.notices) if said else decision


def _evaluate_bundle(event: Event, settings: config.Settings, trace: Trace, escalate: bool,
                     roots: list[layout.Root], loaded: bundle.Loaded,
                     warnings: list[str]) -> Evaluated:
    """Routing, inputs and the Rego queries for a loaded bundle."""
    manifest = loaded.manifest
    matched: dict[str, list[str]] = {}
    for scope, info in manifest.get("scopes", {}).items():
        packages = routing.lookup(info.get("index", {}), event.name, event.tool_name)
        trace(f"routing {scope} {event.label}: {', '.join(packages) or 'no policy'}")
        if packages:
            matched[scope] = packages
    if not matched:
        return Evaluated(ALLOW_DECISION, warnings, manifest)
    path = loaded.bundle_path
    if path is None or not bundle.bundle_ok(path, manifest):
        trace("bundle missing or damaged: rebuilding")
        loaded = bundle.load(event.harness, roots, settings.cache_dir, force=True)
        manifest, path = loaded.manifest, loaded.bundle_path
        if manifest.get("error") or path is None or not bundle.bundle_ok(path, manifest):
            raise PolicyCompileError(
                "the policy bundle could not be rebuilt. Run 'watchdog verify'."
            )
    from watchdog.policies import engine as engines

    engine = engines.load(path)
    trace("regopy imported, bundle loaded")
    sets: dict[str, DecisionSet] = {}
    from watchdog.preprocess import preprocess

    base = preprocess(event.raw)
    extra = _watchdog_input(settings) if escalate else {}
    reads_shell = any(manifest["scopes"][scope].get("reads_shell", True) for scope in matched)
    shell_info = _shell_input(event, base) if reads_shell else None
    if shell_info is not None:
        extra = {**extra, "shell": shell_info}
        error = shell_info["parse_error"]
        trace(f"shell: {len(shell_info['commands'])} command(s)"
              + (f", parse error: {error}" if error else ""))
    if any(manifest["scopes"][scope].get("reads_session", True) for scope in matched):
        from watchdog import session

        extra = {**extra, "session": session.load(settings.state_dir, event.session_id)}
    signal_values = _run_signals(event, base, manifest, matched, settings, trace)
    for scope in ("global", "project"):
        if scope not in matched:
            continue
        doc = _input_doc(base, manifest, scope, extra, signal_values.get(scope))
        if scope == "project" and escalate and _cupcake_watchdog_on(event, manifest, sets):
            _add_cupcake_watchdog(doc, event, roots, manifest, settings, trace)
        entry, trace_entry = manifest["entrypoints"][scope]
        value = engine.query(entry, doc)
        trace(f"evaluated {scope} ({manifest['scopes'][scope].get('aggregation')} aggregation)")
        if not isinstance(value, dict):
            value = {}
        sets[scope] = parse_set(value.get("set"), value.get("escalate"))
        if trace.on:
            _explain_scope(engine, trace_entry, doc, scope, sets[scope], trace)
    decision = _with_rule_ids(combine(sets.get("global"), sets.get("project")), settings)
    trace(f"decision: {decision.verb}" + (f" ({decision.reason})" if decision.reason else ""))
    return Evaluated(decision, warnings, manifest)


# -- Cupcake's watchdog (its LLM-as-judge), only with --watchdog -------------------------------

CUPCAKE_WATCHDOG_EVENTS = ("PreToolUse", "beforeShellExecution", "beforeMCPExecution")


def _cupcake_watchdog_on(event: Event, manifest: dict[str, Any],
                         sets: dict[str, DecisionSet]) -> bool:
    """As Cupcake: the project rulebook says `watchdog: true` (or `{enabled: true}`), a project
    policy routed (the caller checks), the event is a pre-action one, and no global halt,
    deny or block ended the evaluation first."""
    wanted = manifest.get("rulebooks", {}).get("project", {}).get("watchdog")
    if not (wanted is True or (isinstance(wanted, dict) and wanted.get("enabled") is True)):
        return False
    if event.raw.get("hook_event_name") not in CUPCAKE_WATCHDOG_EVENTS:
        return False
    first = sets.get("global")
    return not (first and (first.halts or first.denials or first.blocks))


def _add_cupcake_watchdog(doc: dict[str, Any], event: Event, roots: list[layout.Root],
                          manifest: dict[str, Any], settings: config.Settings,
                          trace: Trace) -> None:
    """Put the judge's answer at `input.signals.watchdog` (absent when it cannot start)."""
    from watchdog.escalation import cupcake_watchdog

    project = next((r.path for r in roots if r.scope == "project"), None)
    answer = cupcake_watchdog.signal(event, doc, project, manifest, settings, trace)
    if answer is not None:
        signals = doc.get("signals")
        doc["signals"] = {**(signals if isinstance(signals, dict) else {}), "watchdog": answer}


def _explain_scope(
    engine: Any, entry: str, doc: dict[str, Any], scope: str, ds: DecisionSet, trace: Trace
) -> None:
    """Which package's which verb produced what (only with --explain)."""
    for package, verb, member in engine.query(entry, doc) or []:
        if isinstance(member, dict):
            rid = member.get("rule_id", "?")
            trace(f"  fired {verb} in {package}: [{rid}] {member.get('reason', '')}")
        else:
            trace(f"  fired {verb} in {package}: {member}")
    for esc in ds.escalations:
        trace(f"  escalate: [{esc.rule_id}] rubric={esc.rubric} wait={esc.wait}")


def _record_session(event: Event, manifest: dict[str, Any], settings: config.Settings,
                    trace: Trace) -> None:
    """Session taints for `input.watchdog.session`, kept only when a policy reads them."""
    scopes = manifest.get("scopes", {}).values()
    if event.name != "PostToolUse" or not any(s.get("reads_session") for s in scopes):
        return
    from watchdog import session

    added = session.record(settings.state_dir, event)
    if added:
        trace(f"session taints: {', '.join(sorted(added))}")


def _escalate(event: Event, decision: Decision, manifest: dict[str, Any],
              settings: config.Settings, trace: Trace, harness: Any) -> Decision:
    """With --watchdog: only when this event escalates or the session is owed a verdict does
    the escalation code (redis, rq) load."""
    from watchdog.escalation import pending

    wants = bool(decision.escalations) and not decision.blocking
    if not wants and not pending.has_pending(settings.state_dir, event.session_id):
        return decision
    from watchdog.escalation import escalate

    return escalate.run(event, decision, manifest, settings, trace,
                        deliver=harness.accepts_context(event.name))


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


def _after_policy(event: Event, decision: Decision, manifest: dict[str, Any],
                  settings: config.Settings, trace: Trace, harness: Any,
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


def _render(harness: Any, decision: Decision, policy: Decision, event: Event,
            settings: config.Settings) -> str:
    """The harness's answer; if the merged decision cannot be rendered, the policy's is."""
    try:
        return str(harness.dumps(harness.render(decision, event)))
    except Exception as exc:  # noqa: BLE001 - fall back to what the policy said
        if decision is policy:
            raise
        import traceback

        logs.write(settings.state_dir, "error", "internal_error", step="render",
                   message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        return str(harness.dumps(harness.render(policy, event)))


def _fail(
    harness: Any, event: Event | None, settings: config.Settings, exc: BaseException,
    policy: Decision | None = None,
) -> tuple[str, int, Decision | None]:
    """Apply the fail mode to a failure; returns stdout text, exit code, decision. A policy
    that had already blocked keeps blocking, whatever the fail mode."""
    message = _describe(exc, settings)
    blocked = policy is not None and policy.blocking
    if settings.on_error == "closed" or blocked or getattr(exc, "fail_closed", False):
        reason = f"watchdog failed closed: {message}"
        if blocked and policy is not None and policy.reason:
            reason = f"{policy.reason} ({reason})"
        if harness is None or event is None:
            return "", EXIT_BLOCK, None
        if harness.gates(event.name):
            decision = Decision(DENY, reason, ("WATCHDOG-FAIL-CLOSED",), severity="HIGH")
            return harness.dumps(harness.render(decision, event)), EXIT_OK, decision
    if harness is None:
        from watchdog.harnesses import claude

        harness = claude
    answer = harness.warning(f"not working, no decision made: {message}")
    return harness.dumps(answer), EXIT_OK, None


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
    harness: Any = None
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
        harness = _harness(harness_name)
        event = harness.parse(read_event(stdin))
        trace(f"event {event.label} session={event.session_id or '-'} cwd={event.cwd}")
        decision, warnings, manifest = evaluate(event, settings, trace, escalate)
        policy = decision
        decision = _after_policy(event, decision, manifest, settings, trace, harness, escalate)
        if config.has_unknown_env(env):
            decision = coverage.misspelt_env(env, event, settings, decision)
        for w in warnings:
            stderr.append(f"watchdog: warning: {w}")
            logs.write(settings.state_dir, "warning", "cache_warning", message=w)
        out = _render(harness, decision, policy, event, settings)
        code = EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the one place every failure is caught
        out, code, decision = _fail(harness, event, settings, exc, policy)
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
    return Result(out, stderr, code, decision, trace.lines)


def main(harness_name: str, policy_dir: str | None, escalate: bool, explain: bool) -> int:
    """CLI entry for `hook` and `eval`: real stdin, stdout, stderr."""
    data = sys.stdin.buffer.read()
    result = run(harness_name, data, policy_dir=policy_dir, escalate=escalate, explain=explain)
    for line in result.trace:
        sys.stderr.write(line + "\n")
    for line in result.stderr:
        sys.stderr.write(line + "\n")
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    return result.exit_code
