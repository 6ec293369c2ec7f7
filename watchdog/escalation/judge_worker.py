"""The RQ worker class `watchdog worker` runs: RQ's own, with one log line per judge failure.

A 429, a 500 or a timeout from the model is expected traffic: the job raises JudgeTransient so
that RQ retries it with backoff. RQ's Worker logs every job exception with its whole chained
traceback (litellm's, httpx's, ours), which buries real problems on the workers' stderr. Ours
logs a JudgeError as one line (job, error, retries left) and keeps RQ's full report for
everything else: those are bugs. Use it with plain RQ too: `rq worker -w
watchdog.escalation.judge_worker.JudgeWorker -c watchdog.escalation.worker_settings watchdog`.
"""

from __future__ import annotations

from typing import Any

from rq import Worker
from rq.job import Job

from watchdog.errors import JudgeError


class JudgeWorker(Worker):
    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        exc = exc_info[1] if len(exc_info) > 1 else None
        if not isinstance(exc, JudgeError):
            super().handle_exception(job, *exc_info)
            return
        left = job.retries_left or 0
        self.log.warning(
            "job %s: %s: %s (%s)", job.id[:24], exc.kind, str(exc)[:300],
            f"{left} retr{'y' if left == 1 else 'ies'} left" if left else "no retries left",
        )
        # RQ's exception handlers (none by default) still run, as in Worker.handle_exception.
        from rq.job_lifecycle import call_exception_handlers

        call_exception_handlers(self._exc_handlers, job, *exc_info)
