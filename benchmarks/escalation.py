"""Escalation benchmark: escalate-to-verdict latency through real RQ workers, against a no-op job.

Run with the project's venv, with a Redis at --redis-url (default: $WATCHDOG_TEST_REDIS_URL or
redis://127.0.0.1:6379/0):

    .venv/bin/python benchmarks/escalation.py [--runs 30] [--jobs 40] [--json OUT]

It starts a fake judge (zero latency, verdict `ask`) in this process and two `rq worker -c
watchdog.escalation.worker_settings <queue> --with-scheduler` processes, then measures, in
interleaved rounds with a shuffled order:

  floor       a no-op RQ job (`os.getpid`) on the same queue, workers and serializer: enqueue,
              then poll its status with the hook's own backoff (5 ms, x1.5, up to 50 ms)
  judged      `watchdog.escalation.escalate.run(...)` for a `wait` escalation of a new command
              (a cache miss): connect, build the request, enqueue, wait for the verdict
  cache hit   the same call for a command judged before: answered from the verdict cache

and reports p50/p95, the pipeline's overhead (judged minus the fake judge's own service time)
against the floor, where each job's time goes (from the jobs' RQ timestamps), worker start-up,
the import costs, judged events per second with both workers busy, and a few runs of the real
`watchdog hook --watchdog` subprocess. Figures are reported, never asserted. Everything it
writes lives under its own Redis key prefix and queue (deleted at the end, never FLUSHDB) and in
a temp dir (removed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from watchdog import config
from watchdog.decisions import Decision, DecisionObject
from watchdog.escalation import escalate, fake_judge, pending, request
from watchdog.events import Event

TARGET_RATIO = 2.0  # judged overhead p50 <= 2x the no-op RQ round trip p50
CACHE_HIT_TARGET_MS = 5.0  # "a cache hit answers in a few ms"
WORKERS = 2
NOOP_FUNCTION = "os.getpid"  # importable, returns at once, JSON-serializable result
ASK = {"decision": "ask", "reason": "sends a local file to a remote host",
       "question": "Allow uploading this file?", "confidence": 0.8}
WORKER_START_TIMEOUT_S = 120.0
POLL_FIRST_S, POLL_MAX_S = 0.005, 0.05  # queue.wait_for's schedule

POLICY = """\
# METADATA
# scope: package
# title: benchmark escalation
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash"]
package cupcake.policies.bench_escalate

import rego.v1

escalate contains decision if {
\tinput.hook_event_name == "PreToolUse"
\tinput.tool_name == "Bash"
\tcontains(input.tool_input.command, "curl")
\tdecision := {"rule_id": "BENCH-WAIT", "reason": "uploads data", "severity": "MEDIUM",
\t\t"wait": true}
}
"""

# Run in a fresh process with the benchmark's env: what litellm costs in a worker, and why a
# work horse (forked from a worker that imported litellm but never called it) pays more.
LITELLM_PROBE = """\
import json, os, sys, time
t0 = time.perf_counter()
import watchdog.escalation.jobs  # what worker_settings preloads
from watchdog import config
from watchdog.escalation import judge, rubric
import_ms = (time.perf_counter() - t0) * 1000
settings = config.load()
payload = json.loads(sys.argv[1])

def use():
    # The two litellm steps of a job: the budget's worst case (tokenizer), then the call.
    messages = rubric.render(payload["rubric"], payload)
    t0 = time.perf_counter()
    judge.worst_case_cost(settings.judge_model, messages, settings.judge_max_tokens)
    t1 = time.perf_counter()
    result = judge.judge(payload, settings)
    t2 = time.perf_counter()
    assert result.verdict.decision == "ask", result
    return [(t1 - t0) * 1000, (t2 - t1) * 1000]

def forked():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, json.dumps(use()).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)

