"""`watchdog init --harness H`, `watchdog uninstall --harness H` and `watchdog doctor --harness
H` for every harness, as a user runs them (subprocesses, a fresh project, a home of its own).

init: the pack lands in .watchdog/, the hook in the harness's own config (beside the user's
own entries, which stay), the written command answers a sample event with a deny, and a second
run changes nothing. uninstall: the config is the user's again (their entries, nothing of
ours), the shipped pack files go, files the user changed stay. doctor finds the install.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, isolated_env, run_cli

from watchdog import harnesses
from watchdog.harnesses.hook_commands import is_ours

USER_ENTRY = "echo user-hook"


def _user_config(name: str) -> dict[str, Any]:
    """A config holding one hook of the user's, in the harness's own shape."""
    if name == "cursor":
        return {"version": 1, "hooks": {"stop": [{"command": USER_ENTRY}]}}
    if name == "opencode":
        return {"$schema": "https://opencode.ai/config.json", "theme": "user"}
    return {"theme": "user", "hooks": {"Stop": [{"hooks": [{"type": "command",
                                                            "command": USER_ENTRY}]}]}}


def _commands(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["command"]] if isinstance(value.get("command"), str) else []
        return own + [c for v in value.values() for c in _commands(v)]
    if isinstance(value, list):
        return [c for v in value for c in _commands(v)]
    return []


@pytest.fixture
def world(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    home = tmp_path / "home"
    env = isolated_env(home)
    env["HOME"] = str(home)
    project = tmp_path / "project"
    project.mkdir()
    return env, project, home


@pytest.mark.parametrize("name", list(harnesses.NAMES))
def test_init_uninstall_doctor(name: str, world: tuple[dict[str, str], Path, Path]) -> None:
    env, project, home = world
    setup = harnesses.get(name).setup
    config = setup.config_path(project, home, False)
    config.parent.mkdir(parents=True, exist_ok=True)
    original = _user_config(name)
    config.write_text(json.dumps(original), encoding="utf-8")
    command = f"{sys.executable} -m watchdog"

    first = run_cli(["init", "--harness", name, "--dir", str(project), "--command", command],
                    env, timeout=120)
    assert first.code == 0, first.stdout + first.stderr
    assert (project / ".watchdog" / "policies" / "common" / "destructive.rego").is_file()
    assert (project / ".watchdog" / "policies" / name).is_dir()
    written = json.loads(config.read_text(encoding="utf-8"))
    assert USER_ENTRY in _commands(written) or name == "opencode"
    for rel in setup.files(command, False):
        assert (config.parent / rel).is_file(), rel
    if setup.sample is not None:
        assert "hook check: ok (denied `rm -rf ~`" in first.stdout, first.stdout
        assert any(is_ours(c) for c in _commands(written)) or name == "opencode"
    backups = list(config.parent.glob(f"{config.name}.watchdog-*.bak"))
    assert len(backups) <= 1 and all(json.loads(b.read_text()) == original for b in backups)

    again = run_cli(["init", "--harness", name, "--dir", str(project), "--command", command,
                     "--no-check"], env, timeout=120)
    assert again.code == 0 and "nothing changed" in again.stdout, again.stdout

    report = run_cli(["doctor", "--harness", name, "--dir", str(project), "--json"], env,
                     timeout=300)
    found = json.loads(report.stdout)["findings"]
    hooks = [f for f in found if f["check"] == "hooks"]
    assert hooks and all(f["level"] == "ok" for f in hooks), hooks

    mine = project / ".watchdog" / "policies" / "common" / "git.rego"
    mine.write_text(mine.read_text() + "\n# my change\n")
    gone = run_cli(["uninstall", "--harness", name, "--dir", str(project)], env)
    assert gone.code == 0, gone.stdout + gone.stderr
    after = json.loads(config.read_text(encoding="utf-8")) if config.exists() else {}
    assert after == original
    for rel in setup.files(command, False):
        assert not (config.parent / rel).exists(), rel
    assert mine.is_file() and not (mine.parent / "destructive.rego").exists()
    twice = run_cli(["uninstall", "--harness", name, "--dir", str(project)], env)
    assert twice.code == 0 and "nothing changed" in twice.stdout, twice.stdout


@pytest.mark.parametrize("name", list(harnesses.NAMES))
def test_global_install_touches_only_the_home(name: str,
                                              world: tuple[dict[str, str], Path, Path]) -> None:
    env, project, home = world
    setup = harnesses.get(name).setup
    done = run_cli(["init", "--harness", name, "--dir", str(project), "--global",
                    "--command", f"{sys.executable} -m watchdog", "--no-check"], env, timeout=120)
    assert done.code == 0, done.stdout + done.stderr
    assert not (project / ".watchdog").exists() and os.listdir(project) == []
    config = setup.config_path(project, home, True)
    assert str(config).startswith(str(home))
    assert config.exists() or any((config.parent / r).exists()
                                  for r in setup.files("watchdog", False))
    gone = run_cli(["uninstall", "--harness", name, "--dir", str(project), "--global"], env)
    assert gone.code == 0, gone.stdout + gone.stderr


def test_a_rerun_never_makes_the_opencode_plugin_fail_open(
        world: tuple[dict[str, str], Path, Path]) -> None:
    """init --fail-closed bakes fail-closed into the plugin; a later plain init keeps it."""
    env, project, home = world
    setup = harnesses.get("opencode").setup
    command = f"{sys.executable} -m watchdog"
    args = ["init", "--harness", "opencode", "--dir", str(project), "--command", command,
            "--no-check"]
    assert run_cli([*args, "--fail-closed"], env, timeout=120).code == 0
    plugin = setup.config_path(project, home, False).parent / next(iter(setup.files("x", False)))
    closed = plugin.read_text(encoding="utf-8")
    assert run_cli(args, env, timeout=120).code == 0
    assert plugin.read_text(encoding="utf-8") == closed
    assert closed != setup.files(f"{command} hook --harness opencode", False)[
        next(iter(setup.files("x", False)))]


def test_init_http_registers_claude_http_hooks(world: tuple[dict[str, str], Path, Path]) -> None:
    """--http writes Claude Code `http` hooks posting to `watchdog serve`, warns that they fail
    open while it is down, doctor says whether serve answers there, and uninstall removes them
    (and a later command install replaces them instead of adding a second hook)."""
    from test_serve import start

    env, project, home = world
    config = project / ".claude" / "settings.json"
    served = start(env, "--policy-dir", str(REPO / "policies"))
    try:
        url = served.url
        done = run_cli(["init", "--dir", str(project), "--http", url], env, timeout=120)
        assert done.code == 0, done.stdout + done.stderr
        assert "fail" in done.stderr and "--serve" in done.stderr
        hooks = json.loads(config.read_text())["hooks"]
        entry = hooks["PreToolUse"][0]["hooks"][0]
        assert entry["type"] == "http" and entry["url"] == f"{url}/hook/claude"
        assert entry["headers"]["Authorization"] == "Bearer $WATCHDOG_SERVE_TOKEN"
        up = json.loads(run_cli(["doctor", "--dir", str(project), "--json"], env,
                                timeout=300).stdout)["findings"]
        assert any(f["check"] == "hooks" and f["level"] == "ok" and "posts to watchdog serve"
                   in f["message"] for f in up), up
    finally:
        served.stop()
    down = json.loads(run_cli(["doctor", "--dir", str(project), "--json"], env,
                              timeout=300).stdout)["findings"]
    assert any(f["check"] == "hooks" and f["level"] == "problem" and "no watchdog serve"
               in f["message"] for f in down), down
    command = f"{sys.executable} -m watchdog"
    again = run_cli(["init", "--dir", str(project), "--command", command, "--no-check"], env)
    assert again.code == 0
    pre = json.loads(config.read_text())["hooks"]["PreToolUse"]
    assert [h["type"] for g in pre for h in g["hooks"]] == ["command"]
    assert run_cli(["uninstall", "--dir", str(project)], env).code == 0
    assert "hooks" not in json.loads(config.read_text())
