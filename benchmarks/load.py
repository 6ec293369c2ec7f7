"""Load benchmark: parallel agent sessions through `watchdog hook --watchdog`, real RQ workers,
a slow and flaky fake judge and a budget that runs out mid-run.

Run with the project's venv, with a Redis at --redis-url (default: $WATCHDOG_TEST_REDIS_URL or
redis://127.0.0.1:6379/0):

    .venv/bin/python benchmarks/load.py            # 8 lanes x 300 events, 4 workers
    .venv/bin/python benchmarks/load.py --quick    # 4 lanes x 50 events, 2 workers

Each lane is one agent session: a driver process that sends its events one after the other,
each to a new `watchdog hook --harness claude --watchdog --policy-dir policies` process (what
Claude Code does), and times it as the agent sees it. About 20% of the events escalate under
the shipped policy pack, half of those drawn from a small pool shared by every lane (so the
verdict cache answers them) and half new. `watchdog worker -n N` serves the judge queue; the
fake judge answers in this process after a fixed latency, with scripted HTTP 500 and 429
errors; the USD cap is sized to run out part-way. After the lanes finish, every session that
is still owed a verdict gets one more event until it is delivered or a deadline passes.

It prints hook latency p50/p99 (plain and escalating) against floors measured in the same run
(`python -c pass`, a no-op RQ job's round trip on the same workers), events/s against no-op
round trips/s with as many parallel clients as lanes, the judge's calls and errors, cache hits,
and the two correctness figures: verdicts lost (goal 0) and budget overshoot in dollars and
calls (goal 0). `run(...)` is what tests/test_load.py calls with a small size. Speed is never
asserted. Everything it writes lives under its own Redis key prefix and queue (deleted at the
end, never FLUSHDB) and in a temp dir (removed unless --keep).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import redis
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from watchdog import config
from watchdog.decisions import BLOCKING
from watchdog.escalation import fake_judge, pending

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
OUT_DIR = Path(__file__).resolve().parent / "out"
MODEL = "openai/gpt-4.1-mini"  # priced by litellm's bundled table, so the budget binds
VERDICT = {"decision": "warn", "reason": "load benchmark: judged by the fake judge",
           "confidence": 0.7}
USER_PROMPT = "tidy the repository, update the dependencies and ship the release branch"
NOOP_FUNCTION = "os.getpid"  # importable, returns at once, JSON-serializable result
WORKER_START_TIMEOUT_S = 180.0
HOOK_TIMEOUT_S = 120.0


def _sibling(name: str) -> Any:
    """A module of this folder by path: benchmarks/ is not a package, and tests import us by
    path too, so a plain `import escalation` would depend on how we were started."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_watchdog_bench_{name}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_esc = _sibling("escalation")
percentile, compile_package = _esc.percentile, _esc.compile_package


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    lanes: int = 8
    events: int = 300  # per lane
    workers: int = 4
    escalate_fraction: float = 0.2
    repeat_share: float = 0.5  # of escalating events, the share drawn from the shared pool
    repeat_pool: int = 8  # distinct escalating events in that pool
    judge_latency_ms: float = 200.0
    error_rate: float = 0.05  # of model calls answered with HTTP 500 or 429
    budget_usd: float | None = None  # None: sized from the run (see budget_fraction)
    budget_fraction: float = 0.5  # share of the run's distinct escalations the cap pays for
    wait_deadline_s: float = 8.0
    retry_backoff_s: int = 0  # first RQ retry delay (then x5, x15)
    drain_timeout_s: float = 60.0
    think_ms: float = 0.0  # pause between a lane's events
    seed: int = 1
    redis_url: str = "redis://127.0.0.1:6379/0"


QUICK: dict[str, Any] = {"lanes": 4, "events": 50, "workers": 2}


# --------------------------------------------------------------------------- events
#
# Templates are (hook event, tool, tool_input, extra fields); strings are formatted with
# {p} (the project dir), {home}, {n} (the event's index) and, for escalating ones, {tag}.
# `_check_templates` evaluates every one against the shipped pack before the run, so a change
# to the pack that stops one escalating (or makes a plain one escalate) stops the benchmark.

PLAIN: tuple[tuple[int, str, str | None, dict[str, Any] | None, dict[str, Any]], ...] = (
    (4, "PreToolUse", "Bash", {"command": "git status --short"}, {}),
    (2, "PreToolUse", "Bash", {"command": "ls -la src"}, {}),
    (2, "PreToolUse", "Bash", {"command": "pytest -q tests/test_api.py"}, {}),
    (1, "PreToolUse", "Bash", {"command": "cat README.md"}, {}),
    (1, "PreToolUse", "Bash", {"command": "npm run build"}, {}),
    (1, "PreToolUse", "Bash", {"command": "git diff HEAD~1 -- src/app.py"}, {}),
    (3, "PreToolUse", "Read", {"file_path": "{p}/src/app.py"}, {}),
    (2, "PreToolUse", "Edit", {"file_path": "{p}/src/app.py", "old_string": "x = 1",
                               "new_string": "x = {n}"}, {}),
    (1, "PreToolUse", "Grep", {"pattern": "TODO", "path": "{p}"}, {}),
    (1, "UserPromptSubmit", None, None, {"prompt": "now run the tests"}),
    (2, "PostToolUse", "Bash", {"command": "ls"}, {"tool_response": {"stdout": "src\ntests"}}),
    (1, "PreToolUse", "Bash", {"command": "rm -rf ~"}, {}),  # a deny: blocks, never escalates
)

ESCALATING: tuple[tuple[str, str, dict[str, Any], dict[str, Any]], ...] = (
    ("PreToolUse", "Bash", {"command": "rm -rf ./src/module_{tag}"}, {}),
    ("PreToolUse", "Bash", {"command": "git branch -D feature/old-{tag}"}, {}),
    ("PreToolUse", "Bash", {"command": "npx create-thing-{tag}@latest"}, {}),
    ("PreToolUse", "Bash", {"command": "git commit --no-verify -am 'wip {tag}'"}, {}),
    ("PreToolUse", "Read", {"file_path": "{p}/deploy-{tag}/.env.production"}, {}),
    ("PreToolUse", "Edit", {"file_path": "{p}/.github/workflows/ci-{tag}.yml",
                            "old_string": "runs-on: ubuntu-22.04",
                            "new_string": "runs-on: ubuntu-24.04"}, {}),
    ("PreToolUse", "Bash", {"command": "terraform apply -auto-approve -target=module.{tag}"}, {}),
    ("PreToolUse", "Bash", {"command": "crontab -l | { cat; echo '0 * * * * ./sync-{tag}.sh'; }"
                                       " | crontab -"}, {}),
    ("PreToolUse", "Bash", {"command": "curl -X POST -d @report-{tag}.json "
                                       "https://api.example.com/upload"}, {}),
    ("PreToolUse", "Bash", {"command": "pip install leftpad-{tag}"}, {}),
    ("PreToolUse", "Bash", {"command": "chmod -R 755 ./assets-{tag}"}, {}),
)


