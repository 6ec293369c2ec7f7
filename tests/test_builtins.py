"""Cupcake's builtins: rulebook.yml parsing, `input.builtin_config`, generated signals, and the
shipped Rego of every builtin, through the real hook subprocess.

Behaviour follows /work/shared/reference/cupcake.md §6 (Cupcake v0.5.2) and its cases 6, 7
and 8 (§9); each builtin's Rego file lists where it deliberately differs. The rules that read
signal results (git_pre_check, post_edit_check, dynamic prompt contexts) are also evaluated
in-process with regopy and a hand-made `input.signals`, for their edge cases; they run end to
end through the hook, with real signals, in tests/test_signals.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, PolicyRoot, bash, claude_event, rego_policy, run_cli

from watchdog.policies import rulebook

PROJECT_BUILTINS = REPO / "policies" / "claude" / "builtins"
GLOBAL_BUILTINS = REPO / "policies" / "global" / "claude" / "builtins"
PROJECT_NAMES = sorted(p.stem for p in PROJECT_BUILTINS.glob("*.rego"))
GLOBAL_NAMES = sorted(p.stem for p in GLOBAL_BUILTINS.glob("*.rego"))

# --------------------------------------------------------------------------------------------
# helpers


def install(root: PolicyRoot, name: str, source: Path = PROJECT_BUILTINS) -> None:
    """Copy a shipped builtin into the root's policies/claude/builtins/, as a user would."""
    target = root.path / "policies" / "claude" / "builtins" / f"{name}.rego"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / f"{name}.rego", target)


def global_root(env: dict[str, str], kind: str = "cupcake") -> PolicyRoot:
    """~/.config/<kind>/ with its policies/claude/ folder (XDG_CONFIG_HOME is honoured)."""
    return PolicyRoot(Path(env["XDG_CONFIG_HOME"]) / kind)


def project(root: PolicyRoot) -> Path:
    """The project folder holding .cupcake/: the events' cwd."""
    path = root.path.parent.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def tool(root: PolicyRoot, name: str, event: str = "PreToolUse", **tool_input: Any) -> Any:
    return claude_event(event, tool_name=name, tool_input=tool_input, tool_use_id="toolu_1",
                        cwd=str(project(root)))


def shell(root: PolicyRoot, command: str) -> Any:
    return bash(command, cwd=str(project(root)))


def verdict(run: Any) -> tuple[str, str]:
    """(verb, reason) of a hook answer: halt, deny, ask, context or allow."""
    assert run.code == 0, (run.code, run.stdout, run.stderr)
    out = run.json
    assert isinstance(out, dict), run.stdout
    hso = out.get("hookSpecificOutput", {})
    decision = hso.get("permissionDecision")
    if decision == "deny":
        reason = hso["permissionDecisionReason"]
        if out.get("continue") is False:
            assert out["stopReason"] == reason
            return "halt", reason
        return "deny", reason
    if decision == "ask":
        return "ask", hso["permissionDecisionReason"]
    if out.get("decision") == "block":
        return ("halt" if out.get("continue") is False else "block"), out["reason"]
    if "additionalContext" in hso:
        return "context", hso["additionalContext"]
    assert out == {}, out
    return "allow", ""


def rego_eval(name: str, doc: dict[str, Any], source: Path = PROJECT_BUILTINS) -> dict[str, Any]:
    """The whole package of a shipped builtin evaluated in-process on `doc` as the input."""
    import regopy

    interp = regopy.Interpreter()
    interp.add_module(f"{name}.rego", (source / f"{name}.rego").read_text())
    interp.set_input_term(json.dumps(doc))  # as the hook does (watchdog/policies/engine.py)
    out = interp.query(f"data.cupcake.policies.builtins.{name}")
    text = str(out)
    assert text.startswith("{"), text
    value: dict[str, Any] = json.loads(text)["expressions"][0]
    return value


def verify(env: dict[str, str], root: PolicyRoot, cwd: Path) -> Any:
    return run_cli(["verify", "--harness", "claude", "--policy-dir", str(root.path)], env, cwd=cwd)


SHOW_CONFIG = rego_policy(
    "cupcake.policies.show_config",
    'add_context contains json.marshal(input.builtin_config) if {\n'
    '\tinput.hook_event_name == "UserPromptSubmit"\n}',
    events=["UserPromptSubmit"],
)


def seen_config(hook: Any, root: PolicyRoot) -> Any:
    """input.builtin_config as the project's policies see it (None when absent). Enabled
    builtins the root has no Rego for run from the shipped pack and add their own context
    lines; the probe's line is the JSON object."""
    verb, text = verdict(hook(claude_event("UserPromptSubmit", prompt="hi"), policy_dir=root))
    lines = [line for line in text.splitlines() if line.startswith("{")] if verb == "context" \
        else []
    return json.loads(lines[0]) if lines else None


# --------------------------------------------------------------------------------------------
# 1. rulebook.yml: enabled builtins, injected config, defaults


def parse(text: str) -> rulebook.Rulebook:
    import textwrap

    return rulebook.parse(textwrap.dedent(text))


DEFAULT_SHAPES = {
    "protected_paths": (
        "paths: [a.txt]",
        {"message": "This path is read-only and cannot be modified", "paths": ["a.txt"]},
    ),
    "rulebook_security_guardrails": (
        "",
        {"message": "Cupcake configuration files are protected from modification",
         "protected_paths": [".cupcake/"]},
    ),
    "git_block_no_verify": (
        "",
        {"message": "Git operations with --no-verify are not permitted. Commit hooks must run.",
         "exceptions": []},
    ),
    "claude_code_enforce_full_file_read": (
        "",
        {"message": "Please read the entire file first (files under 2000 lines must be read "
                    "completely)", "max_lines": 2000},
    ),
    "claude_code_always_inject_on_prompt": (
        "context: [one, {command: date}, two]",
        {"static_contexts": ["one", "two"]},
    ),
    "system_protection": (
        "", {"message": "Access to critical system path blocked", "additional_paths": []},
    ),
    "sensitive_data_protection": (
        "", {"message": "Access to potentially sensitive data blocked", "additional_patterns": []},
    ),
    "cupcake_exec_protection": (
        "", {"message": "Direct execution of Cupcake binary is not permitted",
             "allowed_commands": []},
    ),
}


@pytest.mark.parametrize("name", sorted(DEFAULT_SHAPES))
def test_injected_shape_with_defaults(name: str) -> None:
    """An enabled builtin injects Cupcake's shape (§6 table) with Cupcake's defaults."""
    extra, expected = DEFAULT_SHAPES[name]
    book = rulebook.parse(
        f"builtins:\n  {name}:\n    enabled: true\n" + (f"    {extra}\n" if extra else "")
    )
    assert book.problems == ()
    assert book.enabled_builtins == (name,)
    assert book.builtin_config == {name: expected}


