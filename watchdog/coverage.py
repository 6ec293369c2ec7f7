"""When the policies cannot protect, the user is told: never silently unprotected.

No policy root anywhere (the shipped default pack applies, said on each session's first
event), a root that holds no routed policy (said once per session), a policy left out because
it does not compile (said on every event until fixed), a misspelt WATCHDOG_* variable (said
once per session). `no_policies` and `policy_errors` set to "closed" make the first three
deny instead (Unprotected, which fails closed whatever `on_error` says).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from watchdog import config, logs, notices
from watchdog.decisions import Decision
from watchdog.errors import PolicyError
from watchdog.events import Event
from watchdog.policies import layout

if TYPE_CHECKING:  # annotations only: the TypedDicts cost ~2 ms to create
    from watchdog.policies.manifest import Manifest



class Unprotected(PolicyError):
    """No policy can decide (none found, an empty root, one left out) and the settings say to
    fail closed rather than let the event through with a warning."""

    kind = "unprotected"
    fail_closed = True


def no_roots(event: Event, settings: config.Settings, trace: Callable[[str], None]
             ) -> tuple[list[layout.Root], list[str]]:
    """No policy root anywhere: the shipped default pack applies (a guard installed once must
    guard), said on the first event of each session; `no_policies = "closed"` denies instead."""
    where = event.cwd or os.getcwd()
    if settings.no_policies == "closed":
        raise Unprotected(
            f"no policies found for {where} (no .watchdog/ or .cupcake/ at or above it, no "
            "global ones) and no_policies is 'closed'. Run 'watchdog init' in the project.")
    default = layout.default_root(event.harness)
    if default is None:
        logs.write(settings.state_dir, "warning", "no_policies", cwd=where,
                   harness=event.harness, session_id=event.session_id)
        note = (f"watchdog: no policies for {event.harness} here ({where}) and no default "
                "pack for it: nothing is checked. Add .watchdog/policies/"
                f"{event.harness}/ or set WATCHDOG_POLICY_DIR.")
        return [], [note] if notices.once(settings.state_dir, event.session_id, note) else []
    trace(f"no policy root: the shipped default pack ({default.path})")
    note = (f"watchdog: no policies found for {where}, so the shipped default pack applies. "
            "Run 'watchdog init' in the project to customize it (or set WATCHDOG_POLICY_DIR).")
    if notices.once(settings.state_dir, event.session_id, "default-pack"):
        logs.write(settings.state_dir, "info", "default_pack", cwd=where,
                   session_id=event.session_id)
        return [default], [note]
    return [default], []


def policy_notices(event: Event, settings: config.Settings, roots: list[layout.Root],
                   manifest: Manifest) -> list[str]:
    """What the user must know about the policies themselves: a root that holds none (once
    per session), a policy left out because it does not compile (every event until fixed)."""
    out: list[str] = []
    counts = {scope: len(info.get("policies", []))
              for scope, info in manifest.get("scopes", {}).items()}
    empty = [r for r in roots if counts.get(r.scope, 0) == 0]
    if empty and sum(counts.values()) == 0:
        paths = ", ".join(r.path for r in empty)
        if settings.no_policies == "closed":
            raise Unprotected(f"the policy root {paths} holds no routed policy for "
                              f"{event.harness} and no_policies is 'closed'. Add policies or "
                              "run 'watchdog init'.")
        note = (f"watchdog: the policy root {paths} holds no policy for {event.harness}: "
                "nothing is checked. Run 'watchdog init' there for the default pack, or add "
                f"policies/{event.harness}/*.rego.")
        if notices.once(settings.state_dir, event.session_id, f"empty:{paths}"):
            logs.write(settings.state_dir, "warning", "empty_policy_root", roots=paths,
                       session_id=event.session_id)
            out.append(note)
    for item in manifest.get("excluded", []):
        ids = ", ".join(item.get("rule_ids") or []) or "all its rules"
        first = (item.get("problems") or ["fails to compile"])[0]
        if settings.policy_errors == "closed":
            raise Unprotected(f"a policy does not compile and policy_errors is 'closed': "
                              f"{first}. Fix it ('watchdog verify').")
        out.append(f"watchdog: {item.get('file')} does not compile and is left out ({ids} "
                   f"off): {first}. Fix it and run 'watchdog verify'.")
    return out


def misspelt_env(env: Mapping[str, str], event: Event, settings: config.Settings,
                 decision: Decision) -> Decision:
    """A misspelt WATCHDOG_* variable silently keeps the default: say so once per session."""
    names = config.unknown_env(env)
    parts = [f"{name} (did you mean {near}?)" if near else name for name, near in names]
    note = (f"watchdog: {', '.join(parts)} {'is' if len(parts) == 1 else 'are'} not a "
            "setting and ignored; fix the name in the agent's environment")
    if not notices.once(settings.state_dir, event.session_id, note):
        return decision
    logs.write(settings.state_dir, "warning", "unknown_env", names=[n for n, _ in names],
               session_id=event.session_id)
    return decision._replace(notices=decision.notices + (note,))
