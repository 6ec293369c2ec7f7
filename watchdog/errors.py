"""The exception hierarchy: every failure we expect, with a message that says what to do next.

* WatchdogError          expected and explainable; `str(err)` is one line for the user
  + ConfigError          watchdog.toml or an env var is wrong
  + EventError           stdin was empty, not JSON, or not a hook event
  + PolicyError          a policy failed to load, compile, run, or returned malformed decisions
  + StateError           the state dir (owed verdicts, session taints) can't be read or written
  + EscalationError      the judge side
    + QueueUnavailable   Redis is down or unreachable
    + JudgeError         the model failed: HTTP error, timeout, or output that is not a verdict
      + JudgeTransient   worth retrying with backoff (429, 5xx, timeouts, connection errors)
    + BudgetExhausted    a cap is reached: no call is made

`kind` is a stable snake_case name written to the log so failures can be grepped and counted.
"""

from __future__ import annotations


class WatchdogError(Exception):
    """Base class: anything the top level catches, reports on one line and maps to a fail mode."""

    kind = "watchdog_error"


class ConfigError(WatchdogError):
    kind = "config_error"


class EventError(WatchdogError):
    kind = "event_error"


class PolicyError(WatchdogError):
    """A policy problem. `problems` holds `file:line: message` strings when we know them."""

    kind = "policy_error"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class PolicyCompileError(PolicyError):
    kind = "policy_compile_error"


class PolicyRuntimeError(PolicyError):
    kind = "policy_runtime_error"


class DecisionFormatError(PolicyError):
    kind = "malformed_decision"


class StateError(WatchdogError):
    """A file in the state dir could not be read or written (permissions, a full disk)."""

    kind = "state_error"


class EscalationError(WatchdogError):
    kind = "escalation_error"


class QueueUnavailable(EscalationError):
    kind = "queue_unavailable"


class JudgeError(EscalationError):
    kind = "judge_error"


class JudgeTransient(JudgeError):
    """A failure that may pass: RQ retries the job with backoff."""

    kind = "judge_transient"


class BudgetExhausted(EscalationError):
    kind = "budget_exhausted"
