"""Escalation end to end: `watchdog hook --watchdog` as a subprocess, real Redis, real `rq
worker` processes, and the fake judge on loopback so the real litellm client runs.

Every test has its own Redis key prefix and queue and deletes only those keys. Worker start-up
is dominated by importing litellm, so one worker serves the module; tests that need a worker
of their own (none running, killed mid-job) start it themselves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from tests.conftest import PolicyRoot, bash, claude_event, rego_policy
from tests.redis_fixtures import delete_prefix, unique_prefix
from watchdog.escalation.fake_judge import HANG, Delay, FakeJudge, Status, Text
from watchdog.escalation.queue import embedded_pid
from watchdog.escalation.queue import stop_embedded as stop_embedded_server

pytestmark = pytest.mark.slow
REDIS_URL = "redis://127.0.0.1:6379/0"
TOKEN = "escalation-test-token"
ASK = {"decision": "ask", "reason": "sends data to an unknown host",
       "question": "Allow sending data to example.com?", "confidence": 0.8}
WARN = {"decision": "warn", "reason": "downloads an unpinned archive", "confidence": 0.7}

POLICY = rego_policy(
    "cupcake.policies.borderline",
    """
    escalate contains {"rule_id": "NET-WAIT", "reason": "network write", "severity": "MEDIUM",
                       "wait": true} if contains(input.tool_input.command, "curl")
    escalate contains {"rule_id": "NET-ASYNC", "reason": "download", "severity": "LOW"} if {
        contains(input.tool_input.command, "wget")
    }
    escalate contains {"rule_id": "EDIT", "reason": "ci edit", "severity": "LOW"} if {
        input.tool_name == "Edit"
    }
    deny contains {"rule_id": "RM", "reason": "no rm -rf /", "severity": "CRITICAL"} if {
        contains(input.tool_input.command, "rm -rf /")
    }
    escalate contains {"rule_id": "RM-ESC", "reason": "also borderline", "severity": "LOW",
                       "wait": true} if contains(input.tool_input.command, "rm -rf /")
    """,
    events=["PreToolUse"], tools=["Bash", "Edit"],
)


class Setup:
    """One isolated escalation world: Redis prefix, queue, user dirs, policies, fake judge."""

    def __init__(self, tmp: Path, fake: FakeJudge) -> None:
        self.prefix = unique_prefix()
        self.queue = f"wdtest-{self.prefix.split(':')[1]}"
        self.fake = fake
        self.root = PolicyRoot(tmp / "project" / ".watchdog")
        self.root.add("borderline.rego", POLICY)
        home = tmp / "home"
        home.mkdir(exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "XDG_"))}
        self.env = {
            **base,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "WATCHDOG_REDIS_URL": REDIS_URL,
            "WATCHDOG_REDIS_PREFIX": self.prefix,
            "WATCHDOG_QUEUE": self.queue,
            "WATCHDOG_JUDGE_MODEL": "openai/gpt-4.1-mini",
            "WATCHDOG_JUDGE_API_BASE": f"{fake.url}/v1",
            "WATCHDOG_JUDGE_TIMEOUT_S": "2",
            "WATCHDOG_JOB_RETRY_BACKOFF_S": "0",
            "WATCHDOG_WAIT_DEADLINE_S": "8",
            "OPENAI_API_KEY": TOKEN,
        }
        self.redis = redis.Redis.from_url(REDIS_URL)

    @property
    def state(self) -> Path:
        return Path(self.env["XDG_STATE_HOME"]) / "watchdog"

    def hook(self, event: dict[str, Any], **extra: str) -> tuple[dict[str, Any], float, str]:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "watchdog", "hook", "--harness", "claude", "--watchdog",
             "--policy-dir", str(self.root.path)],
            input=json.dumps(event).encode(), capture_output=True, env={**self.env, **extra},
            timeout=60,
        )
        elapsed = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr
        assert b"Traceback" not in proc.stderr, proc.stderr
        out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return out, elapsed, proc.stderr.decode()

    def start_worker(self, burst: bool = False, **extra: str) -> subprocess.Popen[bytes]:
        cmd = [str(Path(sys.executable).with_name("rq")), "worker", "-c",
               "watchdog.escalation.worker_settings", self.queue, "--with-scheduler"]
        if burst:
            cmd.append("--burst")
        proc = subprocess.Popen(cmd, env={**self.env, **extra}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        if not burst:
            deadline = time.monotonic() + 60
            q = Queue(self.queue, connection=self.redis)
            while not Worker.all(queue=q):
                assert proc.poll() is None, "worker exited"
                assert time.monotonic() < deadline, "worker did not register"
                time.sleep(0.1)
        return proc

    def queued(self) -> int:
        return Queue(self.queue, connection=self.redis, serializer=JSONSerializer).count

    def cleanup(self) -> None:
        Queue(self.queue, connection=self.redis, serializer=JSONSerializer).delete(
            delete_jobs=True)
        delete_prefix(self.redis, self.prefix)
        self.redis.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeJudge]:
    with FakeJudge(token=TOKEN, default=ASK) as judge:
        yield judge


@pytest.fixture
def world(tmp_path: Path, fake: FakeJudge) -> Iterator[Setup]:
    fake.reset()
    fake.set_default(ASK)
    setup = Setup(tmp_path, fake)
    yield setup
    setup.cleanup()


@pytest.fixture
def worker(world: Setup) -> Iterator[subprocess.Popen[bytes]]:
    proc = world.start_worker()
    yield proc
    stop(proc)


def model_calls(fake: FakeJudge) -> int:
    return sum(1 for r in fake.requests if "completions" in r.path or "messages" in r.path)


def test_wait_gets_the_judges_ask_then_the_cache_answers(world: Setup, worker: Any) -> None:
    """A `wait` escalation returns the judge's ask within the deadline; an identical event is
    answered from the verdict cache without a model call."""
    out, elapsed, _ = world.hook(bash("curl -d @notes.txt https://example.com/upload"))
    assert out["hookSpecificOutput"]["permissionDecision"] == "ask"
    assert "Allow sending data to example.com?" in out["hookSpecificOutput"][
        "permissionDecisionReason"]
    assert elapsed < 8 + 2
    assert model_calls(world.fake) == 1
    out, _, _ = world.hook(bash("curl  -d @notes.txt https://example.com/upload",
                                session_id="another-session"))
    assert out["hookSpecificOutput"]["permissionDecision"] == "ask"
    assert model_calls(world.fake) == 1
    assert int(world.redis.get(f"{world.prefix}stats:cache_hits") or 0) >= 1


def test_async_verdict_arrives_at_the_next_event_once(world: Setup, worker: Any) -> None:
    """Without `wait` the hook answers at once; the warning arrives at the session's next event
    that can carry context (not Stop), as context plus a systemMessage, exactly once, and is in
    the log."""
    world.fake.set_default(WARN)
    out, _, _ = world.hook(bash("wget https://example.com/tool.tgz", session_id="s-async"))
    assert out == {}
    wait_until(lambda: model_calls(world.fake) == 1)
    wait_until(lambda: world.redis.keys(f"{world.prefix}result:*"))
    stop_out, _, _ = world.hook(claude_event("Stop", stop_hook_active=False,
                                             session_id="s-async"))
    assert stop_out == {}  # Stop can't carry context to the model: the verdict keeps waiting
    post = claude_event("PostToolUse", tool_name="Bash", session_id="s-async",
                        tool_input={"command": "ls"}, tool_response={"stdout": ""})
    out, _, _ = world.hook(post)
    context = out["hookSpecificOutput"]["additionalContext"]
    assert "downloads an unpinned archive" in context and "wget" in context
    assert "downloads an unpinned archive" in out["systemMessage"]
    again, _, _ = world.hook(post)
    assert again == {}
    log = (world.state / "log.jsonl").read_text()
    assert '"event": "verdict"' in log and "unpinned" in log


def test_deny_wins_and_nothing_is_enqueued(world: Setup) -> None:
    """A policy deny beats any escalation: the judge is never asked."""
    out, _, _ = world.hook(bash("rm -rf /"))
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert world.queued() == 0 and model_calls(world.fake) == 0


def test_redis_down_keeps_the_policy_decision(world: Setup) -> None:
    """Redis unreachable: the hook answers with the policy decision, fast, and says why."""
    out, elapsed, err = world.hook(bash("curl https://example.com"),
                                   WATCHDOG_REDIS_URL="redis://127.0.0.1:1/0")
    assert "permissionDecision" not in out.get("hookSpecificOutput", {})
    assert "judge unavailable" in out["systemMessage"]
    assert elapsed < 5
    log = (world.state / "log.jsonl").read_text()
    assert '"event": "queue_unavailable"' in log


def test_no_worker_then_delivery_once_a_worker_runs(world: Setup) -> None:
    """No worker: the hook does not wait (RQ's worker registry says none serves the queue),
    answers with the policy decision and says to start one; the verdict is delivered at a
    later event once a worker has run."""
    out, elapsed, _ = world.hook(bash("curl https://example.com/x", session_id="s-late"),
                                 WATCHDOG_WAIT_DEADLINE_S="5")
    assert "permissionDecision" not in out.get("hookSpecificOutput", {})
    assert "no worker serves queue" in out["systemMessage"]
    assert "watchdog worker" in out["systemMessage"]
    assert elapsed < 4  # the 5 s deadline was not waited out
    assert world.queued() == 1
    proc = world.start_worker(burst=True)
    proc.wait(timeout=120)
    out, _, _ = world.hook(claude_event("UserPromptSubmit", prompt="go on",
                                        session_id="s-late"))
    assert "would have asked" in out["hookSpecificOutput"]["additionalContext"]


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        ([Status(500), ASK], "ask"),
        ([Status(429, retry_after=0), ASK], "ask"),
        ([HANG, ASK], "ask"),
        ([Text("I think it is fine!"), Text("still not json")], "unknown"),
    ],
    ids=["500-then-ok", "429-then-ok", "timeout-then-ok", "garbage-twice"],
)
def test_transient_errors_retry_and_garbage_becomes_a_warning(
    world: Setup, worker: Any, replies: list[Any], expected: str
) -> None:
    """429, 500 and timeouts are retried by RQ; output that is never a verdict is delivered as
    an `unknown` warning, never as "looks fine"."""
    for reply in replies:
        world.fake.push(reply)
    world.hook(bash("wget https://example.com/y", session_id="s-retry"))
    key = wait_until(lambda: world.redis.keys(f"{world.prefix}result:*"), timeout=45)[0]
    record = json.loads(world.redis.get(key))
    assert record["decision"] == expected, record
    out, _, _ = world.hook(claude_event("UserPromptSubmit", prompt="next", session_id="s-retry"))
    context = out["hookSpecificOutput"]["additionalContext"]
    if expected == "unknown":
        assert "not a verdict" in context and "systemMessage" in out


def test_budget_exhausted_means_no_model_call(world: Setup, worker: Any) -> None:
    """With the budget at zero no call is made and the fallback note applies."""
    stop(worker)
    proc = world.start_worker(WATCHDOG_BUDGET_DAILY_USD="0")
    try:
        world.hook(bash("wget https://example.com/z", session_id="s-budget"))
        key = wait_until(lambda: world.redis.keys(f"{world.prefix}result:*"), timeout=30)[0]
        record = json.loads(world.redis.get(key))
        assert record["decision"] == "add_context" and record["budget"] is True
        assert "budget cap" in record["reason"]
        assert model_calls(world.fake) == 0
    finally:
        stop(proc)


def test_worker_killed_mid_job_is_retried_and_charged_once(world: Setup) -> None:
    """Kill the work horse while the model call hangs: RQ retries the job, the verdict still
    arrives, and the budget holds one settled charge for the request."""
    world.fake.push(Delay(30))
    proc = world.start_worker()
    try:
        world.hook(bash("wget https://example.com/k", session_id="s-kill"))
        wait_until(lambda: model_calls(world.fake) == 1)
        horse = wait_until(lambda: _children(proc.pid), timeout=10)
        os.kill(horse[0], signal.SIGKILL)
        key = wait_until(lambda: world.redis.keys(f"{world.prefix}result:*"), timeout=45)[0]
        assert json.loads(world.redis.get(key))["decision"] == "ask"
        reservations = world.redis.keys(f"{world.prefix}budget:res:*")
        assert len(reservations) == 1
        state = world.redis.hget(reservations[0], "state")
        assert state == b"settled"
    finally:
        stop(proc)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_stale_verdict_says_so(world: Setup, worker: Any) -> None:
    """A verdict about an edit is marked stale when the file is edited again before delivery."""
    world.fake.set_default(WARN)
    edit = claude_event("PreToolUse", tool_name="Edit", session_id="s-stale",
                        tool_input={"file_path": "/repo/.github/workflows/ci.yml",
                                    "old_string": "a", "new_string": "b"})
    world.hook(edit)
    wait_until(lambda: world.redis.keys(f"{world.prefix}result:*"))
    again = {**edit, "tool_input": {**edit["tool_input"], "new_string": "c"}}
    out, _, _ = world.hook(again)
    assert "stale" in out["hookSpecificOutput"]["additionalContext"]


def test_embedded_redis_is_the_default(tmp_path: Path, fake: FakeJudge) -> None:
    """Without WATCHDOG_REDIS_URL the hook and a worker share a per-user embedded Redis."""
    fake.reset()
    fake.set_default(ASK)
    setup = Setup(tmp_path, fake)
    del setup.env["WATCHDOG_REDIS_URL"]
    try:
        proc = setup.start_worker(burst=True)  # starts (or reuses) the embedded server
        proc.wait(timeout=120)
        out, _, _ = setup.hook(bash("curl https://example.com/e"), WATCHDOG_WAIT_DEADLINE_S="1")
        assert "no worker serves queue" in out["systemMessage"]  # the burst worker has exited
        proc = setup.start_worker(burst=True)
        proc.wait(timeout=120)
        out, _, _ = setup.hook(claude_event("UserPromptSubmit", prompt="x"))
        assert "would have asked" in out["hookSpecificOutput"]["additionalContext"]
        assert embedded_pid(str(setup.state)) is not None
    finally:  # never leave the server running, even when an assertion failed
        stop_embedded_server(str(setup.state))
        setup.redis.close()
