"""The compiled-bundle cache: compile once, reuse while nothing changed, heal when damaged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import PolicyRoot, bash, rego_policy, run_cli
from watchdog.policies import layout


def deny_policy(word: str, rule_id: str = "W") -> str:
    return rego_policy(
        "cupcake.policies.words",
        f"""
        deny contains {{"rule_id": "{rule_id}", "reason": "no {word}", "severity": "HIGH"}} if {{
            contains(input.tool_input.command, "{word}")
        }}
        """,
        events=["PreToolUse"], tools=["Bash"],
    )


def explain(env: dict[str, str], root: PolicyRoot, command: str) -> tuple[dict, str]:
    run = run_cli(["eval", "--harness", "claude", "--policy-dir", str(root.path), "--explain"],
                  env, json.dumps(bash(command)))
    return run.json, run.stderr


def cache(env: dict[str, str]) -> Path:
    return Path(env["XDG_CACHE_HOME"]) / "watchdog"


def test_compiles_once_then_reuses(env, root: PolicyRoot) -> None:
    """The first event compiles; later events load the cached bundle without compiling."""
    root.add("words.rego", deny_policy("rm"))
    out, trace = explain(env, root, "rm x")
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "bundle: compiled" in trace
    manifest = next((cache(env) / "manifests").glob("*.json"))
    stamp = manifest.stat().st_mtime_ns
    out, trace = explain(env, root, "rm y")
    assert "bundle: cached" in trace
    assert manifest.stat().st_mtime_ns == stamp
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_edit_and_new_file_trigger_a_rebuild(env, root: PolicyRoot) -> None:
    """Changing a policy or adding one is picked up on the next event."""
    path = root.add("words.rego", deny_policy("rm"))
    assert explain(env, root, "curl x")[0] == {}
    path.write_text(deny_policy("curl"))
    out, trace = explain(env, root, "curl x")
    assert "bundle: compiled" in trace and out["hookSpecificOutput"]["permissionDecision"] == "deny"
    root.add("more.rego", deny_policy("wget", "W2").replace("policies.words", "policies.more"))
    out, trace = explain(env, root, "wget x")
    assert "bundle: compiled" in trace and out["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_corrupt_manifest_is_rebuilt(env, root: PolicyRoot) -> None:
    root.add("words.rego", deny_policy("rm"))
    explain(env, root, "ls")
    manifest = next((cache(env) / "manifests").glob("*.json"))
    manifest.write_text("{ truncated")
    out, trace = explain(env, root, "rm x")
    assert "bundle: compiled" in trace
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    json.loads(manifest.read_text())


def test_corrupt_bundle_is_rebuilt_not_loaded(env, root: PolicyRoot) -> None:
    """rego-cpp crashes on damaged bundles, so the CRC is checked and the bundle rebuilt."""
    root.add("words.rego", deny_policy("rm"))
    explain(env, root, "ls")
    bundle = next((cache(env) / "bundles").glob("*.rbb"))
    data = bundle.read_bytes()
    bundle.write_bytes(data[: len(data) // 2])
    out, trace = explain(env, root, "rm x")
    assert "damaged" in trace
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert bundle.read_bytes() == data


def test_concurrent_cold_hooks_agree(env, root: PolicyRoot) -> None:
    """Many hooks compiling the same bundle at once all answer right and leave a valid cache."""
    root.add("words.rego", deny_policy("rm"))
    cmd = [sys.executable, "-m", "watchdog", "hook", "--policy-dir", str(root.path)]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env) for _ in range(8)]
    outs = [p.communicate(json.dumps(bash("rm -rf x")).encode(), timeout=60) for p in procs]
    for out, err in outs:
        assert json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "deny", err
    assert not list((cache(env) / "bundles").glob("*.tmp"))
    out, trace = explain(env, root, "rm y")
    assert "bundle: cached" in trace


def test_compiler_crash_is_reported_and_cached(
    root: PolicyRoot, tmp_path: Path, monkeypatch
) -> None:
    """A builder that dies on a signal (rego-cpp segfaults on some input) is a clear
    PolicyCompileError, cached under the same fingerprint so it costs one crash, not one per event.
    """
    from watchdog.errors import PolicyCompileError
    from watchdog.policies import bundle

    root.add("ok.rego", deny_policy("rm"))
    crasher = tmp_path / "crashing-python"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(0o755)
    roots = [layout.resolve_policy_dir(str(root.path), "claude")]
    monkeypatch.setattr(sys, "executable", str(crasher))
    try:
        bundle.run_builder("claude", roots, None)
    except PolicyCompileError as exc:
        assert "crashed (signal 11)" in str(exc) and "watchdog verify" in str(exc)
    else:
        raise AssertionError("no PolicyCompileError")
    loaded = bundle.load("claude", roots, str(tmp_path / "cache"))
    assert "crashed" in loaded.manifest["error"]["message"]
    again = bundle.load("claude", roots, str(tmp_path / "cache"))
    assert not again.rebuilt and again.manifest["error"] == loaded.manifest["error"]


def test_policy_rego_cannot_build_is_located_by_verify(env, root: PolicyRoot) -> None:
    """A policy rego-cpp rejects without a location: the hook leaves that file out (and says
    so), the other policies still decide, and verify names the file."""
    root.add("ok.rego", deny_policy("rm"))
    bad = root.add("cycle.rego", rego_policy(
        "cupcake.policies.cycle", "f(x) := 1\nf(x, y) := 2\ndeny contains f(1) if false",
        events=["PreToolUse"]))
    run = run_cli(["hook", "--policy-dir", str(root.path)], env, json.dumps(bash("rm x")))
    assert run.json["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "cycle.rego does not compile and is left out" in run.json["systemMessage"]
    check = run_cli(["verify", "--policy-dir", str(root.path)], env)
    assert check.code == 1
    assert f"{bad}:1: " in check.stdout


def test_fingerprint_covers_version_and_files(root: PolicyRoot, monkeypatch) -> None:
    """The cache key changes with the package version and with any file's size or mtime."""
    root.add("words.rego", deny_policy("rm"))
    roots = [layout.resolve_policy_dir(str(root.path), "claude")]
    before = layout.fingerprint("claude", roots, layout.list_files(roots))
    monkeypatch.setattr(layout, "__version__", "999")
    assert layout.fingerprint("claude", roots, layout.list_files(roots)) != before
    monkeypatch.undo()
    root.rulebook("builtins: {}\n")
    assert layout.fingerprint("claude", roots, layout.list_files(roots)) != before
