"""`watchdog worker [-n N] [--burst]`: start and supervise N RQ judge workers for the queue.

Each worker is a plain `rq worker` process (same Redis, same queue, its own name), so RQ's own
tools (`rq info`, the failed job registry, `rq requeue`) see them as usual. Workers on other
machines join by running the same command with the same `WATCHDOG_REDIS_URL`.

The parent supervises: RQ's worker exits when Redis goes away mid-job (a `ConnectionError` in
`monitor_work_horse`) or crashes, and a fleet that silently shrinks to zero leaves every
escalation unanswered. A worker that exits is restarted with backoff (1 s, doubling to 30 s;
reset once it has run a minute), under a new name, since RQ refuses a name whose key has not
expired. The job a dead worker held is RQ's "abandoned" job: with `--maintenance-interval 30`
any live worker finds it once its execution expires (the job timeout + 60 s) and retries it or,
with no retries left, fails it, and `jobs.on_failure` delivers an `unknown` verdict.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from watchdog import config
from watchdog.errors import QueueUnavailable

SETTINGS_MODULE = "watchdog.escalation.worker_settings"
WORKER_CLASS = "watchdog.escalation.judge_worker.JudgeWorker"
MAINTENANCE_INTERVAL_S = 30
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0  # a worker that ran this long resets its backoff
READY_TIMEOUT_S = 90.0


def command(settings: config.Settings, name: str, burst: bool) -> list[str]:
    rq_exe = shutil.which("rq", path=os.path.dirname(sys.executable)) or shutil.which("rq")
    base = [rq_exe] if rq_exe else [sys.executable, "-m", "rq.cli"]
    cmd = base + ["worker", "-c", SETTINGS_MODULE, "-w", WORKER_CLASS, "--name", name,
                  "--with-scheduler", "--maintenance-interval", str(MAINTENANCE_INTERVAL_S)]
    if burst:
        cmd.append("--burst")
    return cmd + [settings.queue]


def _say(text: str) -> None:
    sys.stderr.write(f"watchdog worker: {text}\n")
    sys.stderr.flush()


class _Slot:
    """One supervised worker process: its restarts and backoff."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[Any] | None = None
        self.started = 0.0
        self.generation = 0
        self.failures = 0
        self.restart_at: float | None = None
        self.name = ""