out = {"import_ms": import_ms}
out["horse_cold"] = [forked() for _ in range(3)]
out["first_use"] = use()
out["warm"] = [use() for _ in range(5)]
out["horse_after_warm"] = [forked() for _ in range(3)]
print(json.dumps(out))
"""


# --------------------------------------------------------------------------- measuring


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"runs": 0, "p50_ms": float("nan"), "p95_ms": float("nan"), "samples_ms": []}
    return {
        "runs": len(samples),
        "p50_ms": percentile(samples, 0.50),
        "p95_ms": percentile(samples, 0.95),
        "min_ms": min(samples),
        "mean_ms": sum(samples) / len(samples),
        "samples_ms": [round(s, 3) for s in samples],
    }


def compile_package() -> Path:
    """Bytecode for watchdog: an editable install writes none (see hook_latency.py)."""
    spec = importlib.util.find_spec("watchdog")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"watchdog is not importable with {sys.executable}; use the venv")
    pkg = Path(list(spec.submodule_search_locations)[0])
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(pkg)], check=True)
    return pkg


def wall_ms(cmd: list[str], env: dict[str, str], cwd: Path, stdin: bytes = b"",
            ) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=stdin, capture_output=True, env=env, cwd=cwd, timeout=120)
    return (time.perf_counter() - t0) * 1000, proc


def check_ok(proc: subprocess.CompletedProcess[bytes], label: str) -> None:
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed: exit {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace')[-2000:]}")


class ServiceClock:
    """The fake judge's own service time per request: do_POST from the parsed request line to
    the answer written (it serves in this process, so its handler can be timed directly)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: list[float] = []
        self._orig: Callable[..., None] | None = None

    def install(self) -> None:
        orig = fake_judge._Handler.do_POST
        clock = self

        def do_post(handler: Any) -> None:
            t0 = time.perf_counter()
            try:
                orig(handler)
            finally:
                with clock._lock:
                    clock._samples.append((time.perf_counter() - t0) * 1000)

        self._orig = orig
        fake_judge._Handler.do_POST = do_post  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._orig is not None:
            fake_judge._Handler.do_POST = self._orig  # type: ignore[method-assign]
            self._orig = None

    def take(self) -> list[float]:
        with self._lock:
            out, self._samples = self._samples, []
        return out


