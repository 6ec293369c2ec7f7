"""`watchdog doctor`, run as the user runs it (a subprocess, HOME and XDG dirs in tmp_path):
each check reproduces its problem and asserts the message, and a healthy setup exits 0."""

from __future__ import annotations

import json
import re
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import PolicyRoot, rego_policy, run_cli
from watchdog import config
from watchdog.escalation.budget import utc_day

pytest_plugins = ["redis_fixtures"]

PYTHON_HOOK = f"{sys.executable} -m watchdog hook --harness claude"
GOOD = rego_policy("cupcake.policies.rm", """
deny contains {"rule_id": "RM", "reason": "no rm -rf /", "severity": "HIGH"} if {
    contains(input.tool_input.command, "rm -rf /")
}
""", events=["PreToolUse"], tools=["Bash"])


class Project:
    """A project folder with `.claude/settings.json` written from a command per event."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def register(self, *commands: str, settings: Path | None = None) -> None:
        target = settings or self.path / ".claude" / "settings.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        events = ["PreToolUse", "PostToolUse", "UserPromptSubmit", "Stop"]
        hooks = {events[i]: [{"hooks": [{"type": "command", "command": c, "timeout": 30}]}]
                 for i, c in enumerate(commands)}
        target.write_text(json.dumps({"hooks": hooks, "permissions": {"allow": []}}))

    def root(self) -> PolicyRoot:
        return PolicyRoot(self.path / ".watchdog")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "project")


def doctor(env: dict[str, str], project: Project, **extra: str) -> tuple[int, dict[str, Any]]:
    run = run_cli(["doctor", "--dir", str(project.path), "--json"], {**env, **extra},
                  timeout=180)
    assert run.stderr == "", run.stderr
    report = json.loads(run.stdout)
    assert run.code == (1 if report["problems"] else 0)
    return run.code, report


def finding(report: dict[str, Any], check: str, needle: str = "") -> dict[str, Any]:
    """The one finding of `check` whose message contains `needle`."""
    found = [f for f in report["findings"] if f["check"] == check and needle in f["message"]]
    assert len(found) == 1, (check, needle, report["findings"])
    return found[0]


def levels(report: dict[str, Any], check: str) -> list[str]:
    return [f["level"] for f in report["findings"] if f["check"] == check]


# -- hooks ---------------------------------------------------------------------------------------


def test_no_hook_registered(env: dict[str, str], project: Project) -> None:
    """Neither the project's nor the user's settings name watchdog: Claude Code never calls it."""
    project.register("echo not-ours")
    code, report = doctor(env, project)
    assert code == 1
    f = finding(report, "hooks")
    assert f["level"] == "problem" and "no watchdog hook is registered" in f["message"]
    assert f["fix"] == (f"run 'watchdog init --harness claude --dir {project.path}', or add the "
                        "entries shown in docs/harnesses.md")


def test_hook_commands_that_cannot_run(env: dict[str, str], project: Project,
                                       tmp_path: Path) -> None:
    """Each registered command is resolved as a shell would and watchdog is asked its version:
    missing from PATH, a missing file, a file without the x bit and a program that fails are
    problems; the interpreter form, $CLAUDE_PROJECT_DIR and the user's settings work."""
    bin_dir = project.path / "bin"
    bin_dir.mkdir()
    (bin_dir / "watchdog").symlink_to(Path(sys.executable).with_name("watchdog"))
    plain = tmp_path / "plain" / "watchdog"
    plain.parent.mkdir()
    plain.write_text("#!/bin/sh\nexit 0\n")
    broken = tmp_path / "broken" / "watchdog"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'No module named watchdog' >&2\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    project.register("watchdog-not-installed hook --harness claude",
                     "/nonexistent/bin/watchdog hook --harness claude",
                     f"{plain} hook --harness claude", f"{broken} hook --harness claude")
    project.register(PYTHON_HOOK, '"$CLAUDE_PROJECT_DIR"/bin/watchdog hook --harness claude',
                     settings=project.path / ".claude" / "settings.local.json")
    project.register(f"WATCHDOG_ON_ERROR=closed {PYTHON_HOOK}",
                     settings=Path(env["HOME"]) / ".claude" / "settings.json")
    code, report = doctor(env, project)
    assert code == 1
    missing = finding(report, "hooks", "'watchdog-not-installed'")
    assert missing["level"] == "problem"
    assert "'watchdog-not-installed' is not on PATH here, so the hook cannot start" \
        in missing["message"]
    assert missing["fix"].startswith("use the full path in the hook command, e.g. '/")
    assert finding(report, "hooks", "/nonexistent/bin/watchdog does not exist")["level"] \
        == "problem"
    assert finding(report, "hooks", f"{plain} is not executable")["fix"].startswith(
        f"chmod +x {plain}")
    failing = finding(report, "hooks", f"{broken} --version exited 3")
    assert "No module named watchdog" in failing["message"] and failing["level"] == "problem"
    for where in ("settings.local.json", f"{env['HOME']}/.claude/settings.json"):
        ok = [f for f in report["findings"] if f["check"] == "hooks" and where in f["message"]]
        assert ok and all(f["level"] == "ok" and "runs (" in f["message"] and
                          "watchdog 0.1.0" in f["message"] for f in ok), ok
    assert levels(report, "hooks").count("ok") == 3