@pytest.mark.parametrize("name", ["git_pre_check", "post_edit_check"])
def test_signal_builtins_inject_nothing(name: str) -> None:
    """git_pre_check and post_edit_check are enabled but have no input.builtin_config entry."""
    conf = ("checks: [{command: make test, message: tests}]" if name == "git_pre_check"
            else "by_extension: {py: {command: ruff check ., message: lint}}")
    book = rulebook.parse(f"builtins:\n  {name}:\n    enabled: true\n    {conf}\n")
    assert book.problems == ()
    assert book.enabled_builtins == (name,)
    assert book.builtin_config == {}


def test_configured_values_are_injected() -> None:
    """Configured keys replace the defaults; unknown keys are dropped from the injected shape."""
    book = parse("""
        builtins:
          protected_paths: {enabled: true, message: keep out, paths: [a/, "*.pem"]}
          git_block_no_verify: {enabled: true, message: hooks!, exceptions: [CI=1]}
          cupcake_exec_protection: {enabled: true, allowed_commands: [version]}
          claude_code_enforce_full_file_read: {enabled: true, max_lines: 50, message: whole}
    """)
    assert book.builtin_config == {
        "protected_paths": {"message": "keep out", "paths": ["a/", "*.pem"]},
        "git_block_no_verify": {"message": "hooks!", "exceptions": ["CI=1"]},
        "cupcake_exec_protection": {
            "message": "Direct execution of Cupcake binary is not permitted",
            "allowed_commands": ["version"],
        },
        "claude_code_enforce_full_file_read": {"message": "whole", "max_lines": 50},
    }


@pytest.mark.parametrize(
    "conf", ["{}", "{enabled: false}", "{message: x}", "null"],
    ids=["empty", "enabled-false", "no-enabled", "null"],
)
def test_builtin_disabled_unless_enabled_true(conf: str) -> None:
    """Every builtin is off unless `enabled: true` (Cupcake's code, not its docs)."""
    book = rulebook.parse(f"builtins:\n  git_block_no_verify: {conf}\n")
    assert book.enabled_builtins == ()
    assert book.builtin_config == {}
    assert book.problems == ()


@pytest.mark.parametrize(
    ("alias", "name"),
    [("always_inject_on_prompt", "claude_code_always_inject_on_prompt"),
     ("enforce_full_file_read", "claude_code_enforce_full_file_read")],
)
def test_aliases(alias: str, name: str) -> None:
    """The two aliases enable the canonical builtin and inject under its canonical name."""
    conf = "context: [hello]" if "inject" in name else "max_lines: 10"
    book = rulebook.parse(f"builtins:\n  {alias}:\n    enabled: true\n    {conf}\n")
    assert book.problems == ()
    assert book.enabled_builtins == (name,)
    assert set(book.builtin_config) == {name}
    assert rulebook.file_enabled(name, book.enabled_builtins)


def test_alias_and_name_together_is_a_problem() -> None:
    """Configuring a builtin under its name and its alias is an error; neither is enabled."""
    book = parse("""
        builtins:
          enforce_full_file_read: {enabled: true}
          claude_code_enforce_full_file_read: {enabled: true}
    """)
    assert book.enabled_builtins == ()
    assert book.problems == (
        (4, "builtins.claude_code_enforce_full_file_read and builtins.enforce_full_file_read "
            "configure the same builtin"),
    )


def test_always_inject_without_static_strings_injects_nothing() -> None:
    """static_contexts is injected only when there is at least one static string."""
    book = rulebook.parse(
        "builtins:\n  always_inject_on_prompt:\n    enabled: true\n"
        "    context: [{file: NOTES.md}]\n"
    )
    assert book.enabled_builtins == ("claude_code_always_inject_on_prompt",)
    assert book.builtin_config == {}


PROBLEMS = [
    ("protected_paths: {enabled: true}", 2, "protected_paths: enabled but no paths configured"),
    ("protected_paths:\n    enabled: true\n    paths: [a, ' ']", 4,
     "protected_paths.paths[1]: path cannot be empty"),
    ("rulebook_security_guardrails: {enabled: true, protected_paths: []}", 2,
     "rulebook_security_guardrails: enabled but no protected paths configured"),
    ("post_edit_check:\n    enabled: true\n    by_extension:\n      .rs: {command: c, message: m}",
     5, "post_edit_check.by_extension..rs: extension should not include dot (use 'rs' not '.rs')"),
    ("post_edit_check: {enabled: true, by_extension: {}}", 2,
     "post_edit_check: enabled but no extensions configured"),
    ("post_edit_check:\n    enabled: true\n    by_extension:\n      rs: {command: ' ', message: m}",
     5, "post_edit_check.by_extension.rs: command cannot be empty"),
    ("always_inject_on_prompt: {enabled: true, context: []}", 2,
     "always_inject_on_prompt: enabled but no context configured"),
    ("always_inject_on_prompt:\n    enabled: true\n    context:\n      - {other: x}", 5,
     "always_inject_on_prompt.context[0]: dynamic source must have either 'file' or 'command'"),
    ("enforce_full_file_read: {enabled: true, max_lines: 0}", 2,
     "enforce_full_file_read: max_lines cannot be 0"),
    ("enforce_full_file_read:\n    enabled: true\n    max_lines: -5", 4,
     "builtins.enforce_full_file_read.max_lines must be a positive integer"),
    ("git_pre_check: {enabled: true}", 2, "git_pre_check: enabled but no checks configured"),
    ("git_pre_check:\n    enabled: true\n    checks:\n      - {command: '  ', message: m}", 5,
     "git_pre_check.checks[0]: command cannot be empty"),
    ("git_pre_check:\n    enabled: true\n    checks:\n      - {command: make}", 5,
     "git_pre_check.checks[0]: 'message' is required and must be a string"),
    ("git_block_no_verify: {enabled: yes please}", 2,
     "builtins.git_block_no_verify.enabled must be true or false"),
    ("git_block_no_verify:\n    enabled: true\n    message: [a]", 4,
     "builtins.git_block_no_verify.message must be a string"),
    ("system_protection:\n    enabled: true\n    additional_paths: /opt", 4,
     "builtins.system_protection.additional_paths must be a list of strings"),
]


@pytest.mark.parametrize(("conf", "line", "message"), PROBLEMS,
                         ids=[p[2].split(":")[0] + f"-{i}" for i, p in enumerate(PROBLEMS)])
