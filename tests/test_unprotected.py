"""Never silently unprotected: no policy root, an empty root, one policy that does not compile.

Each case runs the real hook as a subprocess (as Claude Code does) with isolated user dirs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, PolicyRoot, bash, rego_policy, run_cli

RM_HOME = "rm -rf ~"
BROKEN = rego_policy("cupcake.policies.broken", """
    deny contains {"rule_id": "MY-BROKEN", "reason": "x", "severity": "HIGH"} if {
        input.tool_input.command ==
    }
    """, events=["PreToolUse"], tools=["Bash"])


def hook(env: dict[str, str], event: dict[str, Any], cwd: Path,
         extra: dict[str, str] | None = None, policy_dir: Path | None = None) -> Any:
    args = ["hook", "--harness", "claude"]
    if policy_dir is not None:
        args += ["--policy-dir", str(policy_dir)]
    run = run_cli(args, {**env, **(extra or {})}, json.dumps(event).encode(), cwd=cwd)
    assert run.code == 0, run.stderr
    return run


def _decision(out: dict[str, Any]) -> str | None:
    return out.get("hookSpecificOutput", {}).get("permissionDecision")


def _log(env: dict[str, str]) -> str:
    path = Path(env["XDG_STATE_HOME"]) / "watchdog" / "log.jsonl"
    return path.read_text() if path.exists() else ""


def test_no_policy_root_anywhere_the_default_pack_applies(env: dict[str, str],
                                                          tmp_path: Path) -> None:
    project = tmp_path / "bare"
    project.mkdir()
    first = hook(env, bash(RM_HOME, cwd=str(project), session_id="s1"), project).json
    assert _decision(first) == "deny"
    assert "shipped default pack applies" in first["systemMessage"]
    assert "watchdog init" in first["systemMessage"]
    again = hook(env, bash(RM_HOME, cwd=str(project), session_id="s1"), project).json
    assert _decision(again) == "deny" and "default pack" not in again.get("systemMessage", "")
    other = hook(env, bash("ls", cwd=str(project), session_id="s2"), project).json
    assert "shipped default pack applies" in other["systemMessage"]  # once per session
    assert '"event": "default_pack"' in _log(env)


def test_no_policies_can_fail_closed(env: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "bare"
    project.mkdir()
    out = hook(env, bash("ls", cwd=str(project)), project,
               extra={"WATCHDOG_NO_POLICIES": "closed"}).json
    assert _decision(out) == "deny"
    assert "no policies found" in out["hookSpecificOutput"]["permissionDecisionReason"]


def test_an_empty_root_says_so_once_per_session(env: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / ".watchdog" / "policies" / "claude").mkdir(parents=True)
    first = hook(env, bash(RM_HOME, cwd=str(project), session_id="e1"), project).json
    assert _decision(first) is None  # nothing decides: and the user is told
    assert "holds no policy" in first["systemMessage"]
    again = hook(env, bash(RM_HOME, cwd=str(project), session_id="e1"), project).json
    assert "holds no policy" not in again.get("systemMessage", "")
    assert '"event": "empty_policy_root"' in _log(env)
    closed = hook(env, bash(RM_HOME, cwd=str(project), session_id="e2"), project,
                  extra={"WATCHDOG_NO_POLICIES": "closed"}).json
    assert _decision(closed) == "deny"
    verify = run_cli(["verify"], env, b"", cwd=project)
    assert verify.code == 1 and "no routed policy" in verify.stdout


def _pack_with(root: Path, extra_name: str, extra: str) -> PolicyRoot:
    policy_root = PolicyRoot(root)
    target = root / "policies" / "common"
    shutil.copytree(REPO / "policies" / "common", target, dirs_exist_ok=True)
    policy_root.add(extra_name, extra)
    return policy_root


def test_one_broken_policy_is_left_out_alone(env: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "proj"
    _pack_with(project / ".watchdog", "broken.rego", BROKEN)
    for session in ("b1", "b1"):  # said on every event until fixed
        out = hook(env, bash(RM_HOME, cwd=str(project), session_id=session), project).json
        assert _decision(out) == "deny", out  # the shipped pack still decides
        assert "broken.rego does not compile and is left out" in out["systemMessage"]
        assert "MY-BROKEN" in out["systemMessage"] and "watchdog verify" in out["systemMessage"]
    assert '"event": "policy_excluded"' in _log(env)
    verify = run_cli(["verify"], env, b"", cwd=project)
    assert verify.code == 1
    assert "broken.rego:" in verify.stdout and "left out: MY-BROKEN off" in verify.stdout
    closed = hook(env, bash("ls", cwd=str(project)), project,
                  extra={"WATCHDOG_POLICY_ERRORS": "closed"}).json
    assert _decision(closed) == "deny"
    assert "does not compile" in closed["hookSpecificOutput"]["permissionDecisionReason"]


@pytest.mark.parametrize("setting", ["WATCHDOG_NO_POLICIES", "WATCHDOG_POLICY_ERRORS"])
def test_bad_values_are_config_errors(env: dict[str, str], tmp_path: Path,
                                      setting: str) -> None:
    out = hook(env, bash("ls", cwd=str(tmp_path)), tmp_path, extra={setting: "maybe"}).json
    assert "must be one of" in out["systemMessage"]


def test_a_misspelt_setting_is_said_once_per_session(env: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "bare"
    project.mkdir()
    extra = {"WATCHDOG_ON_EROR": "closed"}
    first = hook(env, bash(RM_HOME, cwd=str(project), session_id="m1"), project, extra).json
    assert "WATCHDOG_ON_EROR (did you mean WATCHDOG_ON_ERROR?)" in first["systemMessage"]
    assert _decision(first) == "deny"
    again = hook(env, bash("ls", cwd=str(project), session_id="m1"), project, extra).json
    assert "WATCHDOG_ON_EROR" not in again.get("systemMessage", "")
