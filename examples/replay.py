"""Replay example hook events through `watchdog hook` and print each decision.

Each event file is fed to the real hook command in its own process, exactly as Claude Code
runs it (JSON on stdin, the response on stdout), with the user dirs (cache, state, config)
pointed at a temporary folder so the demo leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def describe(event: dict[str, Any]) -> str:
    name = event.get("hook_event_name", "?")
    tool = event.get("tool_name")
    tin = event.get("tool_input") or {}
    detail = tin.get("command") or tin.get("file_path") or event.get("prompt") or ""
    label = f"{name}:{tool}" if tool else name
    return f"{label:<18} {str(detail)[:48]:<48}"


def verdict(response: dict[str, Any]) -> str:
    hso = response.get("hookSpecificOutput", {})
    if response.get("continue") is False:
        return f"HALT   {response.get('stopReason', '')}"
    if "permissionDecision" in hso:
        return f"{hso['permissionDecision'].upper():<6} {hso.get('permissionDecisionReason', '')}"
    if response.get("decision") == "block":
        return f"BLOCK  {response.get('reason', '')}"
    if "updatedInput" in hso:
        return f"MODIFY {json.dumps(hso['updatedInput'])}"
    if "additionalContext" in hso:
        return f"allow  + context: {hso['additionalContext']}"
    if "systemMessage" in response:
        return f"WARN   {response['systemMessage']}"
    return "allow"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", nargs="+", help="event .json files or folders of them")
    parser.add_argument("--policy-dir", required=True)
    parser.add_argument("--harness", default="claude")
    args = parser.parse_args()
    files: list[Path] = []
    for item in map(Path, args.events):
        files += sorted(item.glob("*.json")) if item.is_dir() else [item]
    exe = shutil.which("watchdog") or str(Path(sys.executable).with_name("watchdog"))
    tmp = tempfile.mkdtemp(prefix="watchdog-demo-")
    env = dict(os.environ, XDG_CACHE_HOME=f"{tmp}/cache", XDG_STATE_HOME=f"{tmp}/state",
               XDG_CONFIG_HOME=f"{tmp}/config")
    failures = 0
    try:
        for path in files:
            event = json.loads(path.read_text())
            started = time.perf_counter()
            proc = subprocess.run(
                [exe, "hook", "--harness", args.harness, "--policy-dir", args.policy_dir],
                input=path.read_bytes(), capture_output=True, env=env, timeout=60,
            )
            ms = (time.perf_counter() - started) * 1000
            try:
                response = json.loads(proc.stdout) if proc.stdout.strip() else {}
                shown = verdict(response)
            except ValueError:
                shown, failures = f"INVALID OUTPUT {proc.stdout[:80]!r}", failures + 1
            if proc.returncode != 0:
                failures += 1
                shown += f"  (exit {proc.returncode}: {proc.stderr.decode().strip()[:120]})"
            print(f"{describe(event)} {ms:5.0f} ms -> {shown}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{len(files)} events replayed through '{exe} hook --harness {args.harness}'; "
          "the first call compiles the policies, later calls reuse the cached bundle.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
