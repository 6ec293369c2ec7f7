"""Whatever fails after the policy decided, the answer is never weaker than the policy's.

Each foreign exception a dependency can raise on the hook path (redis-py, rq, the state dir's
file system, a bug in our own code) is injected at each call site of `pipeline.run(..., escalate=
True)`, in a session that is owed a verdict (so delivery runs too), against a real Redis. The
answer must keep the policy's verb (deny stays deny, halt stays halt, ask stays at least ask),
say what failed, and never be the "not working, no decision made" fail-open answer. A
Hypothesis property states the same over (policy decision x fault x event kind). Real broken
servers (one that answers garbage, one that never answers) are in test_fault_matrix.py.
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PolicyRoot, claude_event, rego_policy
from watchdog import pipeline, statefile
from watchdog.escalation import pending

pytest_plugins = ["redis_fixtures"]

POLICY = rego_policy(
    "cupcake.policies.faults",
    """
    text := concat(" ", [object.get(object.get(input, "tool_input", {}), "command", ""),
                         object.get(input, "prompt", "")])

    halt contains {"rule_id": "F-HALT", "reason": "halted", "severity": "CRITICAL"} if {
        contains(text, "HALTME")
    }
    deny contains {"rule_id": "F-DENY", "reason": "denied", "severity": "HIGH"} if {
        contains(text, "DENYME")
    }
    ask contains {"rule_id": "F-ASK", "reason": "asked", "severity": "MEDIUM"} if {
        contains(text, "ASKME")
    }
    escalate contains {"rule_id": "F-ESC", "reason": "borderline", "severity": "LOW",
                       "wait": true} if contains(text, "ESCME")
    """,
    events=["PreToolUse", "UserPromptSubmit"], tools=["Bash"],
)
RANK = {"allow": 0, "add_context": 0, "modify": 0, "ask": 1, "block": 2, "deny": 2, "halt": 3}
DECISIONS = {"halt": "HALTME", "deny": "DENYME", "ask": "ASKME", "escalate": "ESCME ASKME",
             "escalate-only": "ESCME", "allow": "PLAIN"}


class World:
    """One isolated world: its own Redis prefix and queue, user dirs, policy root."""

    def __init__(self, tmp_path: Path, prefix: str) -> None:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        self.root = PolicyRoot(tmp_path / "root")
        self.root.add("faults.rego", POLICY)
        self.state = home / ".local" / "state" / "watchdog"
        self.prefix = prefix
        self.env = {
            "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"), "XDG_STATE_HOME": str(self.state.parent),
            "WATCHDOG_REDIS_URL": "redis://127.0.0.1:6379/0", "WATCHDOG_REDIS_PREFIX": prefix,
            "WATCHDOG_QUEUE": prefix.replace(":", "-").strip("-"),
            "WATCHDOG_WAIT_DEADLINE_S": "0.5", "WATCHDOG_GLOBAL_POLICIES": "0",
        }
        self.sessions = 0

    def owe(self, session_id: str, age_s: float = 0.0, verdict: bool = True) -> None:
        """Make the session owed a verdict (stored, unless `verdict` is False): delivery runs,
        reads it and claims it."""
        pending.remember(str(self.state), session_id, pending.Entry(
            job_id=f"job-{session_id}", request_id=f"req-{session_id}", label="earlier",
            path=None, created=time.time() - age_s))
        if verdict:
            client = redis.Redis.from_url(self.env["WATCHDOG_REDIS_URL"])
            client.set(pending.result_key(self.prefix, f"job-{session_id}"), json.dumps(
                {"decision": "warn", "reason": "an earlier warning", "confidence": 0.5}), ex=60)
            client.close()

    def event(self, kind: str, marker: str) -> tuple[dict[str, Any], str]:
        self.sessions += 1
        sid = f"s{self.sessions}-{time.monotonic_ns()}"
        if kind == "prompt":
            return claude_event("UserPromptSubmit", prompt=f"please {marker}",
                                session_id=sid, cwd="/tmp"), sid
        return claude_event("PreToolUse", tool_name="Bash", tool_use_id="t1", session_id=sid,
                            cwd="/tmp", tool_input={"command": f"echo {marker}"}), sid

    def run(self, event: dict[str, Any]) -> pipeline.Result:
        return pipeline.run("claude", json.dumps(event).encode(), env=self.env,
                        policy_dir=str(self.root.path), escalate=True)


@pytest.fixture
def world(tmp_path: Path, redis_prefix: str) -> World:
    return World(tmp_path, redis_prefix)


def _verb(result: pipeline.Result) -> str:
    assert result.decision is not None, result.stdout
    return result.decision.verb


# -- faults ------------------------------------------------------------------------------------

Fault = Callable[[pytest.MonkeyPatch, World, str], None]


def _redis_raises(command: str, exc: BaseException) -> Fault:
    """redis-py raising `exc` on one command (after a successful connect)."""
    def install(mp: pytest.MonkeyPatch, world: World, sid: str) -> None:
        real = redis.Redis.execute_command

        def execute(self: redis.Redis, *args: Any, **kw: Any) -> Any:
            if str(args[0]).upper() == command:
                raise exc
            return real(self, *args, **kw)

        mp.setattr(redis.Redis, "execute_command", execute)
    return install


def _pipeline_raises(exc: BaseException) -> Fault:
    def install(mp: pytest.MonkeyPatch, world: World, sid: str) -> None:
        def execute(self: Any, *args: Any, **kw: Any) -> Any:
            raise exc
        mp.setattr(redis.client.Pipeline, "execute", execute)
    return install


def _state_raises(err: int) -> Fault:
    """The state dir's files can't be opened (EACCES, ENOSPC, EROFS); tests run as root, so a
    chmod would not stop us: the error is raised where statefile opens the file."""
    def install(mp: pytest.MonkeyPatch, world: World, sid: str) -> None:
        def refuse(*_a: Any, **_k: Any) -> Any:
            raise OSError(err, __import__("os").strerror(err))
        mp.setattr(statefile, "open", refuse, raising=False)
    return install


def _marker_text(text: str) -> Fault:
    def install(mp: pytest.MonkeyPatch, world: World, sid: str) -> None:
        path = Path(pending.marker_path(str(world.state), sid))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return install


def _result_garbage(mp: pytest.MonkeyPatch, world: World, sid: str) -> None:
    client = redis.Redis.from_url(world.env["WATCHDOG_REDIS_URL"])
    client.set(pending.result_key(world.prefix, f"job-{sid}"), b"\xff{not json", ex=60)
    client.close()


def _bug_in_request(mp: pytest.MonkeyPatch, world: World, sid: str) -> None:
    from watchdog.escalation import request

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("a bug while building the judge request")
    mp.setattr(request, "build", broken)


def _bug_in_collect(mp: pytest.MonkeyPatch, world: World, sid: str) -> None:
    def broken(*_a: Any, **_k: Any) -> Any:
        raise KeyError("a bug while delivering")
    mp.setattr(pending, "collect", broken)


FAULTS: dict[str, Fault] = {
    "timeout-get": _redis_raises("GET", redis.TimeoutError("Timeout reading from socket")),
    "timeout-ping": _redis_raises("PING", redis.TimeoutError("Timeout reading from socket")),
    "closed-socket-set": _redis_raises("SET", redis.ConnectionError(
        "Connection closed by server.")),
    "oom-set": _redis_raises("SET", redis.exceptions.OutOfMemoryError(
        "OOM command not allowed when used memory > 'maxmemory'.")),
    "readonly-set": _redis_raises("SET", redis.exceptions.ReadOnlyError(
        "READONLY You can't write against a read only replica.")),
    "misconf-get": _redis_raises("GET", redis.ResponseError(
        "MISCONF Redis is configured to save RDB snapshots, but it's currently unable")),
    "garbage-get": _redis_raises("GET", redis.exceptions.InvalidResponse(
        "Protocol Error: b'HTTP/1.1 400'")),
    "garbage-int": _redis_raises("EXISTS", ValueError("invalid literal for int(): 'x'")),
    "garbage-utf8": _redis_raises("SMEMBERS", UnicodeDecodeError(
        "utf-8", b"\xff", 0, 1, "invalid start byte")),
    "noauth-get": _redis_raises("GET", redis.ResponseError(
        "NOAUTH Authentication required.")),
    "busy-evalsha": _redis_raises("EVALSHA", redis.ResponseError("BUSY Redis is busy")),
    "pipeline-oom": _pipeline_raises(redis.exceptions.OutOfMemoryError("OOM command")),
    "pipeline-closed": _pipeline_raises(redis.ConnectionError("Connection reset by peer")),
    "state-eacces": _state_raises(errno.EACCES),
    "state-enospc": _state_raises(errno.ENOSPC),
    "state-erofs": _state_raises(errno.EROFS),
    "marker-corrupt-json": _marker_text("{[not json"),
    "marker-wrong-types": _marker_text('[["a", "b", "c", null, "not a number"], [1, 2]]'),
    "marker-nan": _marker_text('[["a", "b", "c", null, NaN, false]]'),
    "result-garbage": _result_garbage,
    "bug-request": _bug_in_request,
    "bug-collect": _bug_in_collect,
}


DELIVERY_FAULTS = {"timeout-get", "timeout-ping", "closed-socket-set", "oom-set",
                   "readonly-set", "misconf-get", "garbage-get", "noauth-get",
                   "state-eacces", "state-enospc", "state-erofs", "bug-collect"}
ESCALATION_FAULTS = DELIVERY_FAULTS | {"garbage-int", "garbage-utf8", "pipeline-oom",
                                       "pipeline-closed", "bug-request"}


def _check(world: World, policy_verb: str, result: pipeline.Result) -> None:
    assert not result.stdout.startswith('{"systemMessage": "watchdog: not working'), result
    out = json.loads(result.stdout or "{}")
    assert RANK[_verb(result)] >= RANK[policy_verb], (policy_verb, result.stdout)
    hso = out.get("hookSpecificOutput", {})
    if policy_verb in ("deny", "halt"):
        assert (hso.get("permissionDecision") == "deny" or out.get("decision") == "block"
                or out.get("continue") is False), result.stdout
    if policy_verb == "ask":
        assert hso.get("permissionDecision") in ("ask", "deny") or out.get(
            "decision") == "block", result.stdout
    assert result.exit_code == 0


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("decided", ["deny", "halt", "ask", "escalate"])
def test_a_fault_after_the_policy_never_weakens_it(
    world: World, monkeypatch: pytest.MonkeyPatch, fault: str, decided: str
) -> None:
    event, sid = world.event("bash", DECISIONS[decided])
    world.owe(sid)
    baseline = world.run({**event, "session_id": sid + "-clean"})
    policy_verb = _verb(baseline)
    with monkeypatch.context() as mp:
        FAULTS[fault](mp, world, sid)
        result = world.run(event)
    _check(world, policy_verb, result)
    # the user is told when the fault hit a step that ran: delivery runs for every owed
    # session; the worker registry, the request and the enqueue only for an escalation
    if fault in DELIVERY_FAULTS or (decided == "escalate" and fault in ESCALATION_FAULTS):
        assert "watchdog:" in json.loads(result.stdout).get("systemMessage", ""), (
            fault, result.stdout)


def test_redis_faults_name_the_cause_and_what_to_do(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    event, sid = world.event("bash", DECISIONS["deny"])
    world.owe(sid)
    cases = {"oom-set": "maxmemory", "readonly-set": "primary", "misconf-get": "disk",
             "garbage-get": "not the Redis protocol", "timeout-get": "did not answer",
             "state-enospc": "disk space", "state-eacces": "WATCHDOG_STATE_DIR"}
    for fault, hint in cases.items():
        with monkeypatch.context() as mp:
            FAULTS[fault](mp, world, sid)
            result = world.run(event)
        assert hint in json.loads(result.stdout)["systemMessage"], (fault, result.stdout)


def test_a_lost_or_garbage_verdict_is_delivered_as_unknown(world: World) -> None:
    """An owed verdict whose job vanished (Redis restarted without persistence) or whose stored
    result is garbage is an explicit warning now, not silence for a day."""
    event, sid = world.event("prompt", "PLAIN")
    world.owe(sid, age_s=5, verdict=False)  # no such job in Redis: it vanished
    out = json.loads(world.run(event).stdout)
    assert "vanished" in out["hookSpecificOutput"]["additionalContext"]
    assert not Path(pending.marker_path(str(world.state), sid)).exists()
    event, sid = world.event("prompt", "PLAIN")
    world.owe(sid, verdict=False)
    with pytest.MonkeyPatch.context() as mp:
        _result_garbage(mp, world, sid)
        out = json.loads(world.run(event).stdout)
    assert "not valid JSON" in out["hookSpecificOutput"]["additionalContext"]


def test_damaged_marker_entries_are_dropped_and_logged(world: World) -> None:
    event, sid = world.event("prompt", "PLAIN")
    Path(pending.marker_path(str(world.state), sid)).parent.mkdir(parents=True, exist_ok=True)
    Path(pending.marker_path(str(world.state), sid)).write_text('[["a","b","c",null,"x"]]')
    result = world.run(event)
    assert result.exit_code == 0 and _verb(result) == "allow"
    log = (world.state / "log.jsonl").read_text()
    assert '"event": "pending_marker_damaged"' in log


@pytest.fixture(scope="module")
def prop_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from redis_fixtures import delete_prefix, unique_prefix

    prefix = unique_prefix()
    yield World(tmp_path_factory.mktemp("prop"), prefix)
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    delete_prefix(client, prefix)
    client.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(decided=st.sampled_from(sorted(DECISIONS)), fault=st.sampled_from(sorted(FAULTS)),
       kind=st.sampled_from(["bash", "prompt"]), owed=st.booleans())
def test_property_never_weaker_than_the_policy(
    prop_world: World, decided: str, fault: str, kind: str, owed: bool
) -> None:
    world = prop_world
    event, sid = world.event(kind, DECISIONS[decided])
    if owed:
        world.owe(sid)
    policy_verb = _verb(world.run({**event, "session_id": sid + "-clean"}))
    with pytest.MonkeyPatch.context() as mp:
        FAULTS[fault](mp, world, sid)
        result = world.run(event)
    _check(world, policy_verb, result)


def test_the_wait_deadline_counts_from_process_start() -> None:
    """The agent waits from the moment it started the hook, imports included: the deadline is
    measured from the process's start, not from when escalation began."""
    from watchdog.escalation.escalate import process_age_s

    first = process_age_s()
    time.sleep(0.2)
    second = process_age_s()
    assert first > 0.0 and 0.1 <= second - first < 5.0