def test_settings_file_that_is_not_json(env: dict[str, str], project: Project) -> None:
    (project.path / ".claude").mkdir()
    (project.path / ".claude" / "settings.json").write_text('{"hooks": {')
    _, report = doctor(env, project)
    f = finding(report, "hooks", "cannot be read as JSON")
    assert f["level"] == "problem" and "Claude Code cannot read its hooks either" in f["message"]


# -- policies ------------------------------------------------------------------------------------


def test_no_policy_root_means_the_default_pack(env: dict[str, str], project: Project) -> None:
    project.register(PYTHON_HOOK)
    _, report = doctor(env, project)
    f = finding(report, "policies")
    assert f["level"] == "warning"
    assert f["message"].startswith(f"no policy root for {project.path}: no .watchdog/ or "
                                   ".cupcake/ at or above it")
    assert "so the shipped default pack (" in f["message"] and f["message"].endswith(") applies")
    assert f["fix"].startswith(f"run 'watchdog init --dir {project.path}'")


def test_a_root_without_policies_checks_nothing(env: dict[str, str], project: Project) -> None:
    project.register(PYTHON_HOOK)
    root = project.root()
    root.rulebook("builtins: {}\n")
    code, report = doctor(env, project)
    assert code == 1
    f = finding(report, "policies")
    assert f["level"] == "problem"
    assert f["message"] == (f"project root {root.path} holds no .rego policy for claude (none "
                            f"under {root.path}/policies/claude), so nothing from it is checked")


def test_verify_problems_are_reported(env: dict[str, str], project: Project) -> None:
    project.register(PYTHON_HOOK)
    root = project.root()
    root.add("good.rego", GOOD)
    root.add("broken.rego", rego_policy("cupcake.policies.broken", "deny contains {",
                                        events=["PreToolUse"], tools=["Bash"]))
    code, report = doctor(env, project)
    assert code == 1
    assert finding(report, "policies")["message"].endswith("2 policy file(s) for claude")
    f = finding(report, "verify")
    assert f["level"] == "problem"
    assert f["message"].startswith("watchdog verify found problems")
    assert ".watchdog/policies/claude/broken.rego:" in f["message"]
    assert f["fix"] == f"fix each file:line; 'watchdog verify' in {project.path} lists them"


# -- environment ---------------------------------------------------------------------------------


