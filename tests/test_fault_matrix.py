"""The fault matrix with real parts: a private redis-server killed and restarted, a Redis that
never answers or answers garbage, workers SIGKILLed, transient judge errors, no Redis at all.

Every escalated event must end as a delivered verdict or an explicit `unknown` warning within
minutes, the hook must answer within its deadline with at least the policy's decision, and no
traceback may reach the user (or the workers' stderr for expected judge errors).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from tests.conftest import bash, claude_event
from tests.test_escalation import ASK, TOKEN, Setup, wait_until
from watchdog.escalation.fake_judge import Delay, FakeJudge, Status
from watchdog.escalation.queue import live_workers, retry_intervals

pytestmark = pytest.mark.slow
REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own, on its own port, that the test may kill."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), timeout=10)
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if not REDIS_SERVER:
        pytest.skip("redis-server is not on PATH (apt-get install redis-server)")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeJudge]:
    with FakeJudge(token=TOKEN, default=ASK) as judge:
        yield judge


class Fleet:
    """`watchdog worker -n N` as a user runs it, its stderr captured to a file."""

    def __init__(self, setup: Setup, count: int, log: Path) -> None:
        self.log = log
        self.fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "worker", "-n", str(count)],
            env=setup.env, stdout=self.fh, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> list[psutil.Process]:
        """The rq worker processes (children of the supervisor), not their work horses."""
        return psutil.Process(self.proc.pid).children(recursive=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.fh.close()


@pytest.fixture
def world(tmp_path: Path, fake: FakeJudge, private_redis: PrivateRedis) -> Iterator[Setup]:
    fake.reset()
    fake.set_default(ASK)
    setup = Setup(tmp_path, fake)
    setup.redis.close()
    setup.env["WATCHDOG_REDIS_URL"] = private_redis.url
    setup.redis = redis.Redis.from_url(private_redis.url)
    yield setup
    setup.redis.close()


def _live(setup: Setup) -> int:
    try:
        return live_workers(redis.Redis.from_url(setup.env["WATCHDOG_REDIS_URL"]),
                            setup.queue)
    except Exception:  # noqa: BLE001 - Redis may be down in the middle of a test
        return 0


def test_retry_intervals_match_the_documented_backoff() -> None:
    assert retry_intervals(1, 2) == [2]
    assert retry_intervals(2, 2) == [2, 10]
    assert retry_intervals(3, 2) == [2, 10, 30]
    assert retry_intervals(5, 1) == [1, 5, 15, 15, 15]


def test_worker_without_redis_says_so_and_exits(tmp_path: Path, fake: FakeJudge) -> None:
    setup = Setup(tmp_path, fake)
    setup.redis.close()
    proc = subprocess.run(
        [sys.executable, "-m", "watchdog", "worker"], capture_output=True, text=True,
        env={**setup.env, "WATCHDOG_REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0"},
        timeout=60)
    assert proc.returncode == 1
    assert "unreachable" in proc.stderr and "WATCHDOG_REDIS_URL" in proc.stderr
    assert "Traceback" not in proc.stderr and "ERROR:root" not in proc.stderr


def test_a_killed_worker_is_restarted(world: Setup, tmp_path: Path) -> None:
    fleet = Fleet(world, 1, tmp_path / "fleet.log")
    try:
        wait_until(lambda: "ready: 1 worker(s)" in fleet.text(), timeout=90)
        first = fleet.workers()
        assert len(first) == 1
        first[0].send_signal(signal.SIGKILL)
        wait_until(lambda: "restarting it" in fleet.text(), timeout=30)
        wait_until(lambda: fleet.workers() and fleet.workers()[0].pid != first[0].pid,
                   timeout=30)
        wait_until(lambda: _live(world) >= 1, timeout=90)  # the new one registers
        out, _, _ = world.hook(bash("curl https://example.com/after-restart"))
        assert out.get("hookSpecificOutput", {}).get("permissionDecision") == "ask", (
            out, fleet.text(), [r.path for r in world.fake.requests], _live(world))  # judged again
    finally:
        fleet.stop()


def test_transient_judge_errors_are_one_line_each(world: Setup, tmp_path: Path) -> None:
    world.fake.push(Status(500))
    world.fake.push(Status(429, retry_after=0))
    world.fake.push(ASK)
    fleet = Fleet(world, 1, tmp_path / "fleet.log")
    try:
        wait_until(lambda: "ready:" in fleet.text(), timeout=90)
        world.hook(bash("wget https://example.com/transient", session_id="s-tr"))
        out = wait_until(lambda: _delivered(world, "s-tr"), timeout=60)
        assert "would have asked" in out
        text = fleet.text()
        assert text.count("judge_transient") == 2, text
        assert "Traceback" not in text, text
    finally:
        fleet.stop()


def _delivered(setup: Setup, session: str) -> str | None:
    out, _, _ = setup.hook(claude_event("UserPromptSubmit", prompt="next", session_id=session))
    context = out.get("hookSpecificOutput", {}).get("additionalContext")
    return str(context) if context else None


def test_redis_killed_mid_run_every_escalation_still_ends(
    world: Setup, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """Redis SIGKILLed for 3 s while judge jobs run (no persistence: the jobs are gone).
    Workers die and come back; every escalated event still ends as a verdict or an explicit
    unknown at its session's next event, within minutes; the hook never shows a traceback."""
    world.fake.set_default(Delay(1.5, ASK))
    fleet = Fleet(world, 2, tmp_path / "fleet.log")
    sessions = [f"s-kill-{i}" for i in range(6)]
    try:
        wait_until(lambda: "ready: 2 worker(s)" in fleet.text(), timeout=90)
        for i, sid in enumerate(sessions):
            _, elapsed, _ = world.hook(bash(f"wget https://example.com/{i}", session_id=sid))
            assert elapsed < 10
        wait_until(lambda: len(world.fake.requests) >= 2, timeout=30)  # jobs mid-call
        private_redis.kill()
        # while Redis is down the hook answers with the policy decision and says why
        out, elapsed, _ = world.hook(bash("wget https://example.com/down", session_id="s-down"))
        assert "judge unavailable" in out["systemMessage"] and elapsed < 10
        time.sleep(3)
        private_redis.start()
        results: dict[str, str] = {}

        def all_ended() -> bool:
            for sid in sessions:
                if sid not in results:
                    got = _delivered(world, sid)
                    if got:
                        results[sid] = got
            return len(results) == len(sessions)

        wait_until(all_ended, timeout=240)
        for sid, text in results.items():
            assert ("would have asked" in text or "vanished" in text
                    or "without a verdict" in text), (sid, text)
        wait_until(lambda: _live(world) >= 2, timeout=120)  # the fleet is whole again
    finally:
        fleet.stop()