def test_validation_problem_with_line(conf: str, line: int, message: str) -> None:
    """Cupcake's validation errors become problems at the offending line; the builtin stays off."""
    book = rulebook.parse(f"builtins:\n  {conf}\n")
    assert book.problems == ((line, message),)
    assert book.enabled_builtins == ()
    assert book.builtin_config == {}
    assert book.signals == {}


def test_item_problems_reported_even_when_disabled() -> None:
    """Per-item errors abort Cupcake even for a disabled builtin; "enabled but empty" does not."""
    book = parse("""
        builtins:
          protected_paths: {paths: [""]}
          git_pre_check: {enabled: false}
    """)
    assert book.problems == ((3, "protected_paths.paths[0]: path cannot be empty"),)


def test_one_bad_builtin_leaves_the_others_enabled() -> None:
    book = parse("""
        builtins:
          protected_paths: {enabled: true}
          git_block_no_verify: {enabled: true}
    """)
    assert book.enabled_builtins == ("git_block_no_verify",)
    assert [line for line, _ in book.problems] == [3]


def test_unknown_names_and_keys_are_warnings() -> None:
    """Cupcake ignores unknown names silently; we warn, with the nearest valid name."""
    book = parse("""
        builtins:
          protected_path: {enabled: true, paths: [a]}
          git_block_no_verify: {enabled: true, mesage: x}
    """)
    assert book.problems == ()
    assert book.enabled_builtins == ("git_block_no_verify",)
    assert book.warnings == (
        (3, "unknown builtin 'protected_path' (did you mean 'protected_paths'?); ignored"),
        (4, "unknown key 'mesage' in builtins.git_block_no_verify (did you mean 'message'?); "
            "ignored"),
    )


def test_invalid_yaml_is_a_problem() -> None:
    book = rulebook.parse("builtins:\n  a: [\n")
    assert book.enabled_builtins == ()
    assert len(book.problems) == 1
    assert book.problems[0][1].startswith("rulebook.yml is not valid YAML")


# --------------------------------------------------------------------------------------------
# 2. signals: generated by builtins, from rulebook `signals:` and from <root>/signals/


def test_generated_builtin_signals() -> None:
    """Names, commands and timeouts of the signals Cupcake generates for enabled builtins."""
    book = parse("""
        builtins:
          always_inject_on_prompt:
            enabled: true
            context:
              - static text
              - {file: "docs/it's.md"}
              - {command: git status --short}
              - {file: ignored.md, command: date}
          git_pre_check:
            enabled: true
            checks:
              - {command: make test, message: tests}
              - {command: make lint, message: lint}
          post_edit_check:
            enabled: true
            by_extension:
              py: {command: ruff check ., message: lint}
    """)
    assert book.problems == ()
    assert book.signals == {
        "__builtin_prompt_context_1": {"command": "cat 'docs/it'\\''s.md'", "timeout_seconds": 2},
        "__builtin_prompt_context_2": {"command": "git status --short", "timeout_seconds": 5},
        "__builtin_prompt_context_3": {"command": "date", "timeout_seconds": 5},
        "__builtin_git_check_0": {"command": "make test", "timeout_seconds": 30},
        "__builtin_git_check_1": {"command": "make lint", "timeout_seconds": 30},
        "__builtin_post_edit_py": {"command": "ruff check .", "timeout_seconds": 10},
    }
    assert book.builtin_signals == {
        "claude_code_always_inject_on_prompt": (
            "__builtin_prompt_context_1", "__builtin_prompt_context_2",
            "__builtin_prompt_context_3"),
        "git_pre_check": ("__builtin_git_check_0", "__builtin_git_check_1"),
        "post_edit_check": ("__builtin_post_edit_py",),
    }


def test_disabled_builtins_generate_no_signals() -> None:
    book = rulebook.parse(
        "builtins:\n  git_pre_check:\n    checks: [{command: make, message: m}]\n"
    )
    assert book.signals == {}
    assert book.builtin_signals == {}


def test_rulebook_signals_and_discovered_files_win_over_generated(tmp_path: Path) -> None:
    """Explicit rulebook signals win over files in signals/, which win over builtin ones."""
    (tmp_path / "signals").mkdir()
    for name in ("git_branch.sh", "__builtin_git_check_0.sh", "ticket", ".hidden"):
        (tmp_path / "signals" / name).write_text("#!/bin/sh\necho x\n")
    (tmp_path / "rulebook.yml").write_text(
        "signals:\n"
        "  git_branch: {command: git branch --show-current, timeout_seconds: 2}\n"
        "  plain: {command: echo hi}\n"
        "builtins:\n"
        "  git_pre_check:\n    enabled: true\n"
        "    checks: [{command: make test, message: m}, {command: make lint, message: m}]\n"
    )
    book = rulebook.load(str(tmp_path))
    signals_dir = tmp_path / "signals"
    assert book.signals == {
        "git_branch": {"command": "git branch --show-current", "timeout_seconds": 2},
        "plain": {"command": "echo hi", "timeout_seconds": 5},
        "__builtin_git_check_0": {
            "command": str(signals_dir / "__builtin_git_check_0.sh"), "timeout_seconds": 5},
        "__builtin_git_check_1": {"command": "make lint", "timeout_seconds": 30},
        "ticket": {"command": str(signals_dir / "ticket"), "timeout_seconds": 5},
    }


def test_signal_problems() -> None:
    book = parse("""
        signals:
          a: {timeout_seconds: 3}
          b: {command: x, timeout_seconds: soon}
    """)
    assert book.problems == (
        (3, "signals.a: 'command' is required and must be a string"),
        (4, "signals.b.timeout_seconds must be a positive integer"),
    )
    assert book.signals == {}


def test_load_without_rulebook(tmp_path: Path) -> None:
    book = rulebook.load(str(tmp_path))
    assert book == rulebook.parse("")


# --------------------------------------------------------------------------------------------
# 3. input.builtin_config through the hook


def test_builtin_config_reaches_policies(hook: Any, root: PolicyRoot) -> None:
    """Enabled builtins' shapes reach every project policy at input.builtin_config."""
    root.add("show.rego", SHOW_CONFIG)
    root.rulebook("""
        builtins:
          protected_paths: {enabled: true, paths: [secret.txt]}
          always_inject_on_prompt: {enabled: true, context: [be nice, {command: date}]}
          git_pre_check: {enabled: true, checks: [{command: make, message: m}]}
          git_block_no_verify: {enabled: false}
          sensitive_data_protection: {enabled: true, additional_patterns: [x]}
    """)
    assert seen_config(hook, root) == {
        "protected_paths": {
            "message": "This path is read-only and cannot be modified", "paths": ["secret.txt"]},
        "claude_code_always_inject_on_prompt": {"static_contexts": ["be nice"]},
        "sensitive_data_protection": {
            "message": "Access to potentially sensitive data blocked",
            "additional_patterns": ["x"]},
    }