def _ts(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


# --------------------------------------------------------------------------- the world


class Bench:
    """One isolated world: Redis prefix and queue, user dirs, policies, fake judge, workers."""

    def __init__(self, tmp: Path, redis_url: str, fake: fake_judge.FakeJudge,
                 clock: ServiceClock, worker_class: str | None = None) -> None:
        self.worker_class = worker_class
        self.tag = uuid.uuid4().hex[:10]
        self.prefix = f"wdbench:{self.tag}:"
        self.queue_name = f"wdbench-{self.tag}"
        self.tmp = tmp
        self.fake = fake
        self.clock = clock
        self.redis_url = redis_url
        self.project = tmp / "project"
        self.root = self.project / ".watchdog"
        (self.root / "policies" / "claude").mkdir(parents=True)
        (self.root / "policies" / "claude" / "bench.rego").write_text(POLICY)
        home = tmp / "home"
        home.mkdir()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "XDG_"))}
        self.env = {
            **base,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "WATCHDOG_REDIS_URL": redis_url,
            "WATCHDOG_REDIS_PREFIX": self.prefix,
            "WATCHDOG_QUEUE": self.queue_name,
            "WATCHDOG_JUDGE_MODEL": "openai/gpt-4.1-mini",
            "WATCHDOG_JUDGE_API_BASE": f"{fake.url}/v1",
            "WATCHDOG_JUDGE_TIMEOUT_S": "10",
            "WATCHDOG_WAIT_DEADLINE_S": "10",
            "WATCHDOG_JOB_RETRY_BACKOFF_S": "0",
            "OPENAI_API_KEY": fake.token,
        }
        self.settings = config.load(env=self.env)
        self.manifest = {"content_hash": f"bench-{self.tag}"}
        self.conn = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.q = Queue(self.queue_name, connection=self.conn, serializer=JSONSerializer)
        self.job_ids: set[str] = set()
        self.workers: list[subprocess.Popen[bytes]] = []
        self.worker_names: set[str] = set()
        self.session = f"bench-{self.tag}"
        self.n = 0

    # -- events -----------------------------------------------------------------------------

    def event(self, command: str, session: str | None = None) -> Event:
        self.n += 1
        session = session or self.session
        tool_input: dict[str, Any] = {"command": command, "description": "Upload the notes"}
        raw: dict[str, Any] = {
            "session_id": session,
            "transcript_path": str(self.tmp / "no-transcript" / f"{session}.jsonl"),
            "cwd": str(self.project),
            "permission_mode": "default",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": tool_input,
            "tool_use_id": f"toolu_bench{self.n:012x}",
        }
        return Event("claude", "PreToolUse", session, str(self.project), raw, "Bash",
                     tool_input)

    @staticmethod
    def decision(wait: bool) -> Decision:
        esc = DecisionObject("BENCH-ESC", "benchmark escalation", "MEDIUM", rubric="general",
                             wait=wait)
        return Decision("allow", escalations=(esc,))

    def job_id_of(self, event: Event, decision: Decision) -> str:
        jid = str(request.build(event, decision, self.manifest, self.settings)["job_id"])
        self.job_ids.add(jid)
        return jid

    # -- workers ----------------------------------------------------------------------------

    def start_workers(self, count: int) -> list[float]:
        """Start `count` workers at once; ms from Popen to each one registering in Redis."""
        rq_bin = Path(sys.executable).with_name("rq")
        cmd = [str(rq_bin), "worker", "-c", "watchdog.escalation.worker_settings",
               self.queue_name, "--with-scheduler"]
        if self.worker_class:
            cmd += ["--worker-class", self.worker_class]
        started: dict[int, float] = {}
        for i in range(count):
            with open(self.tmp / f"worker{i}.log", "wb") as log:
                t0 = time.perf_counter()
                proc = subprocess.Popen(cmd, env=self.env, cwd=self.tmp, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            self.workers.append(proc)
            started[proc.pid] = t0
        ready: dict[int, float] = {}
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while len(ready) < count:
            now = time.perf_counter()
            for w in Worker.all(queue=self.q):
                if w.pid in started and w.pid not in ready:
                    ready[w.pid] = (now - started[w.pid]) * 1000
                    self.worker_names.add(w.name)
            for i, proc in enumerate(self.workers):
                if proc.poll() is not None:
                    tail = (self.tmp / f"worker{i}.log").read_text(errors="replace")[-3000:]
                    raise SystemExit(f"rq worker {i} exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not register within {WORKER_START_TIMEOUT_S} s")
            time.sleep(0.01)
        return [ready[p.pid] for p in self.workers]

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.workers = []

    # -- one measurement each ---------------------------------------------------------------

    def floor_once(self, label: str) -> dict[str, Any]:
        """A no-op job: enqueue, then poll its status on the hook's backoff schedule."""
        jid = f"{self.queue_name}-{label}"
        self.job_ids.add(jid)
        w0, t0 = time.time(), time.perf_counter()
        job = self.q.enqueue_call(NOOP_FUNCTION, job_id=jid, result_ttl=600, timeout=30)
        t_enq = time.perf_counter()
        deadline, poll = time.monotonic() + 30, POLL_FIRST_S
        while True:
            status = job.get_status(refresh=True)
            if status == JobStatus.FINISHED:
                break
            if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
                raise SystemExit(f"no-op job {jid} ended {status}: {job.exc_info}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no-op job {jid} did not finish in 30 s (status {status})")
            time.sleep(poll)
            poll = min(poll * 1.5, POLL_MAX_S)
        t1 = time.perf_counter()
        return {"ms": (t1 - t0) * 1000, "job_id": jid, "t0": w0,
                "enqueued": w0 + (t_enq - t0), "seen": w0 + (t1 - t0)}

    def escalate_once(self, command: str, wait: bool = True, session: str | None = None,
                      expect: str = "judged") -> dict[str, Any]:
        """escalate.run as the hook calls it; trace marks split the time."""
        event = self.event(command, session)
        decision = self.decision(wait)
        marks: list[tuple[float, str]] = []

        def trace(msg: str) -> None:
            marks.append((time.perf_counter(), msg))

        self.clock.take()
        w0, t0 = time.time(), time.perf_counter()
        out = escalate.run(event, decision, self.manifest, self.settings, trace)
        t1 = time.perf_counter()
        service = self.clock.take()
        kinds = {m.split(" ", 1)[0]: t for t, m in marks}
        text = " | ".join(m for _, m in marks)
        if "escalation" in kinds:
            raise SystemExit(f"escalation unavailable: {text}")
        if expect == "hit" and "cache hit" not in text:
            raise SystemExit(f"expected a cache hit, got: {text}")
        timed_out = "deadline" in text
        if expect == "judged" and wait and not timed_out and "verdict in time" not in text:
            raise SystemExit(f"expected a judged verdict, got: {text}")
        if wait and not timed_out and out.verb != "ask":
            raise SystemExit(f"the fake judge's ask did not come through: {out} ({text})")
        rec: dict[str, Any] = {"ms": (t1 - t0) * 1000, "t0": w0, "service_ms": service,
                               "timed_out": timed_out, "seen": None, "enqueued": None}
        if "enqueued" in kinds:
            rec["enqueued"] = w0 + (kinds["enqueued"] - t0)
            rec["job_id"] = self.job_id_of(event, decision)
        if "verdict" in kinds:
            rec["seen"] = w0 + (kinds["verdict"] - t0)
            rec["after_verdict_ms"] = (t1 - kinds["verdict"]) * 1000
        if "enqueued" in kinds:
            rec["before_enqueue_ms"] = (kinds["enqueued"] - t0) * 1000
        return rec

    # -- job timestamps ---------------------------------------------------------------------

    def job_stages(self, recs: list[dict[str, Any]], judged: bool) -> dict[str, list[float]]:
        """Per-stage ms from RQ's timestamps (wall clock, same machine) and the hook's marks."""
        ids = [r["job_id"] for r in recs if r.get("job_id")]
        jobs = {j.id: j for j in Job.fetch_many(ids, connection=self.conn,
                                                 serializer=JSONSerializer) if j is not None}
        out: dict[str, list[float]] = {k: [] for k in (
            "before_enqueue", "queued_to_started", "job_body", "litellm_call", "fake_service",
            "job_rest", "job_minus_service", "ready_to_seen", "after_verdict", "enqueued_to_ready")}
        for r in recs:
            job = jobs.get(r.get("job_id", ""))
            if job is None or job.started_at is None or job.ended_at is None:
                continue
            enq = _ts(job.enqueued_at) or r["enqueued"]
            started, ended = _ts(job.started_at), _ts(job.ended_at)
            assert started is not None and ended is not None
            out["before_enqueue"].append((r["enqueued"] - r["t0"]) * 1000)
            out["queued_to_started"].append((started - enq) * 1000)
            out["job_body"].append((ended - started) * 1000)
            ready = ended
            if judged:
                raw = self.conn.get(pending.result_key(self.prefix, job.id))
                record = json.loads(raw) if raw else {}
                ready = float(record.get("judged_at") or ended)
                llm = float(record.get("latency_ms") or 0)
                service = sum(r.get("service_ms") or [])
                out["litellm_call"].append(llm)
                out["fake_service"].append(service)
                out["job_rest"].append((ended - started) * 1000 - llm)
                out["job_minus_service"].append((ended - started) * 1000 - service)
                if r.get("after_verdict_ms") is not None:
                    out["after_verdict"].append(r["after_verdict_ms"])
            out["enqueued_to_ready"].append((ready - enq) * 1000)
            if r.get("seen") is not None:
                out["ready_to_seen"].append((r["seen"] - ready) * 1000)
        return out

    # -- cleanup ----------------------------------------------------------------------------

    def cleanup_redis(self) -> int:
        return delete_run_keys(self.conn, self.q, self.prefix, self.queue_name, self.job_ids,
                               self.worker_names)


def delete_run_keys(conn: Any, q: Any, prefix: str, queue_name: str, job_ids: set[str],
                    worker_names: Any) -> int:
    """Delete one run's keys only: everything under the prefix, and the RQ keys that name the
    run's queue (registries, locks), one of its jobs (jobs whose origin is the queue, including
    the hook subprocesses', their results and executions) or one of its workers. Never
    FLUSHDB. Shared by this benchmark and load.py; `job_ids` gains the jobs found."""
    pattern = prefix.replace("[", "\\[").replace("?", "\\?").replace("*", "\\*")
    batch = list(conn.scan_iter(match=pattern + "*", count=1000))
    with contextlib.suppress(redis.RedisError):
        q.delete(delete_jobs=True)
    job_keys = list(conn.scan_iter(match="rq:job:*", count=1000))
    pipe = conn.pipeline(transaction=False)
    for key in job_keys:
        pipe.hget(key, "origin")
    for key, origin in zip(job_keys, pipe.execute(), strict=True):
        if origin == queue_name.encode():
            name = key.decode() if isinstance(key, bytes) else str(key)
            job_ids.add(name.removeprefix("rq:job:"))
    owned = [t.encode() for t in (queue_name, *job_ids, *worker_names)]
    for key in conn.scan_iter(match="rq:*", count=1000):
        raw = key if isinstance(key, bytes) else str(key).encode()
        if any(t in raw for t in owned):
            batch.append(key)
    deleted = 0
    for i in range(0, len(batch), 500):
        deleted += int(conn.delete(*batch[i:i + 500]))
    return deleted


# --------------------------------------------------------------------------- phases


def bench_imports(b: Bench, runs: int, rng: random.Random) -> dict[str, Any]:
    """Process start alone, the hook's escalation imports, and the worker's preload."""
    cmds = {
        "pass": [sys.executable, "-c", "pass"],
        "import_escalate": [sys.executable, "-c", "import watchdog.escalation.escalate"],
        "import_jobs": [sys.executable, "-c", "import watchdog.escalation.jobs"],
    }
    series: dict[str, list[float]] = {k: [] for k in cmds}
    for i in range(runs):
        order = list(cmds)
        rng.shuffle(order)
        for name in order:
            if name == "import_jobs" and i >= 2:
                continue  # litellm: seconds a run, two are enough
            ms, proc = wall_ms(cmds[name], b.env, b.tmp)
            check_ok(proc, " ".join(cmds[name][1:]))
            series[name].append(ms)
    return {k: summary(v) for k, v in series.items()}


def bench_litellm(b: Bench) -> dict[str, Any]:
    event = b.event("curl -d @probe.txt https://example.com/probe")
    payload = request.build(event, b.decision(True), b.manifest, b.settings)
    ms, proc = wall_ms([sys.executable, "-c", LITELLM_PROBE, json.dumps(payload)], b.env, b.tmp)
    check_ok(proc, "litellm probe")
    b.clock.take()
    out: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    out["wall_ms"] = ms
    return out


def bench_latency(b: Bench, runs: int, rng: random.Random) -> dict[str, Any]:
    # Warm-up: first-call costs in this process (detect-secrets, rubric files, connections)
    # and on the workers; the judged warm-up command is the cache-hit command.
    hit_cmd = f"curl -d @notes.txt https://example.com/upload/{b.tag}"
    b.floor_once("warm-0")
    b.escalate_once(hit_cmd)
    b.floor_once("warm-1")
    b.escalate_once(f"curl -d @warm.txt https://example.com/upload/{b.tag}")
    b.escalate_once(hit_cmd, expect="hit")
    recs: dict[str, list[dict[str, Any]]] = {"floor": [], "judged": [], "hit": []}
    for i in range(runs):
        order = list(recs)
        rng.shuffle(order)
        for name in order:
            if name == "floor":
                recs[name].append(b.floor_once(f"floor-{i}"))
            elif name == "judged":
                recs[name].append(b.escalate_once(
                    f"curl -d @notes-{i}.txt https://example.com/upload/{b.tag}"))
            else:
                recs[name].append(b.escalate_once(hit_cmd, expect="hit"))
    judged_ok = [r for r in recs["judged"] if not r["timed_out"]]
    overhead = [r["ms"] - sum(r["service_ms"]) for r in judged_ok]
    return {
        "floor": summary([r["ms"] for r in recs["floor"]]),
        "judged": summary([r["ms"] for r in judged_ok]),
        "judged_overhead": summary(overhead),
        "judged_timed_out": sum(1 for r in recs["judged"] if r["timed_out"]),
        "fake_service": summary([s for r in judged_ok for s in r["service_ms"]]),
        "model_calls_per_judged": [len(r["service_ms"]) for r in judged_ok],
        "hit": summary([r["ms"] for r in recs["hit"]]),
        "hit_lookup": summary([(r["seen"] - r["t0"]) * 1000 for r in recs["hit"]]),
        "hit_after": summary([r["after_verdict_ms"] for r in recs["hit"]]),
        "stages_floor": {k: summary(v) for k, v in b.job_stages(recs["floor"], False).items()
                         if v},
        "stages_judged": {k: summary(v) for k, v in b.job_stages(judged_ok, True).items() if v},
    }


def bench_throughput(b: Bench, jobs: int) -> dict[str, Any]:
    """M no-op jobs, then M distinct async escalations, enqueued as fast as possible."""
    ids = [f"{b.queue_name}-tput-{i}" for i in range(jobs)]
    b.job_ids.update(ids)
    t0 = time.perf_counter()
    for jid in ids:
        b.q.enqueue_call(NOOP_FUNCTION, job_id=jid, result_ttl=600, timeout=30)
    t_enq = time.perf_counter()
    keys = [Job.key_for(j) for j in ids]
    deadline = time.monotonic() + 60 + jobs
    while True:
        pipe = b.conn.pipeline(transaction=False)
        for k in keys:
            pipe.hget(k, "status")
        states = pipe.execute()
        if all(s == b"finished" for s in states):
            break
        if any(s == b"failed" for s in states) or time.monotonic() > deadline:
            raise SystemExit(f"no-op throughput jobs did not finish: {set(states)}")
        time.sleep(0.005)
    t_done = time.perf_counter()
    noop = {"jobs": jobs, "enqueue_s": t_enq - t0, "total_s": t_done - t0,
            "jobs_per_s": jobs / (t_done - t0)}

    events = [b.event(f"curl -d @batch-{i}.txt https://example.com/batch/{b.tag}",
                      session=f"{b.session}-tput-{i}") for i in range(jobs)]
    decision = b.decision(False)
    jids = [b.job_id_of(ev, decision) for ev in events]
    result_keys = [pending.result_key(b.prefix, j) for j in jids]
    b.clock.take()

    def quiet(msg: str) -> None:
        pass

    t0 = time.perf_counter()
    for ev in events:
        out = escalate.run(ev, decision, b.manifest, b.settings, quiet)
        if out.notices:
            raise SystemExit(f"escalation failed: {out.notices}")
    t_enq = time.perf_counter()
    deadline = time.monotonic() + 120 + 5 * jobs
    while b.conn.exists(*result_keys) < jobs:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {b.conn.exists(*result_keys)} of {jobs} verdicts arrived")
        time.sleep(0.005)
    t_done = time.perf_counter()
    service = b.clock.take()
    bodies: list[float] = []
    for job in Job.fetch_many(jids, connection=b.conn, serializer=JSONSerializer):
        if job is not None and job.started_at and job.ended_at:
            bodies.append((job.ended_at - job.started_at).total_seconds() * 1000)
    judged = {"jobs": jobs, "enqueue_s": t_enq - t0, "total_s": t_done - t0,
              "events_per_s": jobs / (t_done - t0), "model_calls": len(service),
              "job_body": summary(bodies),
              "worker_busy_share": sum(bodies) / 1000 / (WORKERS * (t_done - t0))}
    return {"noop": noop, "judged": judged}


def bench_hook(b: Bench, runs: int, rng: random.Random) -> dict[str, Any]:
    """The real hook subprocess, interleaved with `python -c pass` and the import alone."""
    hook_bin = Path(sys.executable).with_name("watchdog")
    if not hook_bin.exists():
        raise SystemExit(f"no watchdog console script at {hook_bin}; run with the venv python")
    cmd = [str(hook_bin), "hook", "--harness", "claude", "--watchdog", "--policy-dir",
           str(b.root)]
    hit_cmd = f"curl -d @hook.txt https://example.com/hook/{b.tag}"

    def hook(command: str) -> tuple[float, str, int]:
        data = json.dumps(b.event(command).raw).encode()
        b.clock.take()
        ms, proc = wall_ms(cmd, b.env, b.project, data)
        calls = len(b.clock.take())
        if proc.returncode != 0 or b"Traceback" in proc.stderr:
            raise SystemExit(f"hook failed: exit {proc.returncode}: {proc.stderr[-2000:]!r}")
        out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        answer = (out.get("hookSpecificOutput") or {}).get("permissionDecision") or "allow"
        if out.get("systemMessage"):
            answer += f" (systemMessage: {out['systemMessage'][:120]})"
        return ms, answer, calls

    # Warm-up: compile the bundle, judge the cache-hit command once.
    hook("git status --short")
    hook(hit_cmd)
    series: dict[str, list[float]] = {"pass": [], "plain": [], "hit": [], "judged": []}
    answers: dict[str, set[str]] = {k: set() for k in series}
    for i in range(runs):
        order = list(series)
        rng.shuffle(order)
        for name in order:
            if name == "pass":
                ms, proc = wall_ms([sys.executable, "-c", "pass"], b.env, b.project)
                check_ok(proc, "python -c pass")
                series[name].append(ms)
                continue
            command = {"plain": "git status --short", "hit": hit_cmd,
                       "judged": f"curl -d @hook-{i}.txt https://example.com/hook/{b.tag}"}[name]
            ms, answer, calls = hook(command)
            series[name].append(ms)
            answers[name].add(f"{answer}, {calls} model call(s)")
    out: dict[str, Any] = {k: summary(v) for k, v in series.items()}
    out["answers"] = {k: sorted(v) for k, v in answers.items() if v}
    return out


# --------------------------------------------------------------------------- report


def ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b else "   -  "


def print_report(res: dict[str, Any]) -> None:
    imp, lat, tput, hk, llm = (res["imports"], res["latency"], res["throughput"], res["hook"],
                               res["litellm"])
    p = imp["pass"]["p50_ms"]
    print()
    print("Start-up and imports (wall clock, ms)")
    rows = [("python -c pass", imp["pass"]),
            ("python -c 'import watchdog.escalation.escalate'", imp["import_escalate"]),
            ("python -c 'import watchdog.escalation.jobs'", imp["import_jobs"])]
    print(f"  {'':<52}{'runs':>5}{'p50':>9}{'p95':>9}{'- pass':>9}")
    for title, row in rows:
        print(f"  {title:<52}{row['runs']:>5}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
              f"{row['p50_ms'] - p:>+9.1f}")
    ws = res["worker_start_ms"]
    print(f"  rq worker start -> registered in Redis ({len(ws)} started at once): "
          + ", ".join(f"{x:.0f}" for x in ws))

    f50 = lat["floor"]["p50_ms"]
    print()
    print(f"Escalate-to-verdict, in process, {lat['floor']['runs']} interleaved rounds (ms; "
          f"{WORKERS} workers, fake judge with 0 s latency)")
    header = f"  {'scenario':<46}{'p50':>9}{'p95':>9}{'vs floor':>10}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for title, key in (("floor: no-op RQ job round trip", "floor"),
                       ("escalate.run, wait, cache miss (judged)", "judged"),
                       ("  overhead = judged - fake judge service", "judged_overhead"),
                       ("escalate.run, cache hit", "hit")):
        row = lat[key]
        print(f"  {title:<46}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
              f"{ratio(row['p50_ms'], f50):>10}")
    print(f"  {'  cache hit: call -> verdict found':<46}{lat['hit_lookup']['p50_ms']:>9.1f}"
          f"{lat['hit_lookup']['p95_ms']:>9.1f}")
    print(f"  {'  cache hit: found -> returns':<46}{lat['hit_after']['p50_ms']:>9.1f}"
          f"{lat['hit_after']['p95_ms']:>9.1f}")
    if lat["judged_timed_out"]:
        print(f"  ({lat['judged_timed_out']} judged runs hit the wait deadline; left out)")

    print()
    print("Where a job's time goes (p50 per stage, ms; RQ timestamps + hook trace marks)")
    sf, sj = lat["stages_floor"], lat["stages_judged"]
    stages = [
        ("before_enqueue", "caller: call -> enqueued (connect, request, cache miss)"),
        ("queued_to_started", "enqueued -> horse started (dequeue, fork, setup)"),
        ("job_body", "horse started -> job ended (the job function)"),
        ("litellm_call", "  of which judge.judge (litellm, in the horse)"),
        ("fake_service", "  of which fake judge service (server side)"),
        ("job_rest", "  job body minus judge.judge (cache, budget, write)"),
        ("job_minus_service", "  job body minus fake service = in-job overhead"),
        ("enqueued_to_ready", "enqueued -> result ready (job end / verdict written)"),
        ("ready_to_seen", "ready -> seen by the poller (RQ bookkeeping + poll)"),
        ("after_verdict", "verdict seen -> escalate.run returns (log, budget)"),
    ]
    print(f"  {'stage':<58}{'floor':>9}{'judged':>9}")
    for key, title in stages:
        a = f"{sf[key]['p50_ms']:.1f}" if key in sf else "-"
        c = f"{sj[key]['p50_ms']:.1f}" if key in sj else "-"
        print(f"  {title:<58}{a:>9}{c:>9}")

    print()
    print("litellm per use, in a probe process that imports what a worker preloads (ms; "
          "worst_case_cost = the budget's tokenizer step, judge.judge = the model call)")
    print(f"  import watchdog.escalation.jobs: {llm['import_ms']:.0f} ms")
    print(f"  {'':<52}{'worst_case_cost':>16}{'judge.judge':>13}")
    for title, key in (("work horse today: forked after the import only", "horse_cold"),
                       ("first use in a process", "first_use"),
                       ("warm, same process", "warm"),
                       ("horse forked after one warm use", "horse_after_warm")):
        uses: list[list[float]] = llm[key] if key != "first_use" else [llm[key]]
        wc = percentile([x[0] for x in uses], 0.5)
        jc = percentile([x[1] for x in uses], 0.5)
        print(f"  {title + f' (p50 of {len(uses)})':<52}{wc:>16.1f}{jc:>13.1f}")

    print()
    n, j = tput["noop"], tput["judged"]
    print(f"Throughput: {n['jobs']} jobs enqueued at once, {WORKERS} workers")
    print(f"  no-op RQ jobs:  {n['jobs_per_s']:7.1f} jobs/s    (all done in {n['total_s']:.2f} s; "
          f"enqueue {n['enqueue_s'] * 1000:.0f} ms)")
    print(f"  judged events:  {j['events_per_s']:7.1f} events/s  (all verdicts in "
          f"{j['total_s']:.2f} s; {j['jobs']} escalate.run calls took "
          f"{j['enqueue_s'] * 1000:.0f} ms; job body p50 {j['job_body']['p50_ms']:.0f} ms; "
          f"workers busy {j['worker_busy_share'] * 100:.0f}%; {j['model_calls']} model calls)")

    print()
    print(f"Hook subprocess, wall clock incl. process start and imports, {hk['pass']['runs']} "
          "rounds (ms)")
    hp = hk["pass"]["p50_ms"]
    print(f"  {'':<44}{'p50':>9}{'p95':>9}{'- pass':>9}")
    for title, key in (("python -c pass", "pass"),
                       ("hook --watchdog, nothing escalates", "plain"),
                       ("hook --watchdog, cache hit", "hit"),
                       ("hook --watchdog, wait, judged", "judged")):
        row = hk[key]
        print(f"  {title:<44}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
              f"{row['p50_ms'] - hp:>+9.1f}")
    for key, values in hk["answers"].items():
        print(f"    {key}: {'; '.join(values)}")

    print()
    over = lat["judged_overhead"]["p50_ms"]
    r = over / f50 if f50 else float("nan")
    print(f"Target: judged overhead p50 <= {TARGET_RATIO:.2f}x no-op RQ round trip p50")
    state = "met" if r <= TARGET_RATIO else "NOT met"
    print(f"  {over:.1f} ms / {f50:.1f} ms = {r:.2f}x -> {state}")
    hit = lat["hit"]["p50_ms"]
    print(f"Target: cache hit p50 <= {CACHE_HIT_TARGET_MS:.0f} ms (in process; a hook process "
          f"adds {hk['hit']['p50_ms'] - hp:.0f} ms of start-up and imports)")
    print(f"  {hit:.1f} ms -> {'met' if hit <= CACHE_HIT_TARGET_MS else 'NOT met'}")