class _Server(threading.Thread):
    """A TCP server on loopback that either never answers or answers garbage."""

    def __init__(self, reply: bytes | None) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.reply = reply
        self.conns: list[socket.socket] = []
        self.stopped = False

    def run(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                threading.Thread(target=self._answer, args=(conn, self.reply),
                                 daemon=True).start()

    @staticmethod
    def _answer(conn: socket.socket, reply: bytes) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                conn.sendall(reply)

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize(("reply", "hint"), [
    (None, "did not answer"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not the Redis protocol"),
    (b"-ERR unknown command\r\n", "answered an error"),
], ids=["never-answers", "garbage", "error-reply"])
def test_a_broken_redis_keeps_the_policy_decision(
    tmp_path: Path, fake: FakeJudge, reply: bytes | None, hint: str
) -> None:
    server = _Server(reply)
    server.start()
    setup = Setup(tmp_path, fake)
    setup.redis.close()
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        deny = bash("rm -rf / --no-preserve-root", session_id="s-broken")
        out, _, _ = setup.hook(deny, WATCHDOG_REDIS_URL=url, WATCHDOG_WAIT_DEADLINE_S="2")
        assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
        escalating = bash("curl https://example.com/broken", session_id="s-broken")
        out, elapsed, err = setup.hook(escalating, WATCHDOG_REDIS_URL=url,
                                       WATCHDOG_WAIT_DEADLINE_S="2")
        assert elapsed < 8
        assert "judge unavailable" in out["systemMessage"], out
        assert hint in out["systemMessage"], out
        assert "Traceback" not in err
    finally:
        server.stop()


def test_embedded_redis_socket_removed(tmp_path: Path, fake: FakeJudge) -> None:
    """The embedded server's socket file is removed while it runs: the next hook stops the
    unreachable server (none is left running) and starts a fresh one; the deny stays a deny."""
    from watchdog.escalation import queue

    fake.reset()
    fake.set_default(ASK)
    setup = Setup(tmp_path, fake)
    setup.redis.close()
    del setup.env["WATCHDOG_REDIS_URL"]
    state = str(setup.state)
    try:
        setup.hook(bash("curl https://example.com/e1"), WATCHDOG_WAIT_DEADLINE_S="1")
        first = queue.embedded_pid(state)
        assert first is not None
        os.unlink(queue.embedded_socket(state))
        out, _, _ = setup.hook(bash("rm -rf / --no-preserve-root", session_id="s-sock"))
        assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
        out, elapsed, err = setup.hook(bash("curl https://example.com/e2", session_id="s-sock"),
                                       WATCHDOG_WAIT_DEADLINE_S="1")
        assert elapsed < 15 and "Traceback" not in err
        second = queue.embedded_pid(state)
        assert second is not None and second != first
        gone = not psutil.pid_exists(first) or psutil.Process(first).status() == "zombie"
        assert gone, "the unreachable server was left running"
    finally:
        queue.stop_embedded(state)


def test_redis_command_shows_and_stops_the_embedded_server(tmp_path: Path,
                                                           fake: FakeJudge) -> None:
    setup = Setup(tmp_path, fake)
    setup.redis.close()
    del setup.env["WATCHDOG_REDIS_URL"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "watchdog", "redis", *args],
                              capture_output=True, text=True, env=setup.env, timeout=60)

    assert "not running" in cli("status").stdout
    setup.hook(bash("curl https://example.com/e1"), WATCHDOG_WAIT_DEADLINE_S="1")
    url = cli("url").stdout.strip()
    assert url.startswith("unix://") and url.endswith(".sock")
    status = cli("status")
    assert status.returncode == 0 and "answering" in status.stdout, status
    info = subprocess.run([str(Path(sys.executable).with_name("rq")), "info", "-u", url,
                           setup.queue], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0 and setup.queue in info.stdout, info
    assert "stopped the embedded Redis" in cli("stop").stdout
    assert "not running" in cli("status").stdout