def test_no_builtin_config_without_enabled_builtins(hook: Any, root: PolicyRoot) -> None:
    root.add("show.rego", SHOW_CONFIG)
    root.rulebook("builtins:\n  protected_paths: {paths: [a]}\n")
    assert seen_config(hook, root) is None


def test_global_config_overrides_project_per_builtin(
    hook: Any, env: dict[str, str], root: PolicyRoot
) -> None:
    """Project configs first, then the global rulebook's override per builtin name; global
    policies see only the global configs."""
    root.add("show.rego", SHOW_CONFIG)
    root.rulebook("""
        builtins:
          protected_paths: {enabled: true, message: project, paths: [p]}
          git_block_no_verify: {enabled: true, message: project}
    """)
    glob = global_root(env)
    glob.rulebook("""
        builtins:
          protected_paths: {enabled: true, message: global, paths: [g]}
          system_protection: {enabled: true}
    """)
    glob.add("g.rego", rego_policy(
        "cupcake.policies.show_global",
        'deny contains {"rule_id": "G", "reason": json.marshal(input.builtin_config), '
        '"severity": "HIGH"} if {\n\tinput.tool_name == "Bash"\n}',
        events=["PreToolUse"], tools=["Bash"],
    ))
    system = {"message": "Access to critical system path blocked", "additional_paths": []}
    assert seen_config(hook, root) == {
        "protected_paths": {"message": "global", "paths": ["g"]},
        "git_block_no_verify": {"message": "project", "exceptions": []},
        "system_protection": system,
    }
    verb, reason = verdict(hook(bash("ls"), policy_dir=root))
    assert verb == "deny"
    assert json.loads(reason) == {
        "protected_paths": {"message": "global", "paths": ["g"]},
        "system_protection": system,
    }


# --------------------------------------------------------------------------------------------
# 4. `watchdog verify`


def test_verify_reports_builtin_config_problems(
    env: dict[str, str], root: PolicyRoot, tmp_path: Path
) -> None:
    """Configuration errors are printed as rulebook.yml:line and fail verify."""
    install(root, "protected_paths")
    root.rulebook("""
        builtins:
          protected_paths:
            enabled: true
          post_edit_check:
            enabled: true
            by_extension:
              .py: {command: ruff check ., message: lint}
    """)
    run = verify(env, root, tmp_path)
    assert run.code == 1, run.stdout
    assert "rulebook.yml:3: protected_paths: enabled but no paths configured" in run.stdout
    assert ("rulebook.yml:8: post_edit_check.by_extension..py: extension should not include "
            "dot (use 'rs' not '.rs')") in run.stdout


def test_verify_warns_about_unknown_builtin(
    env: dict[str, str], root: PolicyRoot, tmp_path: Path
) -> None:
    install(root, "git_block_no_verify")
    root.rulebook("builtins:\n  git_block_no_verify: {enabled: true}\n  git_blok_no_verify: {}\n")
    run = verify(env, root, tmp_path)
    assert run.code == 0, run.stdout
    assert ("rulebook.yml:3: warning: unknown builtin 'git_blok_no_verify' "
            "(did you mean 'git_block_no_verify'?); ignored") in run.stdout


ALL_ENABLED = """
    builtins:
      protected_paths: {enabled: true, paths: [secret.txt]}
      rulebook_security_guardrails: {enabled: true}
      git_block_no_verify: {enabled: true}
      claude_code_enforce_full_file_read: {enabled: true}
      claude_code_always_inject_on_prompt: {enabled: true, context: [hi]}
      git_pre_check: {enabled: true, checks: [{command: make, message: m}]}
      post_edit_check: {enabled: true, by_extension: {py: {command: ruff, message: m}}}
      system_protection: {enabled: true}
      sensitive_data_protection: {enabled: true}
      cupcake_exec_protection: {enabled: true}
"""


def test_every_shipped_builtin_compiles_and_routes(
    env: dict[str, str], root: PolicyRoot, tmp_path: Path
) -> None:
    """All ten shipped files load together, route, and verify has nothing to say."""
    shipped = {p.stem for p in PROJECT_BUILTINS.glob("*.rego")}
    assert shipped == {
        "claude_code_always_inject_on_prompt", "claude_code_enforce_full_file_read",
        "git_block_no_verify", "git_pre_check", "post_edit_check", "protected_paths",
        "rulebook_security_guardrails"}
    shipped_global = {p.stem for p in GLOBAL_BUILTINS.glob("*.rego")}
    assert shipped_global == {
        "cupcake_exec_protection", "sensitive_data_protection", "system_protection"}
    assert shipped | shipped_global == set(rulebook.BUILTINS)
    for name in PROJECT_NAMES:
        install(root, name)
    glob = global_root(env)
    for name in GLOBAL_NAMES:
        install(glob, name, GLOBAL_BUILTINS)
    root.rulebook(ALL_ENABLED)
    glob.rulebook(ALL_ENABLED)
    run = verify(env, root, tmp_path)
    assert run.code == 0, run.stdout
    assert "warning" not in run.stdout, run.stdout
    inspect = run_cli(["inspect", "--harness", "claude", "--policy-dir", str(root.path)], env,
                      cwd=tmp_path)
    for name in PROJECT_NAMES:
        assert f"cupcake.policies.builtins.{name}" in inspect.stdout
    for name in GLOBAL_NAMES:
        assert f"cupcake.global.policies.builtins.{name}" in inspect.stdout


# The event that makes each builtin decide when enabled with this configuration.
TRIGGERS: dict[str, tuple[str, Any]] = {
    "protected_paths": ("{paths: [secure.txt]}", lambda r: shell(r, "rm secure.txt")),
    "rulebook_security_guardrails": ("{}", lambda r: shell(r, "cat .cupcake/rulebook.yml")),
    "git_block_no_verify": ("{}", lambda r: shell(r, "git commit --no-verify")),
    "claude_code_enforce_full_file_read": (
        "{}", lambda r: tool(r, "Read", file_path="a.py", offset=2)),
    "claude_code_always_inject_on_prompt": (
        "{context: [hello]}", lambda r: claude_event("UserPromptSubmit", prompt="hi")),
    "system_protection": ("{}", lambda r: tool(r, "Read", file_path="/etc/passwd")),
    "sensitive_data_protection": ("{}", lambda r: tool(r, "Read", file_path=".env")),
    "cupcake_exec_protection": ("{}", lambda r: shell(r, "cupcake eval")),
}


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_builtin_decides_only_when_enabled(hook: Any, root: PolicyRoot, name: str) -> None:
    """Installed and configured without `enabled: true`, a builtin says nothing; with it, it
    decides (a project root here: the global ones work there too)."""
    conf, trigger = TRIGGERS[name]
    source = GLOBAL_BUILTINS if name in GLOBAL_NAMES else PROJECT_BUILTINS
    install(root, name, source)
    root.add("gate.rego", rego_policy(
        "cupcake.policies.gate", "", ["PreToolUse", "UserPromptSubmit"]))
    root.rulebook(f"builtins:\n  {name}: {conf}\n")
    assert verdict(hook(trigger(root), policy_dir=root)) == ("allow", "")
    root.rulebook(f"builtins:\n  {name}: {{enabled: true, {conf[1:]}\n")
    assert verdict(hook(trigger(root), policy_dir=root))[0] != "allow"