# --------------------------------------------------------------------------- main


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in ("rq", "redis", "litellm"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30,
                        help="interleaved rounds of floor / judged / cache hit (default 30)")
    parser.add_argument("--jobs", type=int, default=40,
                        help="jobs per throughput batch (default 40)")
    parser.add_argument("--hook-runs", type=int, default=5,
                        help="rounds of the hook subprocess series (default 5)")
    parser.add_argument("--redis-url", default=os.environ.get(
        "WATCHDOG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--worker-class", metavar="CLASS",
                        help="rq worker class, e.g. rq.worker.SimpleWorker (runs jobs in the "
                             "worker process, no fork); default: rq's forking Worker")
    parser.add_argument("--seed", type=int, default=1, help="shuffle seed for the run order")
    parser.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (worker logs, state dir); Redis keys still go")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.jobs < 1 or args.hook_runs < 1:
        parser.error("--runs, --jobs and --hook-runs must be >= 1")

    probe = redis.Redis.from_url(args.redis_url, socket_timeout=5)
    try:
        server = probe.info("server").get("redis_version", "?")
    except redis.RedisError as exc:
        raise SystemExit(f"no Redis at {args.redis_url} ({exc}): start one with "
                         "'redis-server --daemonize yes' or pass --redis-url") from exc
    finally:
        probe.close()
    pkg = compile_package()
    vers = versions()
    print(f"compiled bytecode: python -m compileall -q {pkg}")
    print(f"python: {sys.executable} ({vers['python']}); rq {vers['rq']}, redis-py "
          f"{vers['redis']}, litellm {vers['litellm']}; Redis {server} at {args.redis_url}; "
          f"{os.cpu_count()} CPUs")

    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="watchdog-bench-esc-"))
    clock = ServiceClock()
    clock.install()
    results: dict[str, Any] = {}
    started = time.perf_counter()
    bench: Bench | None = None
    fake = fake_judge.FakeJudge(token=f"wdbench-{uuid.uuid4().hex}", default=ASK, latency_s=0.0)
    try:
        fake.start()
        bench = Bench(tmp, args.redis_url, fake, clock, args.worker_class)
        print(f"redis prefix {bench.prefix}  queue {bench.queue_name}  fake judge {fake.url}")
        print("  imports: python -c pass / import escalate / import jobs ...", flush=True)
        results["imports"] = bench_imports(bench, max(5, args.hook_runs), rng)
        print("  litellm probe (import, forked and warm calls) ...", flush=True)
        results["litellm"] = bench_litellm(bench)
        print(f"  starting {WORKERS} rq workers ({args.worker_class or 'rq.worker.Worker'}) ...",
              flush=True)
        results["worker_start_ms"] = bench.start_workers(WORKERS)
        print(f"  {args.runs} rounds of floor / judged / cache hit ...", flush=True)
        results["latency"] = bench_latency(bench, args.runs, rng)
        print(f"  throughput: {args.jobs} no-op jobs, then {args.jobs} judged events ...",
              flush=True)
        results["throughput"] = bench_throughput(bench, args.jobs)
        print(f"  hook subprocess: {args.hook_runs} rounds ...", flush=True)
        results["hook"] = bench_hook(bench, args.hook_runs, rng)
    finally:
        if bench is not None:
            bench.stop_workers()
        fake.stop()
        clock.uninstall()
        if bench is not None:
            deleted = bench.cleanup_redis()
            print(f"  cleanup: stopped workers and fake judge, deleted {deleted} Redis keys "
                  f"({bench.prefix}*, queue {bench.queue_name}, its jobs)")
            bench.conn.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_report(results)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    if args.json:
        doc = {"python": sys.executable, "versions": vers, "redis_version": server,
               "cpus": os.cpu_count(), "runs": args.runs, "jobs": args.jobs,
               "hook_runs": args.hook_runs, "workers": WORKERS,
               "worker_class": args.worker_class or "rq.worker.Worker",
               "target_overhead_over_floor": TARGET_RATIO,
               "target_cache_hit_ms": CACHE_HIT_TARGET_MS, "results": results}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
