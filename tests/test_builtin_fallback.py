"""A builtin enabled in `rulebook.yml` whose Rego the root lacks comes from the shipped pack.

Cupcake's docs promise that enabling a builtin in the rulebook is enough; a root made by hand
(or by an older `init`) has no `policies/<harness>/builtins/` copy, and without this the
builtin would silently do nothing. `verify` says which copy each enabled builtin uses.
"""

from __future__ import annotations

from typing import Any

from conftest import PolicyRoot, bash, run_cli

RULEBOOK = "builtins:\n  git_block_no_verify:\n    enabled: true\n"


def _deny_reason(out: object) -> str | None:
    assert isinstance(out, dict)
    hso = out.get("hookSpecificOutput") or {}
    return hso.get("permissionDecisionReason") if hso.get("permissionDecision") == "deny" \
        else None


def test_enabled_builtin_without_rego_uses_the_shipped_copy(env: dict[str, str], hook: Any,
                                                             root: PolicyRoot) -> None:
    root.rulebook(RULEBOOK)
    (root.path / "policies" / "claude").mkdir(parents=True, exist_ok=True)
    event = bash("git commit --no-verify -m wip", cwd=str(root.path.parent))
    reason = _deny_reason(hook(event, root).json)
    assert reason is not None and "--no-verify" in reason
    verify = run_cli(["verify", "--policy-dir", str(root.path)], env, b"")
    assert verify.code == 0, verify.stdout + verify.stderr
    assert "builtin git_block_no_verify (project): the shipped copy" in verify.stdout


def test_the_roots_own_copy_wins(env: dict[str, str], hook: Any, root: PolicyRoot) -> None:
    """A root that has the builtin's file uses it (here edited to say something else)."""
    root.rulebook(RULEBOOK)
    own = root.path / "policies" / "claude" / "builtins" / "git_block_no_verify.rego"
    own.parent.mkdir(parents=True)
    own.write_text(
        "# METADATA\n# scope: package\n# custom:\n#   routing:\n"
        '#     required_events: ["PreToolUse"]\n#     required_tools: ["Bash"]\n'
        "package cupcake.policies.builtins.git_block_no_verify\n\nimport rego.v1\n\n"
        'deny contains {"rule_id": "MINE", "reason": "my own copy", "severity": "HIGH"} if {\n'
        '\tcontains(input.tool_input.command, "--no-verify")\n}\n')
    event = bash("git commit --no-verify -m wip", cwd=str(root.path.parent))
    assert _deny_reason(hook(event, root).json) == "my own copy"
    verify = run_cli(["verify", "--policy-dir", str(root.path)], env, b"")
    assert "builtin git_block_no_verify (project): the root's copy" in verify.stdout
