"""`watchdog init` writes a hook Claude Code can run, and checks that it answers.

Claude Code runs the hook's command through `/bin/sh -c` with the PATH it was started with; a
bare `watchdog` from a virtualenv that is not on that PATH is exit 127 on every event, which
Claude Code treats as a non-blocking error (every tool call then runs unchecked).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, bash
from watchdog import hook_check, init
from watchdog.harnesses.hook_commands import is_ours

VENV_BIN = Path(sys.executable).parent
EVENTS = ("PreToolUse", "PostToolUse", "PermissionRequest", "UserPromptSubmit", "SessionStart",
          "Stop", "SubagentStop")
#: A PATH without the virtualenv's bin/, as in a shell where it was never activated.
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"


def run_init(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "watchdog", "init", "--dir", str(project), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def ours(project: Path, command: str = "") -> dict[str, list[dict[str, Any]]]:
    """Every event's watchdog entries (or entries running `command`) in the project."""
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    return {event: [h for g in groups for h in g["hooks"] if is_ours(h.get("command"), command)]
            for event, groups in settings["hooks"].items()}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    return path


@pytest.fixture
def bare_env(env: dict[str, str]) -> dict[str, str]:
    """The isolated environment, with a PATH that cannot find the virtualenv's watchdog."""
    assert not (Path("/usr/local/bin/watchdog").exists() or Path("/usr/bin/watchdog").exists())
    return {**env, "PATH": BARE_PATH}


def test_init_writes_absolute_command_and_checks_it(project: Path,
                                                    bare_env: dict[str, str]) -> None:
    """The command is this install's own console script, absolute and executable, and init
    ran it once: a deny of `rm -rf ~` from the project's freshly installed pack."""
    proc = run_init(project, env=bare_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = f"{VENV_BIN / 'watchdog'} hook --harness claude"
    for event in EVENTS:
        assert [h["command"] for h in ours(project)[event]] == [expected]
    exe = Path(shlex.split(expected)[0])
    assert exe.is_absolute() and exe.is_file() and os.access(exe, os.X_OK)
    assert "hook check: ok (denied `rm -rf ~` in " in proc.stdout
    assert 'hint: without "onFailure": "block"' in proc.stdout


def test_written_command_answers_without_the_venv_on_path(project: Path,
                                                          bare_env: dict[str, str]) -> None:
    """The written command, run as Claude Code runs it (/bin/sh -c, cwd the project, a PATH
    lacking the venv's bin/), answers a sample event; plain `watchdog` would be exit 127."""
    assert run_init(project, env=bare_env).returncode == 0
    assert str(VENV_BIN) not in bare_env["PATH"].split(os.pathsep)
    event = json.dumps(bash("rm -rf ~", cwd=str(project)))
    for command in {h["command"] for hooks in ours(project).values() for h in hooks}:
        proc = subprocess.run(["/bin/sh", "-c", command], input=event, capture_output=True,
                              text=True, env=bare_env, cwd=project, timeout=60)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)["hookSpecificOutput"]
        assert out["permissionDecision"] == "deny"
    bare = subprocess.run(["/bin/sh", "-c", "watchdog hook --harness claude"], input=event,
                          capture_output=True, text=True, env=bare_env, cwd=project, timeout=60)
    assert bare.returncode == 127  # the bug this guards against


