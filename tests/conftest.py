"""Shared fixtures: an isolated user environment, policy roots on disk, and the hook as the
user runs it (a subprocess with real stdin and stdout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "reference" / "claude-hook-samples"
EVALUATE_REGO = REPO / "tests" / "fixtures" / "cupcake_evaluate.rego"


def isolated_env(home: Path) -> dict[str, str]:
    """Environment for subprocesses: HOME and XDG dirs under `home`, no WATCHDOG_* leaks."""
    home.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "XDG_"))}
    base.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        # Cupcake's exact reason text: the compatibility tests compare answers byte for byte.
        # The default (rule ids appended) is tested in tests/test_rule_ids.py.
        WATCHDOG_RULE_IDS="0",
    )
    return base


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An isolated user environment (see isolated_env)."""
    yield isolated_env(tmp_path / "home")


def rego_policy(
    package: str,
    body: str,
    events: list[str] | None = None,
    tools: list[str] | None = None,
    signals: list[str] | None = None,
) -> str:
    """A policy file with Cupcake's METADATA routing block (omitted when events is None)."""
    lines = []
    if events is not None:
        lines += ["# METADATA", "# scope: package", "# custom:", "#   routing:"]
        lines.append(f"#     required_events: {json.dumps(events)}")
        if tools is not None:
            lines.append(f"#     required_tools: {json.dumps(tools)}")
        if signals is not None:
            lines.append(f"#     required_signals: {json.dumps(signals)}")
    lines += [f"package {package}", "", "import rego.v1", "", textwrap.dedent(body).strip(), ""]
    return "\n".join(lines)


class PolicyRoot:
    """A Cupcake-layout root (`<path>/policies/claude/...`) written file by file."""

    def __init__(self, path: Path, harness: str = "claude") -> None:
        self.path = path
        self.harness = harness
        (path / "policies" / harness).mkdir(parents=True, exist_ok=True)

    def add(self, name: str, text: str) -> Path:
        target = self.path / "policies" / self.harness / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def add_system(self, name: str, text: str) -> Path:
        target = self.path / "system" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def rulebook(self, text: str) -> Path:
        target = self.path / "rulebook.yml"
        target.write_text(textwrap.dedent(text))
        return target


@pytest.fixture
def root(tmp_path: Path) -> PolicyRoot:
    return PolicyRoot(tmp_path / "project" / ".cupcake")


class HookRun:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.proc = proc
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None

    @property
    def hso(self) -> dict[str, Any]:
        out: dict[str, Any] = (self.json or {}).get("hookSpecificOutput", {})
        return out


def run_cli(
    args: list[str], env: dict[str, str], stdin: str | bytes = "", cwd: Path | None = None,
    timeout: float = 60,
) -> HookRun:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        [sys.executable, "-m", "watchdog", *args],
        input=data, capture_output=True, env=env, cwd=cwd, timeout=timeout,
    )
    completed = subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )
    run = HookRun(completed)
    assert "Traceback" not in run.stderr, run.stderr
    return run


@pytest.fixture
def hook(env: dict[str, str]) -> Any:
    """hook(event_or_bytes, policy_dir=..., extra_env=...) -> HookRun, via `watchdog hook`."""

    def call(
        event: Any, policy_dir: Path | PolicyRoot | None = None,
        extra_env: dict[str, str] | None = None, args: list[str] | None = None,
        cwd: Path | None = None,
    ) -> HookRun:
        cmd = ["hook", "--harness", "claude", *(args or [])]
        if policy_dir is not None:
            path = policy_dir.path if isinstance(policy_dir, PolicyRoot) else policy_dir
            cmd += ["--policy-dir", str(path)]
        stdin = event if isinstance(event, (str, bytes)) else json.dumps(event)
        return run_cli(cmd, {**env, **(extra_env or {})}, stdin, cwd=cwd)

    return call


def claude_event(name: str = "PreToolUse", **fields: Any) -> dict[str, Any]:
    """A Claude Code payload with the common fields filled in."""
    event: dict[str, Any] = {
        "session_id": "00893aaf-19fa-41d2-8238-13269b9b3ca0",
        "transcript_path": "/home/u/.claude/projects/-home-u-app/00893aaf.jsonl",
        "cwd": "/tmp",
        "permission_mode": "default",
        "hook_event_name": name,
    }
    event.update(fields)
    return event


def bash(command: str, **fields: Any) -> dict[str, Any]:
    return claude_event(
        "PreToolUse", tool_name="Bash", tool_input={"command": command}, tool_use_id="toolu_1",
        **fields,
    )


def close_asyncio_loop() -> None:
    """litellm's synchronous calls make asyncio install an event loop in the main thread and
    never close it (a ResourceWarning at exit); the judge tests call this once they are done."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:  # none installed, or already closed by another module
            return
    loop.close()
    asyncio.set_event_loop(None)
