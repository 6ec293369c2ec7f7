"""The judge an eval run uses: a model through the production code path, the fake judge server,
or verdicts recorded by an earlier run.

* A model (`--judge anthropic/claude-haiku-4-5`, or `--judge configured` for WATCHDOG_JUDGE_MODEL)
  is called in-process through `escalation.verdicts.judge_payload`, the function the RQ job runs:
  the same verdict cache, worst-case budget reservation, fallbacks and litellm client. Transient
  errors are retried with the job's backoff, then become an `unknown` verdict, as a job that
  fails for good does. Cache and budget keys live under a prefix of their own per run
  (`<redis_prefix>evals:<run id>:`), deleted when the run ends: every run starts with an empty
  cache and a full budget, and never touches the live ones.
* `fake` starts the fake judge server (escalation.fake_judge) on 127.0.0.1 and points a priced
  OpenAI model name at it, so the real litellm client, pricing and parsing run with no key.
* `recorded:RUN.json` answers with the verdicts a previous `--json` output holds, by event id:
  no model, no Redis, the same figures every time. An escalated event the run did not judge
  gets an `unknown` record marked `missing`, counted in the summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchdog.escalation.records import VerdictRecord

import contextlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from watchdog.config import Settings
from watchdog.errors import JudgeTransient
from watchdog.evals.cases import Case
from watchdog.evals.inputs import EvalInputError

#: A model litellm prices, so the fake judge's usage turns into real-looking costs and the
#: budget code runs as it does in production.
FAKE_MODEL = "openai/gpt-4.1-mini"
RUN_KIND = "watchdog-evals-run"


class Judge(Protocol):
    """Verdict records for one escalated event: `repeats` of them, the first one decides."""

    label: str

    def judge(self, case: Case, payload: dict[str, Any], now: float,
              repeats: int) -> list[VerdictRecord]: ...

    def close(self) -> None: ...


class LiveJudge:
    """A model through verdicts.judge_payload, with the verdict cache and budget on Redis."""

    def __init__(self, settings: Settings, conn: Any, label: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings, self.conn, self.label, self.sleep = settings, conn, label, sleep

    def judge(self, case: Case, payload: dict[str, Any], now: float,
              repeats: int) -> list[VerdictRecord]:
        records = []
        for i in range(max(1, repeats)):
            # Repeats measure the judge's consistency: no cache, and a fresh budget reservation.
            call = payload if i == 0 else {**payload, "request_id": uuid.uuid4().hex}
            records.append(self._one(call, use_cache=i == 0, now=now))
        return records

    def _one(self, payload: dict[str, Any], use_cache: bool, now: float) -> VerdictRecord:
        from watchdog.escalation import verdicts

        s = self.settings
        b = s.job_retry_backoff_s
        backoff = [b, 5 * b, 15 * b]
        for attempt in range(s.job_retries + 1):
            try:
                return verdicts.judge_payload(self.conn, s, payload, use_cache=use_cache,
                                              clock=lambda: now)
            except JudgeTransient as exc:
                if attempt >= s.job_retries:
                    return verdicts.unknown(f"the judge could not be reached after retries "
                                            f"({exc})")
                self.sleep(backoff[min(attempt, 2)])
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Delete this run's cache and budget keys (its own prefix only), and disconnect."""
        prefix = self.settings.redis_prefix
        pattern = prefix.replace("[", "\\[").replace("*", "\\*").replace("?", "\\?") + "*"
        with contextlib.suppress(Exception):
            batch = list(self.conn.scan_iter(match=pattern, count=500))
            for start in range(0, len(batch), 500):
                self.conn.delete(*batch[start:start + 500])
        with contextlib.suppress(Exception):
            self.conn.close()


class RecordedJudge:
    """Verdicts by event id from an earlier run's --json output."""

    def __init__(self, path: str) -> None:
        self.label = f"recorded:{path}"
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError as exc:
            raise EvalInputError(
                f"cannot read the recorded run {path} ({exc.strerror}). Pass the --json file "
                "of an earlier 'watchdog evals run'.") from exc
        except ValueError as exc:
            raise EvalInputError(f"{path} is not JSON ({exc}). Pass the --json file of an "
                                 "earlier 'watchdog evals run'.") from exc
        if not isinstance(data, dict) or data.get("kind") != RUN_KIND:
            raise EvalInputError(f"{path} is not the --json output of 'watchdog evals run' "
                                 f"(its 'kind' is not {RUN_KIND!r}).")
        self.by_id: dict[str, list[VerdictRecord]] = {}
        for event in data.get("events") or []:
            if isinstance(event, dict) and isinstance(event.get("judge"), dict):
                repeats = event.get("judge_repeats")
                records = repeats if isinstance(repeats, list) and repeats else [event["judge"]]
                from watchdog.escalation.records import from_json

                self.by_id[str(event.get("id"))] = [
                    rec for r in records if (rec := from_json(dict(r) if isinstance(r, dict)
                                                              else None)) is not None]
        self.model = (data.get("config") or {}).get("judge_model")

    def judge(self, case: Case, payload: dict[str, Any], now: float,
              repeats: int) -> list[VerdictRecord]:
        records = self.by_id.get(case.id)
        if not records:
            return [{"decision": "unknown", "confidence": 0.0, "missing": True,
                     "reason": f"no recorded verdict for {case.id} in {self.label[9:]}"}]
        return [{**r, "recorded": True} for r in records[:max(1, repeats)]]

    def close(self) -> None:
        pass


@contextlib.contextmanager
def fake_server(settings: Settings, verdict: dict[str, Any] | None = None) -> Iterator[Settings]:
    """The fake judge on 127.0.0.1 for the duration; yields settings that point at it."""
    from watchdog.escalation.fake_judge import DEFAULT_VERDICT, FakeJudge

    token = secrets.token_urlsafe(16)
    saved = os.environ.get("OPENAI_API_KEY")
    with FakeJudge(token, verdict or DEFAULT_VERDICT) as fake:
        # litellm reads the key from the environment; restored on the way out.
        os.environ["OPENAI_API_KEY"] = token
        try:
            yield settings._replace(judge_model=FAKE_MODEL, judge_api_base=fake.url + "/v1",
                                    judge_fallbacks=())
        finally:
            if saved is None:
                os.environ.pop("OPENAI_API_KEY", None)
            else:
                os.environ["OPENAI_API_KEY"] = saved


def live(settings: Settings, label: str, redis_url: str | None = None,
         state_dir: str | None = None) -> LiveJudge:
    """A LiveJudge on a fresh per-run prefix, connected to Redis (QueueUnavailable if down).

    Without a Redis URL (flag or WATCHDOG_REDIS_URL) it is this machine's embedded Redis, the
    one in `state_dir` (the user's, not the run's temp one), started if need be.
    """
    from watchdog.escalation import queue

    run_id = uuid.uuid4().hex[:12]
    scoped = settings._replace(redis_prefix=f"{settings.redis_prefix}evals:{run_id}:")
    where = settings._replace(redis_url=redis_url or settings.redis_url,
                              state_dir=state_dir or settings.state_dir)
    conn = queue.connect(where, timeout_s=10.0)
    return LiveJudge(scoped, conn, label)
