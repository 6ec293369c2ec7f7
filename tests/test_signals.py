"""Signals as Cupcake runs them: only the ones matched policies declare (plus matched builtins'
generated ones), concurrently, `sh -c` with the event on stdin, results at `input.signals`.
Everything goes through the real hook subprocess."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, PolicyRoot, bash, claude_event, rego_policy, run_cli

BUILTINS = REPO / "policies" / "claude" / "builtins"

SHOW = """
deny contains {"rule_id": "SHOW", "reason": json.marshal(object.get(input, "signals", "ABSENT")),
               "severity": "HIGH"} if input.tool_name == "Bash"
"""


def project(root: PolicyRoot) -> Path:
    path = root.path.parent.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def show(root: PolicyRoot, signals: list[str] | None, events: list[str] | None = None) -> None:
    root.add("show.rego", rego_policy("cupcake.policies.show", SHOW,
                                      events=events or ["PreToolUse"], tools=["Bash"],
                                      signals=signals))


def seen(hook: Any, root: PolicyRoot, command: str = "ls", **kw: Any) -> Any:
    """What the policy saw at input.signals ("ABSENT" when the key was not there)."""
    run = hook(bash(command, cwd=str(project(root))), policy_dir=root, **kw)
    assert run.code == 0, run.stderr
    return json.loads(run.hso["permissionDecisionReason"])


def install(root: PolicyRoot, name: str) -> None:
    target = root.path / "policies" / "claude" / "builtins" / f"{name}.rego"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(BUILTINS / f"{name}.rego", target)


def log_records(env: dict[str, str], event: str) -> list[dict[str, Any]]:
    path = Path(env["XDG_STATE_HOME"]) / "watchdog" / "log.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("event") == event]


def test_results_json_string_failure(hook: Any, root: PolicyRoot) -> None:
    """exit 0: JSON if the trimmed stdout parses, else the trimmed string; non-zero: Cupcake's
    failure object with stdout and stderr."""
    root.rulebook("""
        signals:
          data: {command: "printf '  {\\"a\\": [1, 2]}\\n'"}
          text: {command: "echo '  main  '"}
          number: {command: "echo 42"}
          empty: {command: "true"}
          nan: {command: "echo NaN"}
          bad: {command: "echo out; echo err >&2; exit 3"}
    """)
    show(root, ["data", "text", "number", "empty", "nan", "bad"])
    assert seen(hook, root) == {
        "data": {"a": [1, 2]}, "text": "main", "number": 42, "empty": "", "nan": "NaN",
        "bad": {"exit_code": 3, "output": "out", "error": "err", "success": False},
    }


def test_event_json_on_stdin_and_cwd(hook: Any, root: PolicyRoot) -> None:
    """The preprocessed event arrives on stdin; the signal runs in the event's cwd."""
    root.rulebook("""
        signals:
          event: {command: "cat"}
          where: {command: "pwd"}
    """)
    show(root, ["event", "where"])
    got = seen(hook, root, "git   status")
    assert got["event"]["tool_input"]["command"] == "git status"  # whitespace collapsed
    assert got["event"]["hook_event_name"] == "PreToolUse"
    assert "signals" not in got["event"] and "builtin_config" not in got["event"]
    assert got["where"] == str(project(root))


def test_timeout_and_spawn_failure_leave_key_absent_and_log(
    hook: Any, root: PolicyRoot, env: dict[str, str]
) -> None:
    """A signal past its timeout is killed and left out; so is an undefined one. Both are
    logged, and `eval --explain` shows them."""
    root.rulebook("""
        signals:
          slow: {command: "sleep 30", timeout_seconds: 1}
          fast: {command: "echo ok"}
    """)
    show(root, ["slow", "fast", "undefined"])
    assert seen(hook, root) == {"fast": "ok"}
    failed = {r["signal"]: r["reason"] for r in log_records(env, "signal_failed")}
    assert failed["slow"] == "timed out after 1 s"
    assert "not defined" in failed["undefined"]
    event = bash("ls", cwd=str(project(root)))
    run = run_cli(["eval", "--explain", "--harness", "claude", "--policy-dir", str(root.path)],
                  env, json.dumps(event))
    assert "signal project/slow" in run.stderr and "timed out after 1 s" in run.stderr
    assert 'signal project/fast' in run.stderr and '"ok"' in run.stderr