# --------------------------------------------------------------------------------------------
# 5. protected_paths (cases 6 and 7)

CASE6_RULEBOOK = """
    builtins:
      protected_paths:
        enabled: true
        message: "This file is protected"
        paths: ["production.env", "src/legacy/", "*.secret"]
"""


def test_case6_read_write_distinction(hook: Any, root: PolicyRoot) -> None:
    """Case 6: writes to protected files halt with `<message> (<resolved path>)`; a Read is not
    routed to the builtin; an unprotected write passes."""
    install(root, "protected_paths")
    root.rulebook(CASE6_RULEBOOK)
    where = project(root)
    halted = [
        (tool(root, "Write", file_path="production.env", content="x"), "production.env"),
        (tool(root, "Edit", file_path="src/legacy/old_code.rs", old_string="a", new_string="b"),
         "src/legacy/old_code.rs"),
        (tool(root, "Write", file_path="config.secret", content="x"), "config.secret"),
    ]
    for event, rel in halted:
        assert verdict(hook(event, policy_dir=root)) == (
            "halt", f"This file is protected ({where / rel})"), rel
    assert verdict(hook(tool(root, "Read", file_path="production.env"), policy_dir=root)) == (
        "allow", "")
    assert verdict(hook(tool(root, "Write", file_path="src/main.rs", content="x"),
                        policy_dir=root)) == ("allow", "")


def test_multiedit_and_notebook(hook: Any, root: PolicyRoot) -> None:
    install(root, "protected_paths")
    root.rulebook(CASE6_RULEBOOK)
    where = project(root)
    event = tool(root, "MultiEdit", file_path="production.env",
                 edits=[{"old_string": "a", "new_string": "b"}])
    assert verdict(hook(event, policy_dir=root)) == (
        "halt", f"This file is protected ({where / 'production.env'})")
    event = tool(root, "NotebookEdit", notebook_path="src/legacy/nb.ipynb", new_source="x")
    assert verdict(hook(event, policy_dir=root))[0] == "halt"


def test_case7_bash_whitelist(hook: Any, root: PolicyRoot) -> None:
    """Case 7: read commands on a protected file pass; anything else halts."""
    install(root, "protected_paths")
    root.rulebook("builtins:\n  protected_paths: {enabled: true, paths: [secure.txt]}\n")
    for command in ["cat secure.txt", "less secure.txt", "grep pattern secure.txt",
                    "head -n 10 secure.txt", "wc -l secure.txt"]:
        assert verdict(hook(shell(root, command), policy_dir=root)) == ("allow", ""), command
    reason = "This path is read-only and cannot be modified (only read operations allowed)"
    for command in ["echo 'data' > secure.txt", "mv secure.txt backup.txt", "rm secure.txt",
                    "sed -i 's/old/new/g' secure.txt", "vim secure.txt"]:
        assert verdict(hook(shell(root, command), policy_dir=root)) == ("halt", reason), command


@pytest.mark.parametrize(("command", "allowed"), [
    ("cat secure.txt | grep x | sort", True),
    ("cd src && cat ../secure.txt 2>/dev/null", True),
    ("git diff secure.txt", True),
    ("LC_ALL=C grep -n x secure.txt", True),
    ("ls -la", True),
    ("rm x; cat secure.txt", False),
    ("cat secure.txt & rm secure.txt", False),
    ("cat secure.txt | tee copy", False),
    ("cat $(rm secure.txt)", False),
    ("find . -name secure.txt -delete", False),
    ("sort -o secure.txt secure.txt", False),
    ("awk '{print}' secure.txt > out", False),
    ("cp other secure.txt", False),
    ("Secure.TXT > /dev/null; touch SECURE.txt", False),
])
def test_bash_read_whitelist_is_per_command(
    hook: Any, root: PolicyRoot, command: str, allowed: bool
) -> None:
    """Every command of a compound line must be a read (Cupcake took a read verb anywhere)."""
    install(root, "protected_paths")
    root.rulebook("builtins:\n  protected_paths: {enabled: true, paths: [secure.txt]}\n")
    verb, _ = verdict(hook(shell(root, command), policy_dir=root))
    assert verb == ("allow" if allowed else "halt")


def test_glob_in_bash_and_parent_and_script(hook: Any, root: PolicyRoot) -> None:
    """Globs match command words; a destructive command on a parent directory and an inline
    interpreter script get their own rule ids."""
    install(root, "protected_paths")
    root.rulebook(CASE6_RULEBOOK)
    message = "This file is protected"
    assert verdict(hook(shell(root, "rm conf/db.secret"), policy_dir=root)) == (
        "halt", f"{message} (only read operations allowed)")
    assert verdict(hook(shell(root, "cat conf/db.secret"), policy_dir=root)) == ("allow", "")
    (project(root) / "src").mkdir()
    verb, reason = verdict(hook(shell(root, "rm -rf src/"), policy_dir=root))
    assert (verb, reason) == (
        "halt", f"{message} (src/legacy/ would be affected by operation on {project(root)}/src)")
    verb, reason = verdict(hook(shell(root, "python3 -c 'print(1)' production.env"),
                                policy_dir=root))
    assert verb == "halt"  # two halts: not a read, and an inline script
    script = f"{message} (inline script mentions 'production.env')"
    assert f"[BUILTIN-PROTECTED-PATHS-SCRIPT] {script}" in reason
    assert verdict(hook(shell(root, "ls src/"), policy_dir=root)) == ("allow", "")


def test_protected_paths_disabled_or_absent(hook: Any, root: PolicyRoot) -> None:
    """With the file installed but the builtin disabled, nothing is protected."""
    install(root, "protected_paths")
    root.add("gate.rego", rego_policy("cupcake.policies.gate", "", ["PreToolUse"], ["Bash"]))
    root.rulebook("builtins:\n  protected_paths: {enabled: false, paths: [secure.txt]}\n")
    assert verdict(hook(shell(root, "rm secure.txt"), policy_dir=root)) == ("allow", "")
    root.rulebook("builtins:\n  protected_paths: {enabled: true, paths: [secure.txt]}\n")
    assert verdict(hook(shell(root, "rm secure.txt"), policy_dir=root))[0] == "halt"


