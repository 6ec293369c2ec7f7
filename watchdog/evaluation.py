"""The policy tier: one event's Rego input, routing, and the synthesized policy decision.

    Event -> roots -> bundle (cached) -> routing -> input (+ action, shell, session, signals)
          -> engine.query per scope -> decisions.combine -> Decision

Used by the pipeline (command hook, `serve`) and the evals alike. regopy loads only when a
policy routes; bashlex, the session store and the signals runner only when a routed policy of
a matched scope reads them (the manifest says which).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, NamedTuple

from watchdog import config, coverage, logs
from watchdog.decisions import ALLOW_DECISION, Decision, DecisionSet, combine, parse_set
from watchdog.errors import PolicyCompileError
from watchdog.events import Event
from watchdog.policies import bundle, layout, routing
from watchdog.trace import Trace

if TYPE_CHECKING:  # annotations only: the TypedDicts cost ~2 ms to create
    from watchdog.policies.manifest import Manifest



def roots_for(settings: config.Settings, event: Event) -> list[layout.Root]:
    """Global roots first, then the project root (explicit, or found above the event's cwd)."""
    return layout.discover(
        event.harness, event.cwd, settings.policy_dir, config.global_dirs(settings)
    )


def base_input(event: Event) -> tuple[dict[str, Any], dict[str, Any]]:
    """The event's Rego input before per-scope fields: the native payload with Cupcake's
    preprocessing (what `policies/<harness>/` reads) and the normalized action (what
    `policies/common/` reads at `input.watchdog.action`). `watchdog test` uses it too."""
    from watchdog.preprocess import action_input, preprocess

    return preprocess(event.raw), action_input(event.norm, event.cwd)


def _input_doc(
    base: dict[str, Any], manifest: Manifest, scope: str, extra: dict[str, Any] | None,
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


def _shell_input(event: Event, action: dict[str, Any]) -> dict[str, Any] | None:
    """`input.watchdog.shell` for a shell tool's command (bashlex loads only here, and only
    when a policy of a matched scope may read it: the manifest's `reads_shell`)."""
    command = action.get("command")
    if action.get("tool_class") != "shell" or not isinstance(command, str):
        return None
    from watchdog import shell

    return shell.parse(command, event.cwd, os.path.expanduser("~"))


def _run_signals(
    event: Event, base: dict[str, Any], manifest: Manifest, matched: dict[str, list[str]],
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
    manifest: Manifest


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
    err = manifest.get("error")
    if err:
        if settings.policy_errors == "closed":
            raise coverage.Unprotected(f"{err.get('message')} (policy_errors is 'closed')",
                                       err.get("problems"))
        raise PolicyCompileError(str(err.get("message")), err.get("problems"))
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
        common = info.get("common_index")
        if common:
            norm = event.norm
            packages += [p for p in routing.lookup(common, norm.event, norm.tool)
                         if p not in packages]
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
    base, action = base_input(event)
    extra = {**(_watchdog_input(settings) if escalate else {}), "action": action}
    reads_shell = any(manifest["scopes"][scope].get("reads_shell", True) for scope in matched)
    shell_info = _shell_input(event, action) if reads_shell else None
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


def _cupcake_watchdog_on(event: Event, manifest: Manifest,
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
                          manifest: Manifest, settings: config.Settings,
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