def test_misspelt_variables(env: dict[str, str], project: Project) -> None:
    project.register(PYTHON_HOOK)
    project.root().add("good.rego", GOOD)
    code, report = doctor(env, project, WATCHDOG_JUDGE_MODLE="openai/gpt-4.1-mini",
                          WATCHDOG_QUEUE="q", WATCHDOG_STATE_DIR=env["HOME"] + "/state")
    assert code == 1
    [f] = [f for f in report["findings"] if f["check"] == "env"]
    assert f["level"] == "problem"
    assert f["message"] == ("WATCHDOG_JUDGE_MODLE is set but nothing reads it, so it has no "
                            "effect (did you mean WATCHDOG_JUDGE_MODEL?)")
    assert f["fix"] == "rename it to WATCHDOG_JUDGE_MODEL"
    assert levels(report, "verify") == ["ok"] and report["problems"] == 1


def test_unknown_env_names_the_nearest_key() -> None:
    assert config.unknown_env({
        "WATCHDOG_JUDGE_MODLE": "x", "WATCHDOG_BUDGET_DAYLY_USD": "1", "WATCHDOG_QUEUE": "q",
        "WATCHDOG_XYZZY": "1", "WATCHDOG_CACHE_DIR": "/c", "OTHER_JUDGE_MODLE": "x",
    }) == [("WATCHDOG_BUDGET_DAYLY_USD", "WATCHDOG_BUDGET_DAILY_USD"),
           ("WATCHDOG_JUDGE_MODLE", "WATCHDOG_JUDGE_MODEL"), ("WATCHDOG_XYZZY", None)]


def test_text_output(env: dict[str, str], project: Project) -> None:
    run = run_cli(["doctor", "--dir", str(project.path)], env, timeout=180)
    assert run.code == 1
    lines = run.stdout.splitlines()
    assert lines[0] == f"watchdog doctor: {project.path} (claude)"
    assert lines[1].startswith("problem  hooks      no watchdog hook is registered")
    assert lines[2] == " " * 20 + (f"-> run 'watchdog init --harness claude --dir "
                                   f"{project.path}', or add the entries shown in "
                                   "docs/harnesses.md")
    assert re.fullmatch(r"\d+ problem\(s\), \d+ warning\(s\)", lines[-1])


# -- escalation ----------------------------------------------------------------------------------


@pytest.fixture
def escalating(env: dict[str, str], project: Project, redis_prefix: str) -> dict[str, str]:
    """A project whose hook passes --watchdog, a valid policy, and this test's Redis keys."""
    project.register(f"{PYTHON_HOOK} --watchdog")
    project.root().add("good.rego", GOOD)
    queue = f"wdtest-{redis_prefix.split(':')[1]}"
    return {**{k: v for k, v in env.items() if not k.endswith("_API_KEY")},
            "WATCHDOG_REDIS_PREFIX": redis_prefix, "WATCHDOG_QUEUE": queue}


@pytest.fixture
def live_worker(redis_client: redis.Redis, escalating: dict[str, str]) -> Iterator[None]:
    """A worker as RQ registers one (the queue's worker set and a heartbeat key)."""
    queue = escalating["WATCHDOG_QUEUE"]
    name = f"rq:worker:{queue}-w1"
    redis_client.sadd(f"rq:workers:{queue}", name)
    redis_client.set(name, "alive", ex=120)
    try:
        yield
    finally:
        redis_client.delete(f"rq:workers:{queue}", name)