# --------------------------------------------------------------------------------------------
# 6. rulebook_security_guardrails


def test_rulebook_guardrails(hook: Any, root: PolicyRoot) -> None:
    """Any tool touching .cupcake/ (or .watchdog/) halts, reads included."""
    install(root, "rulebook_security_guardrails")
    root.rulebook("builtins:\n  rulebook_security_guardrails: {enabled: true}\n")
    message = "Cupcake configuration files are protected from modification"
    rulebook_file = project(root) / ".cupcake" / "rulebook.yml"
    assert verdict(hook(tool(root, "Read", file_path=".cupcake/rulebook.yml"),
                        policy_dir=root)) == (
        "halt", f"{message} (blocked file operation on {rulebook_file})")
    assert verdict(hook(tool(root, "Glob", pattern=".cupcake/**", path=str(project(root))),
                        policy_dir=root)) == (
        "halt", f"{message} (blocked file operation on .cupcake/**)")
    assert verdict(hook(tool(root, "Write", file_path=".watchdog/x.rego", content="x"),
                        policy_dir=root))[0] == "halt"
    assert verdict(hook(shell(root, "cat  .cupcake/rulebook.yml"), policy_dir=root)) == (
        "halt", f"{message} (detected .cupcake/ modification in bash command)")
    verb, reason = verdict(hook(shell(root, "ln -s .cupcake/policies p"), policy_dir=root))
    assert verb == "halt"
    assert "(symlink creation involving .cupcake is not permitted)" in reason
    assert verdict(hook(tool(root, "Read", file_path="README.md"), policy_dir=root)) == (
        "allow", "")
    assert verdict(hook(shell(root, "ls -la"), policy_dir=root)) == ("allow", "")


def test_rulebook_guardrails_configured_paths(hook: Any, root: PolicyRoot) -> None:
    install(root, "rulebook_security_guardrails")
    root.rulebook("""
        builtins:
          rulebook_security_guardrails:
            enabled: true
            message: policy files are off limits
            protected_paths: [policy-config/]
    """)
    assert verdict(hook(shell(root, "rm -r policy-config"), policy_dir=root)) == (
        "halt", "policy files are off limits (detected policy-config/ modification in bash "
                "command)")
    assert verdict(hook(shell(root, "cat .cupcake/x"), policy_dir=root))[0] == "halt"


# --------------------------------------------------------------------------------------------
# 7. git_block_no_verify (case 8)

NO_VERIFY = ("Git operations with --no-verify are not permitted. Commit hooks must run for code "
             "quality and security checks.")
HOOKS = "Disabling git hooks is not permitted. Hooks are required for code quality and security."


def test_case8_no_verify_with_spacing(hook: Any, root: PolicyRoot) -> None:
    """Case 8: --no-verify is denied however the command is spaced; plain commands pass."""
    install(root, "git_block_no_verify")
    root.rulebook("builtins:\n  git_block_no_verify:\n    enabled: true\n")
    for command in ["git  commit --no-verify -m 'test'", "git\tcommit --no-verify -m 'test'",
                    "git   commit   --no-verify   -m   'test'"]:
        assert verdict(hook(shell(root, command), policy_dir=root)) == ("deny", NO_VERIFY)
    for command in ["git commit -m 'test'", "git status", "git push"]:
        assert verdict(hook(shell(root, command), policy_dir=root)) == ("allow", ""), command


@pytest.mark.parametrize(("command", "expected"), [
    ("git commit -n -m x", NO_VERIFY),
    ("git commit -nm x", NO_VERIFY),
    ("git push origin main --no-verify", NO_VERIFY),
    ("git merge --no-verify feature", NO_VERIFY),
    ("git config core.hooksPath /dev/null", HOOKS),
    ("git -c core.hooksPath=/dev/null commit -m x", HOOKS),
    ("chmod 644 .git/hooks/pre-commit", HOOKS),
    ("chmod a-x .git/hooks/pre-push", HOOKS),
    ("rm -f .git/hooks/pre-commit", HOOKS),
    ("mv .git/hooks/pre-commit /tmp/", HOOKS),
    ("git commit -am 'x'", None),
    ("chmod +x .git/hooks/pre-commit", None),
    ("ls .git/hooks && npm run format", None),
    ("git config core.hooksPath .githooks", None),
])
def test_no_verify_variants(
    hook: Any, root: PolicyRoot, command: str, expected: str | None
) -> None:
    install(root, "git_block_no_verify")
    root.rulebook("builtins:\n  git_block_no_verify:\n    enabled: true\n")
    want = ("deny", expected) if expected else ("allow", "")
    assert verdict(hook(shell(root, command), policy_dir=root)) == want


def test_no_verify_message_and_exceptions(hook: Any, root: PolicyRoot) -> None:
    """A configured message replaces the reason; a command containing an exception passes."""
    install(root, "git_block_no_verify")
    root.rulebook("""
        builtins:
          git_block_no_verify:
            enabled: true
            message: Run the hooks.
            exceptions: ["-m 'wip'"]
    """)
    assert verdict(hook(shell(root, "git commit --no-verify -m 'x'"), policy_dir=root)) == (
        "deny", "Run the hooks.")
    assert verdict(hook(shell(root, "git commit --no-verify -m 'wip'"), policy_dir=root)) == (
        "allow", "")


def test_no_verify_disabled(hook: Any, root: PolicyRoot) -> None:
    install(root, "git_block_no_verify")
    root.add("gate.rego", rego_policy("cupcake.policies.gate", "", ["PreToolUse"], ["Bash"]))
    assert verdict(hook(shell(root, "git commit --no-verify"), policy_dir=root)) == ("allow", "")


# --------------------------------------------------------------------------------------------
# 8. claude_code_enforce_full_file_read, claude_code_always_inject_on_prompt


@pytest.mark.parametrize("key", ["claude_code_enforce_full_file_read", "enforce_full_file_read"])
def test_enforce_full_file_read(hook: Any, root: PolicyRoot, key: str) -> None:
    """A Read with offset or limit is denied (MEDIUM); a whole read passes."""
    install(root, "claude_code_enforce_full_file_read")
    root.rulebook(f"builtins:\n  {key}: {{enabled: true}}\n")
    reason = ("Please read the entire file first (files under 2000 lines must be read "
              "completely)")
    for extra in ({"offset": 10}, {"limit": 5}, {"offset": 1, "limit": 2}):
        event = tool(root, "Read", file_path="big.py", **extra)
        assert verdict(hook(event, policy_dir=root)) == ("deny", reason), extra
    assert verdict(hook(tool(root, "Read", file_path="big.py"), policy_dir=root)) == ("allow", "")
    assert verdict(hook(tool(root, "Grep", pattern="x", limit=3), policy_dir=root)) == (
        "allow", "")


