"""End to end: the real OpenCode CLI, a scripted fake model, and watchdog's OpenCode plugin.

Why: OpenCode has no command hooks; watchdog reaches it through `watchdog.js`, an in-process
plugin whose effect (a throw blocks the tool, an in-place change of `output.args` rewrites it,
the tool's output carries context back) only the shipped binary can confirm. This test runs
`opencode run` (npm `opencode-ai`, pinned) offline through the rig in
`../shared/tools/opencode-e2e/` (a fake OpenAI-compatible model on 127.0.0.1, a throwaway HOME
and project), with the plugin as `watchdog init` writes it. The model asks for:
1. `rm -rf <canary>/../canary`: the default pack denies it (WD-DELETE-VITAL, a path that climbs
   with `..`). Should the plugin fail, the command deletes only a folder of this test.
2. `touch rewrite-me.txt`: a Cupcake-style policy in `opencode/` rewrites it to
   `touch rewritten.txt`, and its reason comes back in the tool's output.
3. `touch allowed.txt`: a control that must run.
The test skips when the rig, npm or the CLI is not available.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from watchdog.harnesses import opencode

REPO_ROOT = Path(__file__).resolve().parents[2]
RIG_DIR = REPO_ROOT.parent / "shared" / "tools" / "opencode-e2e"
OPENCODE_VERSION = "1.18.33"
INSTALL_TIMEOUT_S = 300.0
RUN_TIMEOUT_S = 120.0

MODIFY_REASON = "E2E: renamed the marker"
MODIFY_POLICY = f"""\
# METADATA
# scope: package
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash"]
package cupcake.policies.e2e_rename

import rego.v1

