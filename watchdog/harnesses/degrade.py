"""Turn a decision into one the event's answer can express, and say what was changed.

Pure: a decision, the policy's decision it came from, and the event's capabilities in; a
decision and the list of degradations (for the log and `--explain`) out. The rules, from the
capability matrix, in one place:

* a policy `ask` where the harness cannot ask becomes a deny whose reason says a person must
  approve (or, where the matrix says so, as Cupcake renders Claude Code's prompt events, context
  for the model);
* the judge's `ask` is advice, never a block: where no ask exists it becomes context for the
  model plus a message for the person;
* a `modify` where the input cannot be rewritten becomes an allow (Cupcake's choice) and the
  rewrite is noted as context;
* a block where nothing can be stopped becomes an allow plus a message for the person;
* context or a message with no channel is dropped from the answer and kept in the log.
"""

from __future__ import annotations

from watchdog.decisions import ALLOW, ASK, DENY, MODIFY, Decision
from watchdog.harnesses.base import Capabilities


def degrade(decision: Decision, policy: Decision, caps: Capabilities, harness: str,
            event: str, kind: str) -> tuple[Decision, list[str]]:
    """`decision` as this event can say it, and one line per change made or loss taken."""
    notes: list[str] = []
    where = f"{harness} {event}"
    out = decision
    reason = decision.reason or ""
    if out.verb == ASK and not caps.ask:
        if policy.verb == ASK and caps.block and caps.ask_fallback == "deny":
            text = (f"{reason} (a person must approve this, and {harness} cannot ask here: "
                    "run it yourself if it is what you want, or change the rule)")
            out = out._replace(verb=DENY, reason=text)
            notes.append(f"ask -> deny: {where} cannot ask")
        else:
            message = f"watchdog asks a person to check this: {reason}" if reason else ""
            out = out._replace(verb=ALLOW, reason=None,
                               agent_messages=((reason,) if reason else ()) + out.agent_messages,
                               notices=out.notices + ((message,) if message and
                                                      policy.verb != ASK else ()))
            notes.append(f"ask -> context: {where} cannot ask")
    if out.verb == MODIFY and not caps.modify:
        keep = (reason,) if reason and caps.modify_fallback == "context" else ()
        out = out._replace(verb=ALLOW, updated_input=None, reason=None,
                           agent_messages=keep + out.agent_messages)
        notes.append(f"modify -> allow: {where} cannot rewrite a tool's input")
    stoppable = caps.block or caps.halt or (kind == "stop" and caps.block_stop)
    if out.blocking and not stoppable:
        message = f"watchdog would have blocked this ({where} cannot be stopped): {reason}"
        out = out._replace(verb=ALLOW, reason=None, notices=out.notices + (message,))
        notes.append(f"{decision.verb} -> allow: {where} cannot block")
    if (out.context or out.agent_messages) and not caps.context and out.verb == ALLOW:
        notes.append(f"context dropped: {where} has no channel to the model")
    if out.notices and not caps.user_message:
        notes.append(f"message dropped: {where} has no channel to the person (see the log)")
    return out, notes
