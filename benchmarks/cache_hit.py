"""The escalating hook on a verdict-cache hit: the in-process command hook against `hook --serve`.

    .venv/bin/python benchmarks/cache_hit.py [--runs 15] [--redis-url URL]

An event the default pack escalates (`git push --force` of a feature branch) is judged once by
a real worker (`watchdog worker`) asking the fake judge on loopback, so its verdict is cached;
then the same event is run as the user's hook process `--runs` times in-process (`watchdog hook
--watchdog`: imports redis-py, rq, detect-secrets per process) and through a warm `watchdog
serve --watchdog` (`hook --serve`). Every answer is checked to carry the cached verdict.
Figures are p50 wall-clock ms per process, as ratios against `python -c pass` measured in the
same run; nothing is asserted about speed. Redis keys live under a prefix of their own and are
deleted at the end (never FLUSHDB).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from watchdog.escalation.fake_judge import FakeJudge  # noqa: E402

VERDICT = {"decision": "ask", "confidence": 0.9, "reason": "a force-push rewrites history",
           "question": "Force-push feature/login?"}


def _ms(cmd: list[str], data: bytes, env: dict[str, str], want: bytes | None) -> float:
    start = time.perf_counter()
    run = subprocess.run(cmd, input=data, env=env, capture_output=True, timeout=120)
    took = (time.perf_counter() - start) * 1000
    if want is not None and want not in run.stdout:
        raise SystemExit(f"no cached verdict in the answer: {run.stdout!r} {run.stderr!r}")
    return took


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--redis-url", default=os.environ.get("WATCHDOG_TEST_REDIS_URL",
                                                         "redis://127.0.0.1:6379/0"))
    args = p.parse_args()
    import redis

    tmp = Path(tempfile.mkdtemp(prefix="wd-cache-hit-"))
    home = tmp / "home"
    home.mkdir()
    prefix, queue = f"wdbench:{uuid.uuid4().hex[:8]}:", f"wdbench-{uuid.uuid4().hex[:8]}"
    fake = FakeJudge(token=f"wdbench-{uuid.uuid4().hex}", default=VERDICT).start()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "XDG_"))}
    env = {**base, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache"), "XDG_STATE_HOME": str(home / ".state"),
           "WATCHDOG_REDIS_URL": args.redis_url, "WATCHDOG_REDIS_PREFIX": prefix,
           "WATCHDOG_QUEUE": queue, "WATCHDOG_JUDGE_MODEL": "openai/gpt-4.1-mini",
           "WATCHDOG_JUDGE_API_BASE": f"{fake.url}/v1", "OPENAI_API_KEY": fake.token,
           "WATCHDOG_WAIT_DEADLINE_S": "20"}
    event = {"session_id": "bench", "transcript_path": str(tmp / "t.jsonl"), "cwd": str(tmp),
             "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
             "tool_input": {"command": "git push --force origin feature/login"},
             "tool_use_id": "toolu_1"}
    data = json.dumps(event).encode()
    hook = [sys.executable, "-m", "watchdog", "hook", "--harness", "claude", "--watchdog",
            "--policy-dir", str(REPO / "policies")]
    want = b"Force-push feature/login?"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "watchdog", "worker"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 120
        while True:  # until the worker has judged it and the verdict is cached
            run = subprocess.run(hook, input=data, env=env, capture_output=True, timeout=120)
            if want in run.stdout:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the verdict never arrived: {run.stdout!r} {run.stderr!r}")
            time.sleep(0.2)
        floor = statistics.median(_ms([sys.executable, "-c", "pass"], b"", env, None)
                                  for _ in range(args.runs))
        inproc = statistics.median(_ms(hook, data, env, want) for _ in range(args.runs))
        serve = subprocess.Popen([sys.executable, "-m", "watchdog", "serve", "--port", "0",
                                  "--watchdog", "--policy-dir", str(REPO / "policies")],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(serve)
        assert serve.stderr is not None
        ready = serve.stderr.readline().decode()
        if "listening" not in ready:
            raise SystemExit(f"serve did not start: {ready}")
        served = statistics.median(_ms([*hook, "--serve"], data, env, want)
                                   for _ in range(args.runs))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        fake.stop()
        conn = redis.Redis.from_url(args.redis_url)
        for key in conn.scan_iter(match=f"{prefix}*"):
            conn.delete(key)
        conn.close()
    print(f"python -c pass                    p50 {floor:7.1f} ms  (floor)")
    print(f"cache hit, in-process hook        p50 {inproc:7.1f} ms  {inproc / floor:6.2f}x floor")
    print(f"cache hit, hook --serve (warm)    p50 {served:7.1f} ms  {served / floor:6.2f}x floor"
          f"  {served / inproc:5.2f}x in-process")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