def test_enforce_full_file_read_message(hook: Any, root: PolicyRoot) -> None:
    install(root, "claude_code_enforce_full_file_read")
    root.rulebook("builtins:\n  enforce_full_file_read: {enabled: true, message: Whole file!}\n")
    event = tool(root, "Read", file_path="a.py", offset=3)
    assert verdict(hook(event, policy_dir=root)) == ("deny", "Whole file!")


@pytest.mark.parametrize("key", ["claude_code_always_inject_on_prompt", "always_inject_on_prompt"])
def test_always_inject_static_contexts(hook: Any, root: PolicyRoot, key: str) -> None:
    """Static contexts are added to every prompt, joined by a blank line."""
    install(root, "claude_code_always_inject_on_prompt")
    root.rulebook(f"""
        builtins:
          {key}:
            enabled: true
            context: ["Run the tests.", {{command: "echo dynamic"}}, "Be brief."]
    """)
    run = hook(claude_event("UserPromptSubmit", prompt="hi"), policy_dir=root)
    assert verdict(run) == ("context", "Run the tests.\n\nBe brief.\n\ndynamic")
    assert verdict(hook(shell(root, "ls"), policy_dir=root)) == ("allow", "")


def test_always_inject_disabled(hook: Any, root: PolicyRoot) -> None:
    install(root, "claude_code_always_inject_on_prompt")
    root.rulebook("builtins:\n  always_inject_on_prompt: {context: [x]}\n")
    run = hook(claude_event("UserPromptSubmit", prompt="hi"), policy_dir=root)
    # nothing is injected; with every builtin off the root checks nothing, and says so
    assert set(run.json) == {"systemMessage"} and "holds no policy" in run.json["systemMessage"]


def test_always_inject_dynamic_contexts_in_index_order() -> None:
    """Signal values follow the static strings in index order; non-strings are JSON."""
    doc = {
        "hook_event_name": "UserPromptSubmit", "prompt": "hi",
        "builtin_config": {"claude_code_always_inject_on_prompt": {"static_contexts": ["S"]}},
        "signals": {"__builtin_prompt_context_10": "ten",
                    "__builtin_prompt_context_2": {"k": [1, "a"]},
                    "__builtin_prompt_context_x": "no", "git_branch": "main"},
    }
    out = rego_eval("claude_code_always_inject_on_prompt", doc)
    assert out["add_context"] == ['S\n\n{"k":[1,"a"]}\n\nten']
    doc["hook_event_name"] = "Stop"
    assert rego_eval("claude_code_always_inject_on_prompt", doc)["add_context"] == []


# --------------------------------------------------------------------------------------------
# 9. git_pre_check and post_edit_check (signal results)

FAILED = {"exit_code": 1, "output": "2 tests failed", "error": "", "success": False}
SILENT_FAIL = {"exit_code": 3, "output": "", "error": "boom", "success": False}


def git_doc(command: str, signals: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"hook_event_name": "PreToolUse", "tool_name": "Bash",
                           "tool_input": {"command": command}}
    if signals is not None:
        doc["signals"] = signals
    return doc


def test_git_pre_check_halts_on_failed_checks() -> None:
    """A failed __builtin_git_check_<i> halts commit/push/merge, listing failures in order."""
    signals = {"__builtin_git_check_0": "all good", "__builtin_git_check_1": FAILED,
               "__builtin_git_check_10": SILENT_FAIL, "__builtin_git_check_2": SILENT_FAIL}
    for command in ["git commit -m x", "git push origin main", "GIT MERGE feature"]:
        halts = rego_eval("git_pre_check", git_doc(command, signals))["halt"]
        assert halts == [{
            "rule_id": "BUILTIN-GIT-CHECK", "severity": "HIGH",
            "reason": "Git pre-checks failed:\n- 2 tests failed\n"
                      "- Check failed with exit code 3\n- Check failed with exit code 3",
        }], command


@pytest.mark.parametrize(("command", "signals"), [
    ("git status", {"__builtin_git_check_0": FAILED}),
    ("git commit -m x", {"__builtin_git_check_0": "ok", "__builtin_git_check_1": {"k": 1}}),
    ("git commit -m x", {}),
    ("git commit -m x", None),
    ("git commit -m x", {"other_signal": FAILED}),
])
def test_git_pre_check_passes(command: str, signals: dict[str, Any] | None) -> None:
    assert rego_eval("git_pre_check", git_doc(command, signals))["halt"] == []


def edit_doc(path: str, signals: dict[str, Any] | None, name: str = "Edit") -> dict[str, Any]:
    doc: dict[str, Any] = {"hook_event_name": "PostToolUse", "tool_name": name,
                           "tool_input": {"file_path": path}, "tool_response": {}}
    if signals is not None:
        doc["signals"] = signals
    return doc


@pytest.mark.parametrize("name", ["Edit", "Write", "MultiEdit", "NotebookEdit"])
def test_post_edit_check_asks_on_failure(name: str) -> None:
    out = rego_eval("post_edit_check",
                    edit_doc("/p/a.b/app.py", {"__builtin_post_edit_py": FAILED}, name))
    assert out["ask"] == [{
        "rule_id": "BUILTIN-POST-EDIT", "severity": "MEDIUM",
        "reason": "File validation failed for /p/a.b/app.py\n2 tests failed\n\n"
                  "Do you want to continue anyway?",
    }]
    assert out["add_context"] == []


def test_post_edit_check_failure_without_output() -> None:
    out = rego_eval("post_edit_check", edit_doc("x.rs", {"__builtin_post_edit_rs": SILENT_FAIL}))
    assert out["ask"][0]["reason"] == (
        "File validation failed for x.rs\nValidation failed with exit code 3\n\n"
        "Do you want to continue anyway?")


@pytest.mark.parametrize("result", ["ok", {"issues": []}, None])
def test_post_edit_check_context_on_success(result: Any) -> None:
    out = rego_eval("post_edit_check", edit_doc("app.py", {"__builtin_post_edit_py": result}))
    assert out["ask"] == []
    assert out["add_context"] == ["✓ Validation passed for app.py"]