class Supervisor:
    def __init__(self, settings: config.Settings, count: int, burst: bool,
                 verbose: bool) -> None:
        self.settings = settings
        self.burst = burst
        self.verbose = verbose
        self.host = socket.gethostname().split(".")[0]
        self.slots = [_Slot(i) for i in range(max(1, count))]
        self.stopping = False

    def _start(self, slot: _Slot) -> None:
        slot.generation += 1
        slot.name = f"watchdog-{self.host}-{os.getpid()}-{slot.index}-{slot.generation}"
        cmd = command(self.settings, slot.name, self.burst) + ([] if self.verbose else ["--quiet"])
        # Its own process group: when the worker dies, what it forked (RQ's scheduler, a work
        # horse) would live on as orphans that keep dequeuing jobs nobody runs.
        slot.proc = subprocess.Popen(cmd, start_new_session=True)
        slot.started = time.monotonic()
        slot.restart_at = None

    def _unregister(self, slot: _Slot) -> str | None:
        """Take a dead worker out of RQ's registry at once (its heartbeat key would keep it
        "alive" for minutes, and hooks check the registry before waiting); returns the id of
        the job it held, if any."""
        from rq import Worker
        from rq.serializers import JSONSerializer

        from watchdog.escalation import queue
        from watchdog.escalation.redis_errors import redis_errors

        try:
            conn = queue.connect(self.settings)
            with redis_errors("unregistering a dead worker"):
                worker = Worker.find_by_key(f"rq:worker:{slot.name}", connection=conn,
                                            serializer=JSONSerializer)
                if worker is None:
                    return None
                job_id = worker.get_current_job_id()
                worker.register_death()  # type: ignore[no-untyped-call]
            conn.close()
            return job_id
        except QueueUnavailable as exc:
            _say(f"could not unregister worker {slot.index}: {exc}")
            return None

    def _exited(self, slot: _Slot, code: int) -> None:
        """Decide what a worker's exit means: done (burst, or we are stopping) or a restart."""
        if slot.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(slot.proc.pid, signal.SIGKILL)  # its orphans, if any
        slot.proc = None
        held = None if (self.burst and code == 0) or self.stopping else self._unregister(slot)
        if held:
            _say(f"worker {slot.index} died holding job {held[:24]}: RQ retries it (or it is "
                 f"reported as unknown) once its execution expires, within "
                 f"{self.settings.job_timeout_s + 60 + MAINTENANCE_INTERVAL_S} s")
        if self.stopping or (self.burst and code == 0):
            return
        ran = time.monotonic() - slot.started
        slot.failures = 0 if ran >= HEALTHY_AFTER_S else slot.failures + 1
        delay = min(BACKOFF_MAX_S, 2.0 ** max(0, slot.failures - 1))
        if self.burst and slot.failures > 3:
            _say(f"worker {slot.index} exited with code {code} again; giving up (burst mode)")
            return
        _say(f"worker {slot.index} exited with code {code} after {ran:.0f} s; restarting it "
             f"in {delay:.0f} s (its job, if any, is retried or reported once RQ finds it "
             "abandoned)")
        slot.restart_at = time.monotonic() + delay

    def _ready_line(self) -> None:
        from watchdog.escalation import queue

        where = self.settings.redis_url or f"the embedded Redis ({queue.redis_url(self.settings)})"
        deadline = time.monotonic() + READY_TIMEOUT_S
        want = len(self.slots)
        live = 0
        while not self.stopping and time.monotonic() < deadline:
            try:
                conn = queue.connect(self.settings)
                live = queue.live_workers(conn, self.settings.queue)
                conn.close()
            except QueueUnavailable:
                live = 0
            if live >= want or all(s.proc is None or s.proc.poll() is not None
                                   for s in self.slots):
                break
            time.sleep(0.5)
        exited = all(s.proc is None or s.proc.poll() is not None for s in self.slots)
        if live >= want:
            _say(f"ready: {live} worker(s) serving queue '{self.settings.queue}' on {where}")
        elif self.burst and exited:
            return  # burst workers that emptied the queue before we saw them: nothing to say
        elif not self.stopping:
            _say(f"only {live} of {want} worker(s) registered on queue "
                 f"'{self.settings.queue}' at {where} after {READY_TIMEOUT_S:.0f} s; see "
                 "their output above")

    def run(self) -> int:
        def stop(signum: int, _frame: Any) -> None:
            self.stopping = True
            for s in self.slots:
                if s.proc is not None and s.proc.poll() is None:
                    s.proc.send_signal(signum)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for slot in self.slots:
            self._start(slot)
        self._ready_line()
        codes: list[int] = []
        while True:
            active = False
            for slot in self.slots:
                if slot.proc is not None:
                    code = slot.proc.poll()
                    if code is None:
                        active = True
                        continue
                    codes.append(code)
                    self._exited(slot, code)
                if slot.restart_at is not None and not self.stopping:
                    active = True
                    if time.monotonic() >= slot.restart_at:
                        self._start(slot)
            if not active:
                break
            time.sleep(0.2)
        if self.stopping:
            return 0
        return max(codes) if codes else 0


def run(count: int, burst: bool, verbose: bool = False) -> int:
    """Check Redis first (a clear error, not RQ's `Error 111`), then supervise the workers."""
    from watchdog.escalation import queue

    settings = config.load()
    try:
        queue.connect(settings).close()
    except QueueUnavailable as exc:
        _say(str(exc))
        return 1
    return Supervisor(settings, count, burst, verbose).run()