def test_signal_files_discovered(hook: Any, root: PolicyRoot) -> None:
    """An executable `<root>/signals/<stem>` is the signal <stem>; the rulebook entry wins;
    adding a file later is picked up (it is part of the bundle fingerprint)."""
    signals_dir = root.path / "signals"
    signals_dir.mkdir()
    script = signals_dir / "branch.sh"
    script.write_text("#!/bin/sh\necho feature-x\n")
    script.chmod(0o755)
    show(root, ["branch", "later"])
    assert seen(hook, root) == {"branch": "feature-x"}
    later = signals_dir / "later"
    later.write_text("#!/bin/sh\necho '{\"n\": 1}'\n")
    later.chmod(0o755)
    assert seen(hook, root) == {"branch": "feature-x", "later": {"n": 1}}
    root.rulebook("signals:\n  branch: {command: echo from-rulebook}\n")
    assert seen(hook, root)["branch"] == "from-rulebook"


def test_only_declared_signals_of_matched_policies_run(
    hook: Any, root: PolicyRoot, tmp_path: Path
) -> None:
    """A signal no matched policy declares does not run (its side effect never happens), even
    when another loaded policy, not routed for this event, declares it."""
    marks = tmp_path / "marks"
    marks.mkdir()
    root.rulebook(f"""
        signals:
          wanted: {{command: "touch {marks}/wanted; echo yes"}}
          other: {{command: "touch {marks}/other; echo no"}}
    """)
    show(root, ["wanted"])
    root.add("stop.rego", rego_policy(
        "cupcake.policies.stop", 'add_context contains x if { x := input.signals.other }',
        events=["Stop"], signals=["other"]))
    assert seen(hook, root) == {"wanted": "yes"}
    assert (marks / "wanted").exists()
    assert not (marks / "other").exists()


def test_no_signals_key_when_none_required(hook: Any, root: PolicyRoot) -> None:
    root.rulebook("signals:\n  x: {command: echo x}\n")
    show(root, None)
    assert seen(hook, root) == "ABSENT"


def test_signals_key_present_when_all_failed(hook: Any, root: PolicyRoot) -> None:
    """As in Cupcake, input.signals exists once a signal was required, even if none gave a
    value."""
    root.rulebook("signals:\n  slow: {command: 'sleep 30', timeout_seconds: 0}\n")
    show(root, ["slow"])
    assert seen(hook, root) == {}


def test_signals_run_concurrently(hook: Any, root: PolicyRoot, tmp_path: Path) -> None:
    """Two slow signals both run and both deliver (they run at once; speed is not asserted
    here: see benchmarks)."""
    root.rulebook(f"""
        signals:
          a: {{command: "sleep 0.5; touch {tmp_path}/a; echo A"}}
          b: {{command: "sleep 0.5; touch {tmp_path}/b; echo B"}}
    """)
    show(root, ["a", "b"])
    assert seen(hook, root) == {"a": "A", "b": "B"}
    assert (tmp_path / "a").exists() and (tmp_path / "b").exists()


def test_git_pre_check_end_to_end(hook: Any, root: PolicyRoot, tmp_path: Path) -> None:
    """git_pre_check's generated checks run on git commit/push/merge and halt when one fails;
    on other commands they do not even run."""
    install(root, "git_pre_check")
    root.rulebook(f"""
        builtins:
          git_pre_check:
            enabled: true
            checks:
              - {{command: "touch {tmp_path}/ran; echo fine", message: ok}}
              - {{command: "echo '2 tests failed'; exit 1", message: tests}}
    """)
    run = hook(bash("git status", cwd=str(project(root))), policy_dir=root)
    assert run.json == {}
    assert not (tmp_path / "ran").exists()
    run = hook(bash("git  commit -m x", cwd=str(project(root))), policy_dir=root)
    assert run.json["continue"] is False
    assert run.hso["permissionDecision"] == "deny"
    assert run.hso["permissionDecisionReason"] == "Git pre-checks failed:\n- 2 tests failed"
    assert (tmp_path / "ran").exists()