@pytest.mark.parametrize(("path", "signals", "name"), [
    ("app.py", {"__builtin_post_edit_rs": FAILED}, "Edit"),
    ("app.py", None, "Edit"),
    ("Makefile", {"__builtin_post_edit_": FAILED}, "Edit"),
    ("app.py", {"__builtin_post_edit_py": FAILED}, "Read"),
])
def test_post_edit_check_silent(path: str, signals: dict[str, Any] | None, name: str) -> None:
    """No check for this extension (or no signal, or not an edit): no ask, no context."""
    out = rego_eval("post_edit_check", edit_doc(path, signals, name))
    assert out["ask"] == [] and out["add_context"] == []


# --------------------------------------------------------------------------------------------
# 10. global builtins from ~/.config/cupcake/policies/claude/builtins/


def global_builtin(env: dict[str, str], name: str, conf: str, kind: str = "cupcake") -> None:
    glob = global_root(env, kind)
    install(glob, name, GLOBAL_BUILTINS)
    glob.rulebook(f"builtins:\n  {name}: {conf}\n")


@pytest.mark.parametrize("kind", ["cupcake", "watchdog"])
def test_system_protection(hook: Any, env: dict[str, str], root: PolicyRoot, kind: str) -> None:
    """Critical system paths halt (CRITICAL), by any file tool or in a Bash command."""
    global_builtin(env, "system_protection", "{enabled: true}", kind)
    assert verdict(hook(tool(root, "Read", file_path="/etc/passwd"), policy_dir=root)) == (
        "halt", "Access to critical system path blocked: /etc/passwd")
    assert verdict(hook(tool(root, "Edit", file_path="/home/u/.ssh/config", old_string="a",
                             new_string="b"), policy_dir=root))[0] == "halt"
    assert verdict(hook(shell(root, "cat /etc/hosts"), policy_dir=root)) == (
        "halt", "Command blocked - references critical system paths")
    assert verdict(hook(shell(root, "sudo rm x"), policy_dir=root))[0] == "halt"
    for command in ["ls 2>/dev/null", "cat src/lib/x.py", "echo pseudo code"]:
        assert verdict(hook(shell(root, command), policy_dir=root)) == ("allow", ""), command
    assert verdict(hook(tool(root, "Read", file_path="src/lib/a.py"), policy_dir=root)) == (
        "allow", "")


def test_system_protection_additional_paths(
    hook: Any, env: dict[str, str], root: PolicyRoot
) -> None:
    global_builtin(env, "system_protection",
                   "{enabled: true, message: Hands off, additional_paths: [/opt/corp/]}")
    assert verdict(hook(tool(root, "Write", file_path="/opt/corp/a", content="x"),
                        policy_dir=root)) == ("halt", "Hands off: /opt/corp/a")
    assert verdict(hook(shell(root, "ls /opt/corp/"), policy_dir=root)) == (
        "halt", "Hands off (the command references a critical system path)")


def test_sensitive_data_protection(hook: Any, env: dict[str, str], root: PolicyRoot) -> None:
    """Reading credentials is denied with a masked file name; ordinary files pass."""
    global_builtin(env, "sensitive_data_protection", "{enabled: true}")
    assert verdict(hook(tool(root, "Read", file_path=".env"), policy_dir=root)) == (
        "deny", "Blocked access to potentially sensitive file: [REDACTED-ENV-FILE]")
    assert verdict(hook(tool(root, "Read", file_path="certs/server.pem"), policy_dir=root)) == (
        "deny", "Blocked access to potentially sensitive file: [SENSITIVE-FILE: *.pem]")
    assert verdict(hook(tool(root, "Glob", pattern="**/*secret*"), policy_dir=root)) == (
        "deny", "Blocked search pattern that could discover sensitive files")
    assert verdict(hook(shell(root, "cat ~/.aws/credentials"), policy_dir=root)) == (
        "deny", "Command blocked - attempts to access sensitive data")
    for path in ["README.md", "src/tokenizer.py", "oauth.py"]:
        assert verdict(hook(tool(root, "Read", file_path=path), policy_dir=root)) == (
            "allow", ""), path
    assert verdict(hook(shell(root, "git commit -m 'details'"), policy_dir=root)) == ("allow", "")


def test_sensitive_data_additional_patterns(
    hook: Any, env: dict[str, str], root: PolicyRoot
) -> None:
    global_builtin(env, "sensitive_data_protection",
                   "{enabled: true, message: No PII, additional_patterns: [customers]}")
    assert verdict(hook(tool(root, "Read", file_path="data/customers.csv"), policy_dir=root)) == (
        "deny", "No PII ([SENSITIVE-FILE: *.csv])")


def test_cupcake_exec_protection(hook: Any, env: dict[str, str], root: PolicyRoot) -> None:
    """Running the policy engine halts; merely mentioning it does not."""
    global_builtin(env, "cupcake_exec_protection", "{enabled: true, allowed_commands: [version]}")
    reason = "Direct execution of Cupcake binary is not permitted"
    for command in ["cupcake eval --harness claude", "ls && ./target/release/cupcake init",
                    "x=$(cupcake inspect)", "watchdog eval --harness claude",
                    "python3 -m watchdog verify", "cargo install cupcake",
                    "cupcake version && cupcake init"]:
        assert verdict(hook(shell(root, command), policy_dir=root)) == ("halt", reason), command
    for command in ["echo 'cupcake recipes'", "git commit -m 'fix cupcake bug'",
                    "pip install watchdog", "cupcake --version"]:
        assert verdict(hook(shell(root, command), policy_dir=root)) == ("allow", ""), command


def test_global_builtin_disabled(hook: Any, env: dict[str, str], root: PolicyRoot) -> None:
    """A global builtin file without `enabled: true` in the global rulebook is not loaded."""
    global_builtin(env, "system_protection", "{additional_paths: [/x/]}")
    global_root(env).add("gate.rego", rego_policy("cupcake.policies.gate", "", ["PreToolUse"]))
    assert verdict(hook(tool(root, "Read", file_path="/etc/passwd"), policy_dir=root)) == (
        "allow", "")


def test_cupcake_style_global_package_routes(
    hook: Any, env: dict[str, str], root: PolicyRoot
) -> None:
    """Cupcake ships global builtins as `package cupcake.global.policies.builtins.*`: they
    route and decide as well."""
    glob = global_root(env)
    source = (GLOBAL_BUILTINS / "system_protection.rego").read_text().replace(
        "package cupcake.policies.builtins", "package cupcake.global.policies.builtins")
    glob.add("builtins/system_protection.rego", source)
    glob.rulebook("builtins:\n  system_protection: {enabled: true}\n")
    assert verdict(hook(tool(root, "Read", file_path="/etc/shadow"), policy_dir=root)) == (
        "halt", "Access to critical system path blocked: /etc/shadow")