@pytest.mark.slow
def test_escalation_unreachable_redis_small_cap_no_key(
        escalating: dict[str, str], project: Project) -> None:
    code, report = doctor(escalating, project, WATCHDOG_REDIS_URL="redis://127.0.0.1:1/0",
                          WATCHDOG_BUDGET_SESSION_USD="0.001")
    assert code == 1
    redis_f = finding(report, "redis")
    assert redis_f["level"] == "problem"
    assert redis_f["message"].startswith("Redis at redis://127.0.0.1:1/0 is unreachable")
    assert "Start it (e.g. 'redis-server --daemonize yes')" in redis_f["message"]
    assert levels(report, "workers") == []  # not asked without Redis
    budget = finding(report, "budget")
    assert budget["level"] == "problem"
    assert budget["message"].startswith("budget_session_usd = $0.001 is below one judge call's "
                                        "worst case ($0.00")
    assert "anthropic/claude-haiku-4-5 with judge_max_tokens = 400" in budget["message"]
    assert "Raise WATCHDOG_BUDGET_SESSION_USD to at least $0.00" in budget["message"]
    key = finding(report, "judge_key")
    assert key["level"] == "warning"
    assert key["message"].startswith("judge model anthropic/claude-haiku-4-5: "
                                     "ANTHROPIC_API_KEY is not set here")


@pytest.mark.slow
def test_escalation_embedded_redis_is_not_started(
        escalating: dict[str, str], project: Project) -> None:
    state = Path(escalating["XDG_STATE_HOME"]) / "watchdog"
    code, report = doctor(escalating, project, WATCHDOG_BUDGET_DAILY_USD="0")
    assert code == 1
    f = finding(report, "redis")
    assert f["level"] == "warning"
    assert f["message"].endswith("is not running (doctor does not start it)")
    assert f["fix"].startswith("it starts at the first escalation or with 'watchdog worker'")
    workers = finding(report, "workers")
    assert workers["level"] == "problem"
    assert "none runs without the embedded Redis" in workers["message"]
    assert not (state / "redis.pid").exists() and not (state / "redis.sock").exists()
    budget = finding(report, "budget")
    assert budget["level"] == "warning"
    assert budget["message"] == ("budget_daily_usd is 0, which turns the judge off: every "
                                 "escalation gets the budget fallback")


@pytest.mark.slow
def test_escalation_no_live_worker(escalating: dict[str, str], project: Project,
                                   redis_url: str) -> None:
    code, report = doctor(escalating, project, WATCHDOG_REDIS_URL=redis_url)
    assert code == 1
    assert finding(report, "redis")["message"] == f"{redis_url} answers"
    f = finding(report, "workers")
    assert f["level"] == "problem"
    assert f["message"] == (f"no live worker serves queue '{escalating['WATCHDOG_QUEUE']}' on "
                            f"{redis_url}, so escalated events get the policy's decision only")
    assert f["fix"] == "start one with 'watchdog worker' where the judge's API key is set"


@pytest.mark.slow
@pytest.mark.usefixtures("live_worker")
def test_escalation_all_ok_exits_0(escalating: dict[str, str], project: Project,
                                   redis_url: str, redis_client: redis.Redis) -> None:
    """Everything in order: exit 0. A budget spent for today is a warning, not a problem."""
    prefix = escalating["WATCHDOG_REDIS_PREFIX"]
    redis_client.hset(f"{prefix}budget:day:{utc_day(time.time())}", "spent",
                      5_000_000)
    code, report = doctor(escalating, project, WATCHDOG_REDIS_URL=redis_url,
                          WATCHDOG_JUDGE_MODEL="openai/gpt-4.1-mini", OPENAI_API_KEY="sk-test")
    assert code == 0, report
    assert finding(report, "workers")["message"] == (
        f"1 live worker(s) serve queue '{escalating['WATCHDOG_QUEUE']}'")
    ok = finding(report, "budget", "can each pay")
    assert ok["level"] == "ok" and ok["message"].startswith(
        "the caps (daily $5.00, session $1.00, total $100.00) can each pay for one call's "
        "worst case ($0.00")
    now = finding(report, "budget", "no call can be paid for now")
    assert now["level"] == "warning"
    assert "the daily budget cap ($5.00) is spent: $5.00 spent" in now["message"]
    assert finding(report, "judge_key")["message"] == (
        "judge model openai/gpt-4.1-mini: OPENAI_API_KEY is set")
    assert report["problems"] == 0