modify contains decision if {{
\tinput.tool == "bash"
\tinput.tool_input.command == "touch rewrite-me.txt"
\tdecision := {{
\t\t"rule_id": "E2E-RENAME",
\t\t"reason": "{MODIFY_REASON}",
\t\t"severity": "LOW",
\t\t"updated_input": {{"command": "touch rewritten.txt"}},
\t}}
}}
"""


def cache_prefix() -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/watchdog-tests/opencode-e2e/opencode-<version>` (the rig's
    layout, so `OPENCODE_E2E_CACHE` pointed at its parent reuses it)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "watchdog-tests" / "opencode-e2e" / f"opencode-{OPENCODE_VERSION}"


def _runs(binary: Path) -> bool:
    """`--version` works and is the pinned one (in a throwaway HOME: it creates data dirs)."""
    with tempfile.TemporaryDirectory() as probe:
        env = {**os.environ, "HOME": probe, "XDG_CONFIG_HOME": f"{probe}/c",
               "XDG_DATA_HOME": f"{probe}/d", "XDG_CACHE_HOME": f"{probe}/k",
               "XDG_STATE_HOME": f"{probe}/s", "TMPDIR": probe,
               "OPENCODE_DISABLE_AUTOUPDATE": "1"}
        try:
            out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                                 timeout=60, env=env, stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
    return out.returncode == 0 and out.stdout.strip() == OPENCODE_VERSION


def _installed(prefix: Path) -> Path | None:
    # The native binary of the platform package npm picked (x64, x64-baseline, arm64, ...).
    for cand in sorted((prefix / "node_modules").glob("opencode-*/bin/opencode")):
        if cand.is_file() and _runs(cand):
            return cand
    return None


def ensure_opencode() -> tuple[Path | None, str]:
    """`(binary, "")`, installing `opencode-ai` with npm on first use, or `(None, why not)`."""
    prefix = cache_prefix()
    found = _installed(prefix)
    if found:
        return found, ""
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm is not on PATH, so the OpenCode CLI cannot be installed"
    try:
        prefix.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return None, f"cannot create the CLI cache folder {prefix}: {exc}"
    with (prefix.parent / f"{prefix.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel workers share the cache
        found = _installed(prefix)
        if found:
            return found, ""
        manifest = prefix / "package.json"
        if not manifest.exists():  # else npm walks up and installs into a parent project
            manifest.write_text(json.dumps({"name": "watchdog-e2e-opencode", "private": True}))
        try:
            proc = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", f"opencode-ai@{OPENCODE_VERSION}"],
                cwd=prefix, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            return None, f"npm install opencode-ai timed out after {INSTALL_TIMEOUT_S}s"
        except OSError as exc:
            return None, f"npm could not be run: {exc}"
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            return None, f"npm install opencode-ai@{OPENCODE_VERSION} failed:\n{tail}"
        found = _installed(prefix)
        if found:
            return found, ""
        return None, (f"npm installed opencode-ai@{OPENCODE_VERSION} into {prefix}, but no "
                      "working binary is under node_modules/opencode-*/bin/opencode")


def load_rig() -> ModuleType:
    spec = importlib.util.spec_from_file_location("opencode_e2e_rig", RIG_DIR / "rig.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def opencode_bin() -> Path:
    if not (RIG_DIR / "rig.py").is_file():
        pytest.skip(f"the OpenCode rig is not at {RIG_DIR}")
    binary, why = ensure_opencode()
    if binary is None:
        pytest.skip(f"OpenCode CLI {OPENCODE_VERSION} unavailable: {why}")
    return binary


def tool_messages(run: Any, turn: int) -> list[str]:
    """The tool results OpenCode sent the model in the request for `turn`."""
    out = []
    for request in run.model_requests():
        if request.get("thread") != "side" and request.get("turn") == turn:
            out += [str(m.get("content")) for m in request["body"].get("messages", [])
                    if m.get("role") == "tool"]
    return out


def diagnostics(run: Any, seconds: float) -> str:
    lines = [f"opencode run in {seconds:.1f}s, meta: {json.dumps(run.meta())}",
             f"project files: {sorted(p.name for p in run.project.iterdir())}"]
    for request in run.model_requests():
        messages = request["body"].get("messages", [])
        lines.append(f"turn {request.get('turn')} ({request.get('thread')}): "
                     f"{json.dumps(messages[-2:])[:1500]}")
    for name in ("opencode.stderr.txt", "server.stderr.txt"):
        path = run.dir / name
        if path.exists():
            text = path.read_text(errors="replace")
            lines.append(f"{name} (tail):\n{text[-4000:]}")
    return "\n".join(lines)


@pytest.mark.e2e
# The rig leaves its fake server's stderr file for the garbage collector to close.
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in.*server\.stderr\.txt:pytest.PytestUnraisableExceptionWarning")
def test_opencode_plugin_denies_rewrites_and_allows(opencode_bin: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("WATCHDOG_")]:
        monkeypatch.delenv(key)  # the hook inherits OpenCode's environment
    monkeypatch.setenv("OPENCODE_E2E_CACHE", str(cache_prefix().parent))
    rig = load_rig()

    canary = tmp_path / "canary"
    (canary / "keep").mkdir(parents=True)
    policy_root = tmp_path / "policy-root"
    shutil.copytree(REPO_ROOT / "policies" / "common", policy_root / "common")
    (policy_root / "opencode").mkdir()
    (policy_root / "opencode" / "e2e_rename.rego").write_text(MODIFY_POLICY)
    command = (f"{shlex.quote(sys.executable)} -m watchdog hook --harness opencode "
               f"--policy-dir {shlex.quote(str(policy_root))}")
    plugin = opencode.files(command)[opencode.PLUGIN_FILE]
    denied = f"rm -rf {canary}/../{canary.name}"
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"turns": [
        {"tool_call": {"name": "bash", "arguments": {"command": denied}}},
        {"tool_call": {"name": "bash", "arguments": {"command": "touch rewrite-me.txt"}}},
        {"tool_call": {"name": "bash", "arguments": {"command": "touch allowed.txt"}}},
        {"text": "done"},
    ]}))

    started = time.monotonic()
    run = rig.run_opencode(
        script=script, out_dir=tmp_path / "run", capture=False, opencode=str(opencode_bin),
        extra_plugins={Path(opencode.PLUGIN_FILE).name: plugin}, export=False,
        env_extra={"PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)},
        wall_timeout=RUN_TIMEOUT_S)
    seconds = time.monotonic() - started
    why = diagnostics(run, seconds)
    meta = run.meta()

    assert meta.get("exit") == 0, why
    # 1. The deny stopped the command, and the model read the policy's reason as the result.
    assert (canary / "keep").is_dir(), f"the denied rm ran\n{why}"
    results = tool_messages(run, 1)
    assert len(results) == 1, why
    assert results[0].startswith(f"Recursively deleting {canary}/../canary would wipe"), why
    assert results[0].endswith("[WD-DELETE-VITAL]"), why
    # 2. The rewrite ran instead of the original, and its reason came back with the output.
    assert (run.project / "rewritten.txt").exists(), f"the rewrite did not run\n{why}"
    assert not (run.project / "rewrite-me.txt").exists(), f"the original ran\n{why}"
    assert any(f"[watchdog] {MODIFY_REASON}" in m for m in tool_messages(run, 2)), why
    # 3. The control ran, and the plugin never failed open on the way.
    assert (run.project / "allowed.txt").exists(), f"the allowed call did not run\n{why}"
    stderr = (run.dir / "opencode.stderr.txt").read_text(errors="replace")
    assert "[watchdog] could not check" not in stderr, why