def test_fail_closed_writes_on_failure_block(project: Path, env: dict[str, str]) -> None:
    """--fail-closed adds "onFailure": "block" wherever Claude Code honours it (not Stop or
    SubagentStop, where it is ignored); a later init without the flag keeps it."""
    proc = run_init(project, "--fail-closed", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hint:" not in proc.stdout
    for event, hooks in ours(project).items():
        (entry,) = hooks
        assert entry.get("onFailure") == (None if event in ("Stop", "SubagentStop") else "block")
    again = run_init(project, env=env)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert ours(project)["PreToolUse"][0]["onFailure"] == "block"


def test_broken_command_fails_loudly(project: Path, env: dict[str, str]) -> None:
    """A command that cannot start: exit 1, and the message names the command, the shell's
    error and what to do. The settings stay written, so a fixed install only re-runs init."""
    proc = run_init(project, "--command", "/nonexistent/watchdog", env=env)
    assert proc.returncode == 1
    assert "WARNING: --command '/nonexistent/watchdog' will not start" in proc.stderr
    assert "HOOK CHECK FAILED" in proc.stderr
    assert "command: /nonexistent/watchdog hook --harness claude" in proc.stderr
    assert "exited with status 127" in proc.stderr and "not found" in proc.stderr
    assert "uv tool install" in proc.stderr and "hook check: ok" not in proc.stdout
    assert ours(project)["Stop"][0]["command"] == "/nonexistent/watchdog hook --harness claude"
    fixed = run_init(project, env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert ours(project)["Stop"][0]["command"] == f"{VENV_BIN / 'watchdog'} hook --harness claude"


def test_command_on_path_is_checked(project: Path, bare_env: dict[str, str]) -> None:
    """--command watchdog (a shared settings.json) warns when `watchdog` is not on PATH here;
    --no-check writes it anyway; on a PATH that has it, the check passes."""
    proc = run_init(project, "--command", "watchdog", "--no-check", env=bare_env)
    assert proc.returncode == 0
    assert "WARNING: --command 'watchdog' will not start: 'watchdog' is not on PATH" in proc.stderr
    assert ours(project)["PreToolUse"][0]["command"] == "watchdog hook --harness claude"
    on_path = {**bare_env, "PATH": f"{VENV_BIN}{os.pathsep}{BARE_PATH}"}
    proc = run_init(project, "--command", "watchdog", env=on_path)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr and "hook check: ok" in proc.stdout
    assert "must be on the PATH of every shell" in proc.stdout


def test_answer_that_is_not_a_deny_fails(project: Path, env: dict[str, str],
                                         tmp_path: Path) -> None:
    """A command that answers, but not with the pack's deny (policies not loaded), fails."""
    wrapper = tmp_path / "bin" / "wd-wrapper"
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/sh\ncat > /dev/null\necho '{}'\n")
    wrapper.chmod(0o755)
    proc = run_init(project, "--command", str(wrapper), env=env)
    assert proc.returncode == 1
    assert "answered {}, not a deny of `rm -rf ~`" in proc.stderr
    assert "watchdog verify" in proc.stderr
    # Re-running with the same wrapper (not named watchdog) updates, never duplicates.
    assert run_init(project, "--command", str(wrapper), "--no-check", env=env).returncode == 0
    mine = ours(project, f"{wrapper} hook --harness claude")
    assert set(mine) == set(EVENTS) and all(len(hooks) == 1 for hooks in mine.values())


def test_rerun_migrates_old_entries_in_place(project: Path, env: dict[str, str]) -> None:
    """Entries in the forms earlier inits and READMEs wrote (bare, absolute, quoted,
    python -m) become one entry with this install's absolute command, keeping other hooks."""
    (project / ".claude").mkdir()
    old = ["watchdog hook --harness claude", "/opt/old/bin/watchdog hook --harness claude",
           "'/opt/my tools/watchdog' hook --harness claude --watchdog",
           "/usr/bin/python3 -m watchdog hook --harness claude"]
    theirs = {"type": "command", "command": "./scripts/lint-hook.sh"}
    hooks: dict[str, Any] = {
        event: [{"matcher": "*", "hooks": [{"type": "command", "command": old[i % len(old)],
                                           "timeout": 10}]}]
        for i, event in enumerate(EVENTS)}
    hooks["PreToolUse"].append({"matcher": "Bash", "hooks": [theirs]})
    (project / ".claude" / "settings.json").write_text(json.dumps({"hooks": hooks}))
    assert run_init(project, env=env).returncode == 0
    again = run_init(project, env=env)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    expected = f"{VENV_BIN / 'watchdog'} hook --harness claude"
    for hooks_ in ours(project).values():
        assert [(h["command"], h["timeout"]) for h in hooks_] == [(expected, 10)]
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    assert settings["hooks"]["PreToolUse"][1] == {"matcher": "Bash", "hooks": [theirs]}


@pytest.mark.parametrize("command, mine", [
    ("watchdog hook --harness claude", True),
    ("/home/u/.local/bin/watchdog hook --harness claude --watchdog", True),
    ("'/opt/my tools/watchdog' hook --harness claude", True),
    ("/usr/bin/python3 -m watchdog hook --harness claude", True),
    ("echo 'watchdog hook'", False),
    ("watchdog eval --harness claude", False),
    ("./scripts/lint-hook.sh", False),
], ids=["bare", "absolute", "quoted", "python-m", "echo", "eval", "other"])
def test_is_ours(command: str, mine: bool) -> None:
    assert is_ours(command) is mine


def test_executable_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beside the interpreter (by its PATH link if it has one), else on PATH, else
    `python -m watchdog`; quoted when the path has a space."""
    spaced = tmp_path / "my venv" / "bin"
    spaced.mkdir(parents=True)
    python = spaced / "python"
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert init.executable() == f"'{python}' -m watchdog"
    on_path = tmp_path / "bin" / "watchdog"
    on_path.parent.mkdir()
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert init.executable() == str(on_path)
    beside = spaced / "watchdog"
    beside.write_text("#!/bin/sh\n")
    beside.chmod(0o755)
    assert init.executable() == f"'{beside}'"
    assert shlex.split(init.executable()) == [str(beside)]
    on_path.unlink()
    on_path.symlink_to(beside)  # as `uv tool install` and pipx link ~/.local/bin/watchdog
    assert init.executable() == str(on_path)


def test_check_kills_a_hook_that_hangs(tmp_path: Path, env: dict[str, str]) -> None:
    """Past the timeout the shell and what it started are killed, and the check fails."""
    check = hook_check.check_hook("sleep 30; echo '{}'", tmp_path, env, timeout_s=0.5)
    assert not check.ok and check.result == "no answer within 0.5 s (killed)"


def test_command_that_names_hook_is_a_usage_error(project: Path, env: dict[str, str]) -> None:
    proc = run_init(project, "--command", "watchdog hook --harness claude", env=env)
    assert proc.returncode == 1
    assert "--command is the executable alone" in proc.stderr
    assert not (project / ".claude").exists()