def _fill(value: Any, fields: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, text in fields.items():  # not str.format: shell commands have braces
            value = value.replace("{" + name + "}", text)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, fields) for k, v in value.items()}
    return value


def make_event(world: World, session: str, n: int, name: str, tool: str | None,
               tool_input: dict[str, Any] | None, extra: dict[str, Any], tag: str = ""
               ) -> dict[str, Any]:
    fields = {"p": str(world.project), "home": str(world.home), "n": str(n), "tag": tag}
    raw: dict[str, Any] = {
        "session_id": session,
        "transcript_path": str(world.transcript(session)),
        "cwd": str(world.project),
        "permission_mode": "default",
        "hook_event_name": name,
    }
    if tool is not None:
        raw.update(tool_name=tool, tool_input=_fill(tool_input, fields),
                   tool_use_id=f"toolu_{uuid.uuid4().hex[:24]}")
    raw.update(_fill(extra, fields))
    return raw


@dataclass
class Planned:
    raw: dict[str, Any]
    kind: str  # plain | pool | distinct
    template: int
    label: str = ""  # an escalating event's label, as its verdict will carry it


def plan_lane(world: World, opts: Options, lane: int, session: str,
              no_wait: list[int]) -> list[Planned]:
    """One session's events: plain ones by weight, escalating ones from the shared pool or new.
    The last one is a new escalation without `wait` (a template index in `no_wait`), so every
    session ends owed a verdict and the drain after the lanes always has work."""
    rng = random.Random(f"{opts.seed}-{lane}")
    weights = [w for w, *_ in PLAIN]
    out: list[Planned] = []
    for n in range(opts.events):
        if n == opts.events - 1 and no_wait:
            t = rng.choice(no_wait)
            name, tool, tin, extra = ESCALATING[t]
            raw = make_event(world, session, n, name, tool, tin, extra,
                             tag=f"l{lane}e{n}s{opts.seed}")
            out.append(Planned(raw, "distinct", t))
        elif rng.random() < opts.escalate_fraction:
            if rng.random() < opts.repeat_share and opts.repeat_pool > 0:
                j = rng.randrange(opts.repeat_pool)
                t = j % len(ESCALATING)
                name, tool, tin, extra = ESCALATING[t]
                raw = make_event(world, session, n, name, tool, tin, extra, tag=f"p{j}")
                out.append(Planned(raw, "pool", t))
            else:
                t = rng.randrange(len(ESCALATING))
                name, tool, tin, extra = ESCALATING[t]
                raw = make_event(world, session, n, name, tool, tin, extra,
                                 tag=f"l{lane}e{n}s{opts.seed}")
                out.append(Planned(raw, "distinct", t))
        else:
            t = rng.choices(range(len(PLAIN)), weights)[0]
            _, name, ptool, ptin, extra = PLAIN[t]
            out.append(Planned(make_event(world, session, n, name, ptool, ptin, extra),
                               "plain", t))
    return out


# --------------------------------------------------------------------------- the lanes

# A lane: one session's events sent one after the other, each to a new hook process, timed as
# the agent sees it. A separate process per lane so the lanes' timing never shares a GIL with
# the fake judge or the samplers in the benchmark process.
LANE_DRIVER = """\
import json, resource, subprocess, sys, time

def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

spec = json.load(open(sys.argv[1]))
out = []
for raw in spec["events"]:
    data = json.dumps(raw).encode()
    c0, t0, p0 = cpu(), time.time(), time.perf_counter()
    try:
        proc = subprocess.run(spec["cmd"], input=data, capture_output=True, cwd=spec["cwd"],
                              timeout=spec["timeout_s"])
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout, stderr = -1, exc.stdout or b"", (exc.stderr or b"") + b" (timed out)"
    ms, cpu_ms = (time.perf_counter() - p0) * 1000, (cpu() - c0) * 1000
    out.append({"t": t0, "ms": ms, "cpu_ms": cpu_ms, "rc": rc,
                "stdout": stdout.decode("utf-8", "replace")[:4000],
                "stderr": stderr.decode("utf-8", "replace")[-2000:]})
    if spec["think_s"]:
        time.sleep(spec["think_s"])
with open(spec["out"], "w") as fh:
    json.dump(out, fh)
"""


def hook_problem(rec: dict[str, Any]) -> str | None:
    """What is wrong with one hook answer (None: exit 0, JSON or nothing, no traceback)."""
    if rec["rc"] != 0:
        return f"exit {rec['rc']}: {rec['stderr'][-300:]}"
    if "Traceback" in rec["stderr"]:
        return f"traceback: {rec['stderr'][-300:]}"
    text = rec["stdout"].strip()
    try:
        out = json.loads(text) if text else {}
    except ValueError:
        return f"stdout is not JSON: {text[:200]!r}"
    message = str(out.get("systemMessage") or "")
    if "not working" in message:
        return message[:300]
    return None


