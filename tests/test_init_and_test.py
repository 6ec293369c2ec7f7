"""`watchdog init` (pack + hooks into a project) and `watchdog test` (Rego unit tests)."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO, bash, claude_event

POLICIES = REPO / "policies"
#: What `watchdog init` writes as the hook's executable: this install's console script.
WATCHDOG = Path(sys.executable).with_name("watchdog")


@functools.cache
def _entry(command: str) -> list[str]:
    """`python -m watchdog <command>` once cli.py routes it; the module's own main until then."""
    probe = subprocess.run([sys.executable, "-m", "watchdog", command, "--help"],
                           capture_output=True, cwd=REPO)
    if probe.returncode == 0:
        return [sys.executable, "-m", "watchdog", command]
    module = {"test": "watchdog.policies.tests", "init": "watchdog.init"}[command]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def run(command: str, *args: str, env: dict[str, str], cwd: Path | None = None,
        stdin: str = "") -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*_entry(command), *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=cwd or REPO, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def hook(event: dict[str, Any], env: dict[str, str], cwd: Path,
         *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "watchdog", *args], input=json.dumps(event),
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def tree_digest(top: Path) -> dict[str, str]:
    return {str(p.relative_to(top)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(top.rglob("*")) if p.is_file()}


def test_pack_tests_pass(env: dict[str, str]) -> None:
    """`watchdog test --policy-dir policies` runs the shipped pack's tests and all pass."""
    proc = run("test", "--policy-dir", str(POLICIES), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout
    assert "PASS " in proc.stdout and "default_pack_test.rego:" in proc.stdout


def test_failing_test_fails_and_is_named(env: dict[str, str], tmp_path: Path) -> None:
    """A failing test makes the run exit 1 and names its file, line and rule."""
    root = tmp_path / "pack"
    shutil.copytree(POLICIES, root)
    (root / "tests" / "broken_test.rego").write_text(
        "package cupcake.tests.broken\n\nimport rego.v1\n\n"
        'input_ls_is_denied := {"hook_event_name": "PreToolUse", "tool_name": "Bash", '
        '"cwd": "/tmp", "tool_input": {"command": "ls"}}\n\n'
        "test_ls_is_denied if count(data.cupcake.policies.destructive.deny) > 0\n"
    )
    proc = run("test", "--policy-dir", str(root), env=env)
    assert proc.returncode == 1
    assert "FAIL " in proc.stdout
    assert "broken_test.rego:7 test_ls_is_denied" in proc.stdout
    assert "1 failed" in proc.stdout


def test_test_file_that_does_not_compile(env: dict[str, str], tmp_path: Path) -> None:
    """A test file with a syntax error is reported by name, exit 1."""
    root = tmp_path / "pack"
    shutil.copytree(POLICIES, root)
    (root / "tests" / "bad_test.rego").write_text("package x\n\ntest_a if {\n")
    proc = run("test", "--policy-dir", str(root), env=env)
    assert proc.returncode == 1
    assert "bad_test.rego" in proc.stderr


def test_init_installs_pack_and_hooks(env: dict[str, str], tmp_path: Path) -> None:
    """init writes .watchdog/ (pack without builtins, tests, rulebook) and every hook event."""
    project = tmp_path / "app"
    project.mkdir()
    proc = run("init", "--dir", str(project), env=env)
    assert proc.returncode == 0, proc.stderr
    wd = project / ".watchdog"
    shipped = {p.name for p in (POLICIES / "claude").glob("*.rego")}
    assert {p.name for p in (wd / "policies" / "claude").glob("*.rego")} == shipped
    assert not (wd / "policies" / "claude" / "builtins").exists()
    assert (wd / "tests" / "default_pack_test.rego").exists()
    rulebook = (wd / "rulebook.yml").read_text()
    assert "    enabled: true" not in rulebook and "  protected_paths:" in rulebook
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    events = {"PreToolUse", "PostToolUse", "PermissionRequest", "UserPromptSubmit",
              "SessionStart", "Stop", "SubagentStop"}
    assert set(settings["hooks"]) == events
    for groups in settings["hooks"].values():
        (hook_entry,) = [h for g in groups for h in g["hooks"]]
        assert hook_entry == {"type": "command", "command": f"{WATCHDOG} hook --harness claude",
                              "timeout": 30}
    assert settings["hooks"]["PreToolUse"][0]["matcher"] == "*"
    verify = subprocess.run([sys.executable, "-m", "watchdog", "verify"], capture_output=True,
                            text=True, env=env, cwd=project, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_init_twice_is_idempotent(env: dict[str, str], tmp_path: Path) -> None:
    """A second init changes no file and says so."""
    project = tmp_path / "app"
    project.mkdir()
    assert run("init", "--dir", str(project), env=env).returncode == 0
    before = tree_digest(project)
    again = run("init", "--dir", str(project), env=env)
    assert again.returncode == 0
    assert "nothing changed" in again.stdout
    assert tree_digest(project) == before


def test_init_keeps_user_hooks_and_settings(env: dict[str, str], tmp_path: Path) -> None:
    """Existing hooks and keys stay; --watchdog updates our entry in place, never duplicates."""
    project = tmp_path / "app"
    (project / ".claude").mkdir(parents=True)
    theirs = {"type": "command", "command": "./scripts/lint-hook.sh"}
    (project / ".claude" / "settings.json").write_text(json.dumps({
        "permissions": {"allow": ["Bash(npm test:*)"]},
        "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [theirs]}],
                  "Notification": [{"hooks": [{"type": "command", "command": "notify-send hi"}]}]},
    }))
    assert run("init", "--dir", str(project), env=env).returncode == 0
    assert run("init", "--dir", str(project), "--watchdog", env=env).returncode == 0
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    assert settings["permissions"] == {"allow": ["Bash(npm test:*)"]}
    assert settings["hooks"]["Notification"][0]["hooks"][0]["command"] == "notify-send hi"
    pre = settings["hooks"]["PreToolUse"]
    assert pre[0] == {"matcher": "Bash", "hooks": [theirs]}
    ours = [h for g in pre for h in g["hooks"] if "watchdog hook" in h["command"]]
    assert [h["command"] for h in ours] == [f"{WATCHDOG} hook --harness claude --watchdog"]


def test_fresh_project_denies_escalates_allows(env: dict[str, str], tmp_path: Path) -> None:
    """In an initialised project the hook (cwd inside it, no --policy-dir) applies the pack."""
    project = tmp_path / "app"
    (project / "src").mkdir(parents=True)
    assert run("init", "--dir", str(project), env=env).returncode == 0
    inside = project / "src"
    env = {**env, "WATCHDOG_GLOBAL_POLICIES": "0"}

    denied = hook(bash("rm -rf ~", cwd=str(inside)), env, inside, "hook", "--harness", "claude")
    out = json.loads(denied.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny"
    assert "home directory" in out["permissionDecisionReason"]

    edit = claude_event("PreToolUse", cwd=str(inside), tool_name="Edit", tool_use_id="toolu_2",
                        tool_input={"file_path": str(project / ".claude" / "settings.json"),
                                    "old_string": '"hooks": {', "new_string": '"hooks_off": {'})
    out = json.loads(hook(edit, env, inside, "hook", "--harness", "claude").stdout)
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"

    allowed = hook(bash("npm test", cwd=str(inside)), env, inside, "hook", "--harness", "claude")
    assert json.loads(allowed.stdout) == {}

    # Without --watchdog an escalation changes nothing for Claude Code; --explain shows it.
    push = bash("git push --force origin feature/login", cwd=str(inside))
    escalated = hook(push, env, inside, "eval", "--harness", "claude", "--explain")
    assert json.loads(escalated.stdout) == {}
    assert "escalate: [WD-GIT-FORCE] rubric=destructive wait=True" in escalated.stderr

    tests = run("test", env=env, cwd=inside)
    assert tests.returncode == 0, tests.stdout + tests.stderr
