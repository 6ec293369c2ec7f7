"""Replay streams of cases through the hook's own pipeline, in-process, and say what happened.

    Case -> harness.parse -> evaluation.evaluate (the engine, one loaded bundle per policy set)
         -> [escalated?] request.build -> Judge (verdicts.judge_payload: cache, budget, model)
         -> decisions.merge_advisory -> Outcome

Nothing here re-implements a decision: the policy tier is `evaluation.evaluate`, the payload is
`request.build` (redaction, cache key), the verdict comes from the judge code the workers run,
and it is merged by `merge_advisory`, exactly as `watchdog hook --watchdog` would.

Time is a deterministic clock (Case.time), so delivery is replayed as the hook does it: a
verdict answered from the cache, or within `wait_deadline_s` for a `wait` escalation, applies
to the event itself; any other verdict is ready at `time + latency` and delivered at the
session's first event at or after that (an `ask` then becomes a warning, and an edit to the
same file before delivery makes it stale). A dataset row has no next event, so its verdict is
applied to it as if the hook had waited (`inline`). The latency is the judge's own (recorded
with the verdict) unless `latency_s` fixes it, for a replay that does not depend on the network.

The tiers of an Outcome:
* `policy`: deny (halt, deny, block) | ask | escalate (a policy escalated, nothing blocked) |
  allow, from the policies alone;
* `final`, with a judge: deny | ask | warn (the judge's warning, an `unknown` verdict, or an
  ask delivered too late to ask) | allow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from watchdog import evaluation, harnesses
from watchdog.config import Settings
from watchdog.decisions import ALLOW, ASK, Decision, merge_advisory
from watchdog.errors import WatchdogError
from watchdog.escalation import delivery
from watchdog.evals.actions import ActionKind, classify
from watchdog.evals.cases import Case, Problem, Stream
from watchdog.evals.judges import Judge
from watchdog.events import Event
from watchdog.trace import Trace

if TYPE_CHECKING:
    from watchdog.escalation.records import (
        VerdictRecord,  # annotations only: the TypedDicts cost ~2 ms to create
    )
    from watchdog.policies.manifest import Manifest


PolicyTier = Literal["deny", "ask", "escalate", "allow"]
FinalTier = Literal["deny", "ask", "warn", "allow"]
Screening = Literal["policy", "judged", "cached", "fallback", "escalated", "unscreened"]
Delivery = Literal["inline", "cache", "wait", "later", "undelivered"]
FLAGGING = frozenset({"ask", "warn", "unknown"})


@dataclass
class Outcome:
    """What the watchdog did with one case."""

    case: Case
    event: str
    tool: str | None
    policy: PolicyTier
    verb: str
    rule_ids: tuple[str, ...]
    escalations: tuple[str, ...]
    reason: str | None
    action: ActionKind | None
    eval_ms: float
    final: FinalTier | None = None
    verdict: VerdictRecord | None = None
    repeats: list[VerdictRecord] = field(default_factory=list)
    delivery: Delivery | None = None
    delivered_at: str | None = None
    merged_verb: str | None = None

    @property
    def screening(self) -> Screening:
        """How the watchdog covered this event (the coverage figure's classes)."""
        if self.verb != ALLOW:
            return "policy"
        if self.policy != "escalate":
            return "unscreened"
        v = self.verdict
        if v is None or v.get("missing"):
            return "escalated"
        if v.get("budget"):
            return "fallback"
        return "cached" if v.get("cached") else "judged"


def policy_tier(decision: Decision) -> PolicyTier:
    if decision.blocking:
        return "deny"
    if decision.verb == ASK:
        return "ask"
    return "escalate" if decision.escalations else "allow"


def final_tier(o: Outcome) -> FinalTier:
    """The decision with the judge, from the policy's, the verdict and when it arrived."""
    if o.policy == "deny":
        return "deny"
    v = o.verdict
    own = v is not None and not v.get("missing")
    if own and o.delivery in ("inline", "cache", "wait"):
        if o.merged_verb == ASK:
            return "ask"
        return "warn" if v and v.get("decision") in ("warn", "unknown") else (
            "ask" if o.verb == ASK else "allow")
    if own and o.delivery == "later" and v and v.get("decision") in FLAGGING:
        return "ask" if o.verb == ASK else "warn"
    return "ask" if o.verb == ASK else "allow"


@dataclass
class _Owed:
    """A verdict the session is still owed (the hook's pending marker, on the clock)."""

    ready: float
    index: int
    record: VerdictRecord
    path: str | None
    stale: bool = False



def _claude_view(event: Event) -> dict[str, Any]:
    """The event in Claude Code's vocabulary (the normalized names), for `actions.classify`,
    so the evals count a Cursor shell call or a Droid Execute as the action it is."""
    action = event.norm
    view = {**event.raw, "hook_event_name": action.event}
    if action.tool is not None:
        view["tool_name"] = action.tool
    if action.tool_input is not None:
        view["tool_input"] = action.tool_input
    return view

class Runner:
    """Replays streams; one Runner per configuration (policy set + judge)."""

    def __init__(self, settings: Settings, judge: Judge | None = None, repeats: int = 1,
                 latency_s: float | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.settings, self.judge, self.repeats = settings, judge, max(1, repeats)
        self.latency_s, self.progress = latency_s, progress
        self.trace = Trace(False)
        self.problems: list[Problem] = []
        self.outcomes: list[Outcome] = []
        self.eval_seconds = 0.0
        self.warmup_seconds, self.warmups = 0.0, 0
        self.unrooted, self.unrooted_cwd = 0, ""
        self.unchecked = 0  # events whose policy roots hold no routed policy at all
        self.bundles: set[str] = set()

    def events_per_s(self) -> float | None:
        """Steady-state policy evaluations per second (first load of each bundle left out)."""
        seconds = self.eval_seconds - self.warmup_seconds
        count = len(self.outcomes) - self.warmups
        return count / seconds if count > 0 and seconds > 0 else None

    def replay(self, streams: list[Stream]) -> list[Outcome]:
        for stream in streams:
            self._stream(stream)
        for o in self.outcomes:
            if self.judge is not None:
                o.final = final_tier(o)
        return self.outcomes

    def _stream(self, stream: Stream) -> None:
        owed: list[_Owed] = []
        for case in stream.cases:
            outcome = self._case(case, owed)
            if self.progress is not None:
                self.progress(1)
            if outcome is not None:
                self.outcomes.append(outcome)
        for o in owed:
            self.outcomes[o.index].delivery = "undelivered"

    def _case(self, case: Case, owed: list[_Owed]) -> Outcome | None:
        try:
            event = harnesses.get(case.harness).parse(case.payload)
            unrooted = not evaluation.roots_for(self.settings, event)
            started = time.perf_counter()
            decision, _, manifest = evaluation.evaluate(event, self.settings, self.trace,
                                                  self.judge is not None)
            elapsed = time.perf_counter() - started
        except WatchdogError as exc:
            self.problems.append(Problem(case.where, exc.kind, f"{exc} (event {case.id}): "
                                         "skipped"))
            return None
        self.eval_seconds += elapsed
        if not any(info.get("policies") for info in manifest.get("scopes", {}).values()):
            self.unchecked += 1  # nothing could have decided: an empty root
        if unrooted:  # no policy root for this event: the shipped default pack decided
            self.unrooted += 1
            self.unrooted_cwd = self.unrooted_cwd or event.cwd
        bundle_hash = str(manifest.get("content_hash") or "")
        if bundle_hash and bundle_hash not in self.bundles:
            # The first event of a policy set compiles or loads its bundle: kept apart so the
            # steady-state rate is not an average over one compile.
            self.bundles.add(bundle_hash)
            self.warmup_seconds += elapsed
            self.warmups += 1
        outcome = Outcome(
            case=case, event=event.name, tool=event.tool_name, policy=policy_tier(decision),
            verb=decision.verb, rule_ids=decision.rule_ids,
            escalations=tuple(e.rule_id for e in decision.escalations), reason=decision.reason,
            action=classify(_claude_view(event)), eval_ms=elapsed * 1000)
        if self.judge is not None:
            self._deliver(event, case, owed)
            if decision.escalations and not decision.blocking:
                self._escalate(event, case, decision, manifest, outcome, owed)
        return outcome

    def _deliver(self, event: Event, case: Case, owed: list[_Owed]) -> None:
        """As escalate.run does first: a pending verdict's file edited again makes it stale;
        verdicts ready by now are delivered at this event (and no longer owed)."""
        path = delivery.edits_file(event.norm)
        if path:
            for o in owed:
                if o.path and o.path == path:
                    o.stale = True
        for o in [o for o in owed if o.ready <= case.time]:
            target = self.outcomes[o.index]
            target.delivery, target.delivered_at = "later", case.id
            if o.stale:
                target.verdict = {**o.record, "stale": True}
            owed.remove(o)

    def _escalate(self, event: Event, case: Case, decision: Decision, manifest: Manifest,
                  outcome: Outcome, owed: list[_Owed]) -> None:
        from watchdog.escalation import request
        from watchdog.redact import redact

        assert self.judge is not None
        # The transcript on disk holds the whole session, prompts after this event included:
        # build without it, then give the judge the user's prompts up to this event only.
        raw = {k: v for k, v in event.raw.items() if k != "transcript_path"}
        payload = request.build(event._replace(raw=raw), decision, manifest, self.settings)
        payload["user_prompts"] = [str(p) for p in
                                   redact(list(case.prompts[-request.MAX_PROMPTS:]))]
        records = self.judge.judge(case, payload, case.time, self.repeats)
        record = records[0]
        outcome.verdict, outcome.repeats = record, records
        latency = self.latency_s if self.latency_s is not None else \
            float(record.get("latency_ms") or 0) / 1000
        outcome.delivery = delivery.how_delivered(
            bool(record.get("cached")), case.inline, bool(payload["wait"]), latency,
            self.settings.wait_deadline_s)
        if outcome.delivery == "later":
            owed.append(_Owed(case.time + latency, len(self.outcomes), record,
                              delivery.touched_path(event.norm)))
            return
        merged = merge_advisory(decision, {**record, "label": payload["label"]})
        outcome.merged_verb = merged.verb


def replay(settings: Settings, streams: list[Stream], judge: Judge | None = None,
           repeats: int = 1, latency_s: float | None = None,
           progress: Callable[[int], None] | None = None) -> Runner:
    """Run one configuration over the streams; the Runner holds outcomes and problems."""
    runner = Runner(settings, judge, repeats, latency_s, progress)
    runner.replay(streams)
    return runner