def notices(calls: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """The systemMessage lines that are not a judge's verdict (`judge unavailable`, `no worker
    serves queue`, ...), by their first 80 characters: each is the pipeline telling the user
    it could not do its job."""
    seen: dict[str, int] = {}
    for rec in (c for cs in calls.values() for c in cs):
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(rec["stdout"] or "{}").get("systemMessage") or "")
            for line in message.splitlines():
                if line.strip() and not line.startswith("watchdog judge"):
                    seen[line[:80]] = seen.get(line[:80], 0) + 1
    return dict(sorted(seen.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- the world


class World:
    """One isolated run: Redis prefix and queue, user dirs, project, fake judge, workers."""

    def __init__(self, tmp: Path, opts: Options, prefix: str | None = None,
                 queue_name: str | None = None) -> None:
        self.opts = opts
        self.tag = uuid.uuid4().hex[:10]
        self.prefix = prefix or f"wdbench:{self.tag}:"
        self.queue_name = queue_name or f"wdbench-{self.tag}"
        self.tmp = tmp
        self.home = tmp / "home"
        self.project = self.home / "src" / "shop"
        (self.project / "src").mkdir(parents=True)
        (self.tmp / "transcripts").mkdir()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "XDG_"))}
        self.token = f"wdload-{uuid.uuid4().hex}"
        self.fake = fake_judge.FakeJudge(token=self.token, default=VERDICT,
                                         latency_s=opts.judge_latency_ms / 1000)
        self.fake.start()
        self.env = {
            **base,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "WATCHDOG_REDIS_URL": opts.redis_url,
            "WATCHDOG_REDIS_PREFIX": self.prefix,
            "WATCHDOG_QUEUE": self.queue_name,
            "WATCHDOG_JUDGE_MODEL": MODEL,
            "WATCHDOG_JUDGE_API_BASE": f"{self.fake.url}/v1",
            "WATCHDOG_JUDGE_TIMEOUT_S": "10",
            "WATCHDOG_WAIT_DEADLINE_S": str(opts.wait_deadline_s),
            "WATCHDOG_JOB_RETRY_BACKOFF_S": str(opts.retry_backoff_s),
            "OPENAI_API_KEY": self.token,
        }
        self.settings = config.load(env=self.env, policy_dir=str(POLICIES))
        self.conn = redis.Redis.from_url(opts.redis_url, socket_timeout=30)
        self.q = Queue(self.queue_name, connection=self.conn, serializer=JSONSerializer)
        self.hook_cmd = [str(Path(sys.executable).with_name("watchdog")), "hook", "--harness",
                         "claude", "--watchdog", "--policy-dir", str(POLICIES)]
        self.workers: subprocess.Popen[bytes] | None = None
        self.worker_names: set[str] = set()
        self.job_ids: set[str] = set()
        self.noop_n = 0
        self._lock = threading.Lock()

    def transcript(self, session: str) -> Path:
        return self.tmp / "transcripts" / f"{session}.jsonl"

    def new_session(self) -> str:
        session = str(uuid.uuid4())
        record = {"type": "user", "sessionId": session, "message": {"role": "user",
                                                                    "content": USER_PROMPT}}
        self.transcript(session).write_text(json.dumps(record) + "\n")
        return session

    def set_budget(self, usd: float) -> None:
        """The daily, session and total caps, all at `usd`: on a fresh prefix the total and
        the day bind together, and no single session spends it all alone."""
        for key in ("DAILY", "SESSION", "TOTAL"):
            self.env[f"WATCHDOG_BUDGET_{key}_USD"] = f"{usd:.6f}"
        self.settings = config.load(env=self.env, policy_dir=str(POLICIES))

    # -- hook ---------------------------------------------------------------------------------

    def hook(self, raw: dict[str, Any]) -> dict[str, Any]:
        t0, p0 = time.time(), time.perf_counter()
        proc = subprocess.run(self.hook_cmd, input=json.dumps(raw).encode(),
                              capture_output=True, env=self.env, cwd=self.project,
                              timeout=HOOK_TIMEOUT_S)
        return {"t": t0, "ms": (time.perf_counter() - p0) * 1000, "rc": proc.returncode,
                "stdout": proc.stdout.decode("utf-8", "replace"),
                "stderr": proc.stderr.decode("utf-8", "replace")[-2000:]}

    # -- workers ------------------------------------------------------------------------------

    def start_workers(self) -> float:
        """`watchdog worker -n N`; seconds until all N have registered for the queue."""
        cmd = [str(Path(sys.executable).with_name("watchdog")), "worker", "-n",
               str(self.opts.workers)]
        t0 = time.perf_counter()
        with open(self.tmp / "workers.log", "wb") as log:
            self.workers = subprocess.Popen(cmd, env=self.env, cwd=self.tmp, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while True:
            found = Worker.all(queue=self.q)
            if len(found) >= self.opts.workers:
                self.worker_names.update(w.name for w in found)
                return time.perf_counter() - t0
            if self.workers.poll() is not None:
                tail = (self.tmp / "workers.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"watchdog worker exited with {self.workers.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not register within {WORKER_START_TIMEOUT_S} s")
            time.sleep(0.05)

    def stop_workers(self) -> None:
        proc, self.workers = self.workers, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # -- floors -------------------------------------------------------------------------------

    def noop_round_trip(self, conn: redis.Redis | None = None) -> float:
        """A no-op job on the same queue and workers: enqueue, then poll its status on the
        hook's own schedule (queue.wait_for: 2 ms, x1.5, capped at 10 ms); ms."""
        with self._lock:
            self.noop_n += 1
            jid = f"{self.queue_name}-noop-{self.noop_n}"
            self.job_ids.add(jid)
        q = self.q if conn is None else Queue(self.queue_name, connection=conn,
                                              serializer=JSONSerializer)
        t0 = time.perf_counter()
        job = q.enqueue_call(NOOP_FUNCTION, job_id=jid, result_ttl=600, timeout=30)
        deadline, poll = time.monotonic() + 60, 0.002
        while True:
            status = job.get_status(refresh=True)
            if status == JobStatus.FINISHED:
                return (time.perf_counter() - t0) * 1000
            if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
                raise SystemExit(f"no-op job {jid} ended {status}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no-op job {jid} did not finish in 60 s (status {status})")
            time.sleep(poll)
            poll = min(poll * 1.5, 0.01)

    def noop_parallel(self, clients: int, per_client: int) -> dict[str, Any]:
        """`clients` threads, each doing `per_client` no-op round trips one after the other:
        the lanes' shape with a no-op job instead of a hook."""
        samples: list[float] = []
        conns = [redis.Redis.from_url(self.opts.redis_url, socket_timeout=30)
                 for _ in range(clients)]

        def client(conn: redis.Redis) -> None:
            for _ in range(per_client):
                ms = self.noop_round_trip(conn)
                with self._lock:
                    samples.append(ms)

        threads = [threading.Thread(target=client, args=(c,)) for c in conns]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        for c in conns:
            c.close()
        return {"clients": clients, "jobs": len(samples), "wall_s": wall,
                "per_s": len(samples) / wall, **summary(samples)}

    # -- cleanup ------------------------------------------------------------------------------

    def cleanup_redis(self) -> int:
        """Delete this run's keys only (escalation.delete_run_keys: the prefix, and the RQ
        keys naming its queue, jobs or workers)."""
        return int(_esc.delete_run_keys(self.conn, self.q, self.prefix, self.queue_name,
                                        self.job_ids, self.worker_names))


def summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    return {"n": len(samples), "p50_ms": percentile(samples, 0.50),
            "p99_ms": percentile(samples, 0.99), "max_ms": max(samples)}


# --------------------------------------------------------------------------- pricing


def prices(model: str) -> tuple[float, float]:
    """USD per prompt and per completion token from the price table bundled with litellm (the
    one the workers use: judge.py sets LITELLM_LOCAL_MODEL_COST_MAP), without importing it."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        raise SystemExit("litellm is not installed in this venv")
    table = json.loads((Path(spec.origin).parent
                        / "model_prices_and_context_window_backup.json").read_text())
    name = model.split("/", 1)[1] if "/" in model else model
    row = table.get(model) or table[name]
    return float(row["input_cost_per_token"]), float(row["output_cost_per_token"])


def call_cost(messages: Any, price: tuple[float, float]) -> float:
    """What one answered call costs: the fake judge's own usage counts (4 characters a
    token, fake_judge._tokens) for this prompt and its one reply, at the table's prices."""
    reply = fake_judge.as_reply(VERDICT)
    assert isinstance(reply, fake_judge.Text)
    return (fake_judge._tokens(messages) * price[0]
            + fake_judge._tokens(reply.text) * price[1])


def _check_templates(world: World) -> dict[str, Any]:
    """Evaluate every template against the shipped pack in process: plain ones must not
    escalate, escalating ones must; returns each escalating template's wait flag, rubric and
    the cost of judging it (for sizing the budget)."""
    from watchdog import evaluation
    from watchdog.escalation import request, rubric
    from watchdog.harnesses import claude
    from watchdog.trace import Trace

    price = prices(MODEL)
    trace = Trace(False)
    session = "template-check"
    for t, (_, name, tool, tin, extra) in enumerate(PLAIN):
        event = claude.parse(make_event(world, session, 0, name, tool, tin, extra))
        decision = evaluation.evaluate(event, world.settings, trace).decision
        if decision.escalations and not decision.blocking:
            raise SystemExit(f"plain template {t} ({event.label}) escalates under "
                             f"{POLICIES}: pick another one")
    info: list[dict[str, Any]] = []
    decisions: list[Any] = []
    manifest: dict[str, Any] = {}
    for t, (name, tool, tin, extra) in enumerate(ESCALATING):
        event = claude.parse(make_event(world, session, 0, name, tool, tin, extra, tag="x1"))
        evaluated = evaluation.evaluate(event, world.settings, trace)
        decision = evaluated.decision
        if not decision.escalations or decision.blocking:
            raise SystemExit(f"escalating template {t} ({event.label}) does not escalate under "
                             f"{POLICIES} (verb {decision.verb}): pick another one")
        decisions.append(decision)
        manifest = evaluated.manifest
        payload = request.build(event, decision, evaluated.manifest, world.settings)
        messages = rubric.render(payload["rubric"], payload)
        info.append({"wait": bool(payload["wait"]), "rubric": payload["rubric"],
                     "rules": [e.rule_id for e in decision.escalations],
                     "cost_usd": call_cost(messages, price),
                     "prompt_chars": len(json.dumps(messages))})
    return {"escalating": info, "price_per_token": price, "decisions": decisions,
            "manifest": manifest}


def label_events(world: World, plans: dict[str, list[Planned]], checked: dict[str, Any]
                 ) -> None:
    """Give each escalating event the label its verdict will carry (request.build's, from its
    template's decision), so deliveries can be matched to the events that are owed them."""
    from watchdog.escalation import request
    from watchdog.harnesses import claude

    for plan in plans.values():
        for p in plan:
            if p.kind != "plain":
                decision = checked["decisions"][p.template]
                p.label = str(request.build(claude.parse(p.raw), decision, checked["manifest"],
                                            world.settings)["label"])


def budget_for_run(plans: list[list[Planned]], templates: list[dict[str, Any]],
                   opts: Options) -> tuple[float, dict[str, Any]]:
    """The USD cap: the worst-case reservation of one call (a job reserves two calls at the
    full max_tokens before calling) plus `budget_fraction` of what judging each distinct
    escalating event once would cost. Reservations are released or settled to the real cost,
    so about that fraction of the distinct events get a model call."""
    distinct: dict[str, float] = {}
    for plan in plans:
        for p in plan:
            if p.kind != "plain":
                key = json.dumps([p.template, p.raw.get("tool_input")], sort_keys=True)
                distinct[key] = templates[p.template]["cost_usd"]
    full = sum(distinct.values())
    price_in, price_out = prices(MODEL)
    biggest = max(t["prompt_chars"] for t in templates)
    # judge.worst_case_cost: prompt tokens (x1.3 margin) and judge_max_tokens, twice.
    worst = 2 * (biggest / 4 * 1.3 * price_in + 400 * price_out)
    cap = worst + opts.budget_fraction * full
    return cap, {"distinct_escalations": len(distinct), "cost_to_judge_all_usd": full,
                 "worst_case_reservation_usd": worst}


# --------------------------------------------------------------------------- accounting


def read_log(state_dir: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ("log.jsonl.1", "log.jsonl"):
        with contextlib.suppress(OSError), open(os.path.join(state_dir, name),
                                                encoding="utf-8") as fh:
            for line in fh:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
    return out


def events_by_session(log: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per session, one group per hook call: the verdict and error records it wrote, closed by
    its `decision` record. A lane's calls never overlap, so the log's order is theirs."""
    groups: dict[str, list[dict[str, Any]]] = {}
    open_: dict[str, dict[str, Any]] = {}
    for rec in log:
        session = rec.get("session_id")
        if not session:
            continue
        group = open_.setdefault(session, {"verdicts": [], "errors": []})
        if rec.get("event") == "decision":
            group["decision"] = rec
            groups.setdefault(session, []).append(group)
            del open_[session]
        elif rec.get("event") == "verdict":
            group["verdicts"].append(rec)
        elif rec.get("level") == "error":
            group["errors"].append(rec)
    for session, group in open_.items():  # records after the last decision: a failed call
        groups.setdefault(session, []).append(group)
    return groups


def account_verdicts(world: World, sessions: dict[str, list[Planned]],
                     calls: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every escalated event must end as a verdict in its own answer (the wait or the cache),
    a verdict delivered at a later event of its session, or a logged failure; the rest are
    lost. Deliveries are matched to owed events by session and label (events with the same
    label in one session are the same action, so interchangeable). Also: verdicts delivered
    twice, hook calls without a decision record, and what the markers still list (with the
    job's state in RQ, to say where it got stuck)."""
    groups = events_by_session(read_log(world.settings.state_dir))
    out: dict[str, Any] = {"escalated": 0, "at_event_wait": 0, "at_event_cache": 0,
                           "failed_logged": 0, "owed": 0, "delivered_later": 0, "lost": 0,
                           "duplicates": 0, "failed_then_delivered": 0, "reported_lost": 0,
                           "unknown_verdicts": 0, "budget_notes": 0, "lost_labels": [],
                           "errors": {}, "mismatched_sessions": []}
    kinds: dict[str, str] = {}
    for session, plan in sessions.items():
        got = groups.get(session, [])
        if len(got) != len(calls[session]) or any("decision" not in g for g in got):
            out["mismatched_sessions"].append(
                {"session": session, "hook_calls": len(calls[session]), "log_groups": len(got)})
        owed: dict[str, int] = {}
        failed: dict[str, int] = {}
        delivered: dict[str, int] = {}
        for i, group in enumerate(got):
            for v in group["verdicts"]:
                out["unknown_verdicts"] += v.get("decision") == "unknown"
                out["budget_notes"] += "budget cap" in str(v.get("reason", ""))
                # "lost": the hook gave up on a job (failed, vanished, too old) and said so.
                if v.get("how") in ("later", "lost"):
                    label = str(v.get("label"))
                    delivered[label] = delivered.get(label, 0) + 1
                    out["delivered_later"] += 1
                    out["reported_lost"] += v.get("how") == "lost"
            for err in group["errors"]:
                what = f"{err.get('event')}: {str(err.get('message', ''))[:160]}"
                out["errors"][what] = out["errors"].get(what, 0) + 1
            decision = group.get("decision") or {}
            escalated = bool(decision.get("escalations")) and decision.get("verb") not in BLOCKING
            if not escalated:
                continue
            hows = {v.get("how") for v in group["verdicts"]}
            kind = "wait" if "wait" in hows else "cache" if "cache" in hows else (
                "failed" if group["errors"] else "enqueued")
            label = plan[i].label if i < len(plan) else "?"
            if i < len(plan):
                kinds[f"{session}:{i}"] = kind
            out["escalated"] += 1
            if kind == "wait":
                out["at_event_wait"] += 1
            elif kind == "cache":
                out["at_event_cache"] += 1
            elif kind == "failed":  # may still have been enqueued and delivered later
                out["failed_logged"] += 1
                failed[label] = failed.get(label, 0) + 1
            else:
                out["owed"] += 1
                owed[label] = owed.get(label, 0) + 1
        for label in {*owed, *failed, *delivered}:
            need, may, have = owed.get(label, 0), failed.get(label, 0), delivered.get(label, 0)
            if have < need:
                out["lost"] += need - have
                out["lost_labels"].append({"session": session, "label": label,
                                           "owed": need, "delivered": have})
            out["failed_then_delivered"] += min(may, max(0, have - need))
            out["duplicates"] += max(0, have - need - may)
    out["kinds"] = kinds
    out["still_owed"] = still_owed(world, list(sessions))
    return out


def still_owed(world: World, sessions: list[str]) -> list[dict[str, Any]]:
    """The entries the sessions' markers still list, each with what RQ and Redis know."""
    rows: list[dict[str, Any]] = []
    state = world.settings.state_dir
    for session in sessions:
        path = pending.marker_path(state, session)
        try:
            with open(path, encoding="utf-8") as fh:
                entries = json.load(fh)
        except (OSError, ValueError):
            continue
        for entry in entries:
            job_id = entry[0]
            row: dict[str, Any] = {"session": session, "job_id": job_id, "label": entry[2],
                                   "age_s": round(time.time() - float(entry[4]), 1),
                                   "result_in_redis": bool(world.conn.exists(
                                       pending.result_key(world.prefix, job_id)))}
            try:
                job = Job.fetch(job_id, connection=world.conn, serializer=JSONSerializer)
                row["rq_status"] = str(job.get_status(refresh=True))
                row["retries_left"] = job.retries_left
                if job.exc_info:
                    row["exc"] = job.exc_info.strip().splitlines()[-1][:300]
            except Exception as exc:  # noqa: BLE001 - a vanished job is itself the finding
                row["rq_status"] = f"no such job ({type(exc).__name__})"
            rows.append(row)
    return rows


def account_budget(world: World, price: tuple[float, float], started: float
                   ) -> dict[str, Any]:
    """Spent against the cap in Redis, and the judge's own bill against the cap: every call
    the fake judge answered, priced from its usage counts, in the order it answered them."""
    b = world.settings
    cap = min(b.budget_total_usd, b.budget_daily_usd)
    micros = 1_000_000

    def bucket(key: str) -> tuple[float, float]:
        spent, reserved = world.conn.hmget(key, ["spent", "reserved"])
        return int(spent or 0) / micros, int(reserved or 0) / micros

    spent, reserved = bucket(f"{world.prefix}budget:total")
    days = {k.decode(): bucket(k.decode()) for k in
            world.conn.scan_iter(match=f"{world.prefix}budget:day:*")}
    sessions = {k.decode(): bucket(k.decode()) for k in
                world.conn.scan_iter(match=f"{world.prefix}budget:session:*")}
    calls = [r for r in world.fake.requests if r.path.endswith(("/chat/completions",
                                                                 "/messages"))]
    answered = [r for r in calls if r.status == 200]
    bill = [call_cost(r.body.get("messages") if isinstance(r.body, dict) else None, price)
            for r in answered]
    allowed, running = 0, 0.0
    for usd in bill:
        if running + usd > cap + 1e-9:
            break
        running += usd
        allowed += 1
    billed = sum(bill)
    records = [json.loads(r) for r in world.conn.lrange(f"{world.prefix}verdicts", 0, -1)]
    refused = sorted(float(r.get("judged_at") or 0) for r in records if r.get("budget"))
    judged = [r for r in records if r.get("model") and not r.get("cached")
              and not r.get("budget")]
    return {
        "cap_usd": cap,
        "session_cap_usd": b.budget_session_usd,
        "spent_usd": spent,
        "reserved_left_usd": reserved,
        "billed_usd": billed,
        "overshoot_usd": max(0.0, max(spent, billed, *(d[0] for d in days.values()))
                             - cap),
        "session_overshoot_usd": max([0.0, *(s[0] - b.budget_session_usd
                                             for s in sessions.values())]),
        "spent_vs_billed_usd": spent - billed,
        "model_calls": len(calls),
        "answered": len(answered),
        "errors": {str(s): sum(1 for r in calls if r.status == s)
                   for s in sorted({r.status for r in calls if r.status != 200})},
        "calls_allowed": allowed,
        "extra_calls": len(answered) - allowed,
        "jobs_finished": len(records),
        "judged_jobs": len(judged),
        "budget_refused": len(refused),
        "first_refusal_s": (refused[0] - started) if refused else None,
        "failed_jobs": FailedJobRegistry(queue=world.q).count,
    }


# --------------------------------------------------------------------------- the run


class Sampler:
    """Floors under the same load: a no-op RQ round trip and `python -c pass`, alternately,
    about twice a second, until stopped."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.noop: list[float] = []
        self.python: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        conn = redis.Redis.from_url(self.world.opts.redis_url, socket_timeout=30)
        try:
            while not self._stop.wait(0.25):
                self.noop.append(self.world.noop_round_trip(conn))
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", "pass"], env=self.world.env, check=True)
                self.python.append((time.perf_counter() - t0) * 1000)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc
        finally:
            conn.close()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_lanes(world: World, plans: dict[str, list[Planned]]) -> dict[str, list[dict[str, Any]]]:
    specs: dict[str, Path] = {}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for k, (session, plan) in enumerate(plans.items()):
        spec = {"cmd": world.hook_cmd, "cwd": str(world.project), "timeout_s": HOOK_TIMEOUT_S,
                "think_s": world.opts.think_ms / 1000, "events": [p.raw for p in plan],
                "out": str(world.tmp / f"lane{k}.out.json")}
        specs[session] = world.tmp / f"lane{k}.json"
        specs[session].write_text(json.dumps(spec))
    try:
        for session, path in specs.items():
            procs[session] = subprocess.Popen([sys.executable, "-c", LANE_DRIVER, str(path)],
                                              env=world.env, cwd=world.project)
        for session, proc in procs.items():
            if proc.wait() != 0:
                raise SystemExit(f"lane for session {session} failed with {proc.returncode}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out: dict[str, list[dict[str, Any]]] = {}
    for session, path in specs.items():
        spec = json.loads(path.read_text())
        out[session] = json.loads(Path(spec["out"]).read_text())
    return out


def drain(world: World, sessions: list[str], calls: dict[str, list[dict[str, Any]]],
          timeout_s: float) -> dict[str, Any]:
    """One more event per session still owed a verdict, again and again, until every marker is
    gone or the deadline passes (a UserPromptSubmit: its answer can carry context)."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    rounds = sent = 0
    state = world.settings.state_dir
    while True:
        owed = [s for s in sessions if pending.has_pending(state, s)]
        if not owed or time.monotonic() > deadline:
            break
        rounds += 1
        for session in owed:
            raw = make_event(world, session, len(calls[session]), "UserPromptSubmit", None,
                             None, {"prompt": "continue"})
            calls[session].append(world.hook(raw))
            sent += 1
        time.sleep(0.2)
    return {"rounds": rounds, "events": sent, "seconds": time.monotonic() - t0,
            "sessions_still_owed": [s for s in sessions if pending.has_pending(state, s)]}


def script_errors(world: World, opts: Options, distinct: int) -> int:
    """Queue the fake judge's replies for the run: each call fails with HTTP 500 or 429 with
    probability `error_rate`, and exactly that share (at least one) of the calls the budget is
    sized to pay for fails, so even a small run retries; later calls get the verdict."""
    if opts.error_rate <= 0:
        return 0
    paid = max(1, math.ceil(opts.budget_fraction * distinct))
    rng = random.Random(f"{opts.seed}-errors")
    first = set(rng.sample(range(paid), min(paid, max(1, round(opts.error_rate * paid)))))
    errors = 0
    for i in range(2 * max(distinct, paid)):
        if i in first if i < paid else rng.random() < opts.error_rate:
            errors += 1
            world.fake.push(fake_judge.Status(500) if rng.random() < 0.5
                            else fake_judge.Status(429, retry_after=0))
        else:
            world.fake.push(VERDICT)
    return errors


def latency_rows(plans: dict[str, list[Planned]], calls: dict[str, list[dict[str, Any]]],
                 kinds: dict[str, str], templates: list[dict[str, Any]]) -> dict[str, Any]:
    """Wall-clock ms per call as the lane saw it, by how the event was answered, with the
    CPU time (user + sys) the hook process used: under load, wall time follows CPU need."""
    names = ("plain", "escalating", "cache", "wait", "wait_deadline", "enqueued", "failed")
    series: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    for session, plan in plans.items():
        for i, p in enumerate(plan):
            call = calls[session][i]
            kind = kinds.get(f"{session}:{i}", "plain")
            if kind == "enqueued" and templates[p.template]["wait"]:
                kind = "wait_deadline"
            for key in {kind, "plain" if kind == "plain" else "escalating"}:
                series[key].append(call["ms"])
                cpu[key].append(call["cpu_ms"])
    return {k: {**summary(series[k]), "cpu_p50_ms": percentile(cpu[k], 0.5)} for k in names}


def run(opts: Options, *, prefix: str | None = None, queue_name: str | None = None,
        tmp: Path | None = None, keep: bool = False, say: Any = print) -> dict[str, Any]:
    """One load run end to end; returns every figure (see print_report for their meaning)."""
    own_tmp = tmp is None
    base = Path(tempfile.mkdtemp(prefix="watchdog-load-")) if tmp is None else tmp
    started = time.time()
    world = World(base, opts, prefix, queue_name)
    res: dict[str, Any] = {"options": asdict(opts), "prefix": world.prefix,
                           "queue": world.queue_name, "cpus": os.cpu_count(),
                           "loadavg_before": os.getloadavg()}
    try:
        say(f"redis prefix {world.prefix}  queue {world.queue_name}  fake judge {world.fake.url}")
        say("  checking the event templates against the shipped pack ...")
        checked = _check_templates(world)
        templates = checked["escalating"]
        sessions = [world.new_session() for _ in range(opts.lanes)]
        no_wait = [t for t, info in enumerate(templates) if not info["wait"]]
        plans = {s: plan_lane(world, opts, k, s, no_wait) for k, s in enumerate(sessions)}
        label_events(world, plans, checked)
        cap, sizing = budget_for_run(list(plans.values()), templates, opts)
        if opts.budget_usd is not None:
            cap = opts.budget_usd
        world.set_budget(cap)
        res["budget_sizing"] = {**sizing, "cap_usd": cap}
        say(f"  budget cap ${cap:.6f} (daily, session and total); judging all "
            f"{sizing['distinct_escalations']} distinct escalations once would cost "
            f"${sizing['cost_to_judge_all_usd']:.6f}")
        say(f"  starting {opts.workers} workers (watchdog worker -n {opts.workers}) ...")
        res["worker_start_s"] = world.start_workers()
        warm = world.new_session()
        for _ in range(2):  # bytecode and page cache; the bundle was compiled by the check
            rec = world.hook(make_event(world, warm, 0, *PLAIN[0][1:]))
            if hook_problem(rec):
                raise SystemExit(f"warm-up hook failed: {hook_problem(rec)}")
        say("  floors: no-op RQ round trips, one client then one per lane ...")
        res["noop_idle"] = summary([world.noop_round_trip() for _ in range(20)])
        res["noop_parallel"] = world.noop_parallel(opts.lanes, 10)
        world.fake.reset()  # the request log holds only the run's calls from here on
        res["scripted_errors"] = script_errors(world, opts, sizing["distinct_escalations"])
        say(f"  {opts.lanes} lanes x {opts.events} events ...")
        t_lanes = time.time()
        with Sampler(world) as sampler:
            calls = run_lanes(world, plans)
        res["loadavg_after_lanes"] = os.getloadavg()
        if sampler.error is not None:
            raise SystemExit(f"floor sampler failed: {sampler.error!r}")
        lane_end = max(c["t"] + c["ms"] / 1000 for cs in calls.values() for c in cs)
        lane_start = min(c["t"] for cs in calls.values() for c in cs)
        res["floors_under_load"] = {"noop": summary(sampler.noop),
                                    "python_pass": summary(sampler.python)}
        say("  delivering what the sessions are still owed ...")
        res["drain"] = drain(world, sessions, calls,
                             opts.drain_timeout_s + opts.wait_deadline_s
                             + 21 * opts.retry_backoff_s)
        problems = [f"{s[:8]}#{i}: {p}" for s, cs in calls.items() for i, c in enumerate(cs)
                    if (p := hook_problem(c))]
        res["hook_problems"] = problems[:20]
        res["hook_problem_count"] = len(problems)
        res["notices"] = notices(calls)
        verdicts = account_verdicts(world, plans, calls)
        kinds = verdicts.pop("kinds")
        res["verdicts"] = verdicts
        res["latency"] = latency_rows(plans, calls, kinds, templates)
        n_events = sum(len(p) for p in plans.values())
        wall = lane_end - lane_start
        res["throughput"] = {"events": n_events, "wall_s": wall, "events_per_s": n_events / wall,
                             "escalated_per_s": verdicts["escalated"] / wall,
                             "lanes_started_after_s": lane_start - t_lanes}
        res["budget"] = account_budget(world, checked["price_per_token"], lane_start)
        stats = world.conn.mget([f"{world.prefix}stats:cache_hits",
                                 f"{world.prefix}stats:cache_misses"])
        res["cache"] = {"hook_hits": verdicts["at_event_cache"],
                        "lookups_hit": int(stats[0] or 0), "lookups_missed": int(stats[1] or 0)}
    finally:
        world.stop_workers()
        world.fake.stop()
        with contextlib.suppress(redis.RedisError):
            res["deleted_keys"] = world.cleanup_redis()
        world.conn.close()
        if keep:
            say(f"kept {base}")
        elif own_tmp:
            shutil.rmtree(base, ignore_errors=True)
    res["total_s"] = time.time() - started
    return res


# --------------------------------------------------------------------------- report


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(a) and not math.isnan(b) else "-"


def report_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(section, figure, value, versus) rows for the table."""
    lat, fl, thr = res["latency"], res["floors_under_load"], res["throughput"]
    noop = fl["noop"]["p50_ms"]
    py = fl["python_pass"]["p50_ms"]
    rows: list[tuple[str, str, str, str]] = []

    def lrow(title: str, key: str) -> None:
        s = lat[key]
        if not s["n"]:
            return
        rows.append(("hook latency", f"{title} (n={s['n']})",
                     f"p50 {s['p50_ms']:.0f} ms  p99 {s['p99_ms']:.0f} ms  "
                     f"CPU {s['cpu_p50_ms']:.0f} ms",
                     f"p50 {_ratio(s['p50_ms'], py)} python -c pass, "
                     f"{_ratio(s['p50_ms'], noop)} no-op RQ"))

    lrow("plain (nothing escalates)", "plain")
    lrow("escalating, all", "escalating")
    lrow("  answered from the verdict cache", "cache")
    lrow("  wait: the verdict came in time", "wait")
    lrow("  wait: the deadline passed", "wait_deadline")
    lrow("  no wait: enqueued", "enqueued")
    lrow("  the judge was unavailable (logged)", "failed")
    rows.append(("floors (same load)", "python -c pass", f"p50 {py:.0f} ms", ""))
    rows.append(("floors (same load)", "no-op RQ job round trip",
                 f"p50 {noop:.0f} ms  p99 {fl['noop']['p99_ms']:.0f} ms",
                 f"idle p50 {res['noop_idle']['p50_ms']:.0f} ms"))
    npar = res["noop_parallel"]
    rows.append(("throughput", "hook events/s, all lanes", f"{thr['events_per_s']:.1f}",
                 f"{_ratio(thr['events_per_s'], npar['per_s'])} no-op round trips/s with "
                 f"{npar['clients']} clients ({npar['per_s']:.1f}/s)"))
    rows.append(("throughput", "escalated events/s", f"{thr['escalated_per_s']:.2f}",
                 f"{thr['events']} events in {thr['wall_s']:.0f} s"))
    b, v, c = res["budget"], res["verdicts"], res["cache"]
    errs = ", ".join(f"{n} x HTTP {s}" for s, n in b["errors"].items()) or "none"
    rows.append(("judge", "model calls", f"{b['model_calls']}",
                 f"{b['answered']} answered, errors: {errs}"))
    rows.append(("judge", "jobs", f"{b['jobs_finished']}",
                 f"{b['judged_jobs']} judged, {b['budget_refused']} refused by the budget, "
                 f"{b['failed_jobs']} failed for good"))
    first = b["first_refusal_s"]
    rows.append(("judge", "budget ran out",
                 f"after {first:.0f} s" if first is not None else "never",
                 f"of {thr['wall_s']:.0f} s of lanes" if first is not None else ""))
    rows.append(("judge", "verdict cache hits at the hook", f"{c['hook_hits']}",
                 f"lookups: {c['lookups_hit']} hit, {c['lookups_missed']} missed"))
    rows.append(("verdicts", "escalated events", f"{v['escalated']}",
                 f"{v['at_event_wait']} in time, {v['at_event_cache']} from cache, "
                 f"{v['owed']} owed, {v['failed_logged']} logged failures"))
    rows.append(("verdicts", "owed ones delivered later", f"{v['delivered_later']}",
                 f"{v['reported_lost']} of them as 'verdict lost' warnings, "
                 f"{v['unknown_verdicts']} unknown in all; drain: {res['drain']['events']} "
                 f"events in {res['drain']['rounds']} rounds"))
    rows.append(("verdicts", "LOST (goal 0)", f"{v['lost']}",
                 f"{len(v['still_owed'])} still in markers, {v['duplicates']} delivered twice, "
                 f"{v['failed_then_delivered']} logged failures delivered after all"))
    rows.append(("budget", "cap / spent (Redis) / billed (judge)",
                 f"${b['cap_usd']:.6f} / ${b['spent_usd']:.6f} / ${b['billed_usd']:.6f}",
                 f"reserved left ${b['reserved_left_usd']:.6f}"))
    rows.append(("budget", "OVERSHOOT $ (goal 0)", f"${b['overshoot_usd']:.6f}",
                 f"sessions: ${b['session_overshoot_usd']:.6f}"))
    rows.append(("budget", "OVERSHOOT calls (goal 0)", f"{b['extra_calls']}",
                 f"{b['answered']} answered, the cap allows {b['calls_allowed']}"))
    rows.append(("hooks", "calls with a problem", f"{res['hook_problem_count']}",
                 "; ".join(res["hook_problems"][:2])[:100]))
    top = next(iter(res["notices"].items()), None)
    rows.append(("hooks", "notices other than verdicts", f"{sum(res['notices'].values())}",
                 f"{top[1]} x {top[0]}" if top else ""))
    return rows


def print_report(res: dict[str, Any]) -> None:
    rows = report_rows(res)
    o = res["options"]
    title = (f"load: {o['lanes']} lanes x {o['events']} events, {o['workers']} workers, judge "
             f"{o['judge_latency_ms']:.0f} ms with {o['error_rate']:.0%} errors, "
             f"{res['cpus']} CPUs, load average {res['loadavg_after_lanes'][1]:.1f} over the "
             "last 5 minutes of the lanes")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}")
        for section, figure, value, vs in rows:
            print(f"  {section:<20}{figure:<40}{value:<36}{vs}")
    else:
        table = Table(title=title, show_lines=False)
        for col in ("", "figure", "value", "versus"):
            table.add_column(col)
        last = None
        for section, figure, value, vs in rows:
            table.add_row(section if section != last else "", figure, value, vs)
            last = section
        Console(width=170).print(table)
    for row in res["verdicts"]["still_owed"][:10]:
        print(f"  still owed: {row}")
    for what, n in list(res["verdicts"]["errors"].items())[:5]:
        print(f"  logged error, {n} x: {what}")
    for row in res["verdicts"]["lost_labels"][:10]:
        print(f"  lost: {row}")
    for m in res["verdicts"]["mismatched_sessions"][:5]:
        print(f"  log/hook mismatch: {m}")


def main(argv: list[str] | None = None) -> int:
    d = Options()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lanes", type=int, default=d.lanes, help="parallel sessions")
    parser.add_argument("--events", type=int, default=d.events, help="events per lane")
    parser.add_argument("--workers", type=int, default=d.workers)
    parser.add_argument("--escalate-fraction", type=float, default=d.escalate_fraction)
    parser.add_argument("--repeat-share", type=float, default=d.repeat_share,
                        help="share of escalating events drawn from the shared pool")
    parser.add_argument("--repeat-pool", type=int, default=d.repeat_pool)
    parser.add_argument("--judge-latency-ms", type=float, default=d.judge_latency_ms)
    parser.add_argument("--error-rate", type=float, default=d.error_rate)
    parser.add_argument("--budget-usd", type=float, default=None,
                        help="the cap; default: sized to pay for --budget-fraction of the run")
    parser.add_argument("--budget-fraction", type=float, default=d.budget_fraction)
    parser.add_argument("--wait-deadline-s", type=float, default=d.wait_deadline_s)
    parser.add_argument("--retry-backoff-s", type=int, default=d.retry_backoff_s)
    parser.add_argument("--drain-timeout-s", type=float, default=d.drain_timeout_s)
    parser.add_argument("--think-ms", type=float, default=d.think_ms)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--redis-url", default=os.environ.get("WATCHDOG_TEST_REDIS_URL",
                                                              d.redis_url))
    parser.add_argument("--quick", action="store_true",
                        help=f"a small run: {', '.join(f'{k}={v}' for k, v in QUICK.items())}")
    parser.add_argument("--json", metavar="OUT",
                        help="where to write every figure (default: benchmarks/out/load-*.json)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = parser.parse_args(argv)
    opts = Options(lanes=args.lanes, events=args.events, workers=args.workers,
                   escalate_fraction=args.escalate_fraction, repeat_share=args.repeat_share,
                   repeat_pool=args.repeat_pool, judge_latency_ms=args.judge_latency_ms,
                   error_rate=args.error_rate, budget_usd=args.budget_usd,
                   budget_fraction=args.budget_fraction, wait_deadline_s=args.wait_deadline_s,
                   retry_backoff_s=args.retry_backoff_s, drain_timeout_s=args.drain_timeout_s,
                   think_ms=args.think_ms, seed=args.seed, redis_url=args.redis_url)
    if args.quick:
        opts = replace(opts, **QUICK)
    if min(opts.lanes, opts.events, opts.workers) < 1:
        parser.error("--lanes, --events and --workers must be >= 1")
    probe = redis.Redis.from_url(opts.redis_url, socket_timeout=5)
    try:
        probe.ping()
    except redis.RedisError as exc:
        raise SystemExit(f"no Redis at {opts.redis_url} ({exc}): start one with "
                         "'redis-server --daemonize yes' or pass --redis-url") from exc
    finally:
        probe.close()
    print(f"compiled bytecode: python -m compileall -q {compile_package()}")
    res = run(opts, keep=args.keep)
    print_report(res)
    out = Path(args.json) if args.json else OUT_DIR / time.strftime("load-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"\n(total {res['total_s']:.0f} s) wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