def test_git_pre_check_passes_when_checks_pass(hook: Any, root: PolicyRoot) -> None:
    install(root, "git_pre_check")
    root.rulebook("builtins:\n  git_pre_check: {enabled: true, checks: "
                  "[{command: 'true', message: m}]}\n")
    assert hook(bash("git push", cwd=str(project(root))), policy_dir=root).json == {}


def test_post_edit_check_runs_only_the_edited_extension(
    hook: Any, root: PolicyRoot, tmp_path: Path
) -> None:
    install(root, "post_edit_check")
    root.rulebook(f"""
        builtins:
          post_edit_check:
            enabled: true
            by_extension:
              py: {{command: "touch {tmp_path}/py; echo 'E501 line too long'; exit 1",
                    message: lint}}
              rs: {{command: "touch {tmp_path}/rs", message: check}}
    """)
    event = claude_event("PostToolUse", tool_name="Edit", cwd=str(project(root)),
                         tool_input={"file_path": "app.py", "old_string": "a",
                                     "new_string": "b"}, tool_response={})
    run = hook(event, policy_dir=root)
    assert run.hso["additionalContext"] == (
        "File validation failed for app.py\nE501 line too long\n\nDo you want to continue anyway?")
    assert (tmp_path / "py").exists() and not (tmp_path / "rs").exists()


def test_always_inject_dynamic_contexts_end_to_end(
    hook: Any, root: PolicyRoot, tmp_path: Path
) -> None:
    """Static strings, a command's output and a file's contents, in index order."""
    install(root, "claude_code_always_inject_on_prompt")
    notes = tmp_path / "it's notes.md"
    notes.write_text("from the file\n")
    root.rulebook(f"""
        builtins:
          always_inject_on_prompt:
            enabled: true
            context:
              - static one
              - command: "echo '{{\\"k\\": 1}}'"
              - file: "{notes}"
    """)
    run = hook(claude_event("UserPromptSubmit", prompt="hi", cwd=str(project(root))),
               policy_dir=root)
    assert run.hso["additionalContext"] == 'static one\n\n{"k":1}\n\nfrom the file'


def test_cupcake_watchdog_signal_kept_alongside(hook: Any, root: PolicyRoot) -> None:
    """Other code's input.signals entries (the Cupcake watchdog's) are added to, not lost:
    here checked on the doc builder directly."""
    from watchdog import evaluation as hook_mod

    doc = hook_mod._input_doc({"a": 1}, {}, "project", None, {"x": 1})
    doc["signals"] = {**doc["signals"], "watchdog": {"allow": True}}
    assert doc == {"a": 1, "signals": {"x": 1, "watchdog": {"allow": True}}}


@pytest.mark.parametrize("package", ["cupcake.policies.builtins.git_pre_check",
                                     "cupcake.global.policies.builtins.git_pre_check"])
def test_required_builtin_forms(package: str) -> None:
    """Project and global builtin package names both pick their generated signals."""
    from watchdog import signals

    scope = "global" if ".global." in package else "project"
    manifest = {"builtin_signals": {scope: {"git_pre_check": ["__builtin_git_check_0"]}},
                "scopes": {scope: {"policies": [{"package": package, "signals": ["x"]}]}}}
    doc = {"tool_input": {"command": "git merge main"}}
    assert signals.required(manifest, scope, [package], doc) == ["x", "__builtin_git_check_0"]
    doc = {"tool_input": {"command": "ls"}}
    assert signals.required(manifest, scope, [package], doc) == ["x"]
