"""`init`'s smoke check: run the hook command it wrote once, as the agent will, and judge it.

A hook that cannot start (`watchdog: not found`, exit 127) is a non-blocking error to most
agents, so every tool call would run unchecked without a word; this check makes `init` fail
loudly instead. The sample event and what counts as a deny come from the harness's `Setup`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from watchdog.harnesses import claude_setup
from watchdog.harnesses.base import Setup
from watchdog.harnesses.claude_setup import CHECK_COMMAND

TIMEOUT_S = 30
INSTALL_HINT = ("install watchdog so that it is on PATH for every shell "
                "('uv tool install /path/to/watchdog' or 'pipx install /path/to/watchdog'), "
                "or pass --command with the absolute path of a working watchdog")


@dataclass(frozen=True)
class Check:
    """What the configured hook command did with the sample event."""

    ok: bool
    ms: float
    result: str = ""  # what went wrong, in a few words
    advice: str = ""  # what to do about it
    stderr: str = ""
    answered: bool = False  # a JSON answer, only not the expected one
    skipped: bool = False  # the harness gives no sample event to check with


def check_hook(command: str, root: Path, env: dict[str, str], setup: Setup | None = None,
               timeout_s: float = TIMEOUT_S, agent: str = "Claude Code") -> Check:
    """Run `command` as the agent does (`/bin/sh -c`, event JSON on stdin, cwd the project)
    and judge its answer: a deny of `rm -rf ~` shows it started, read the event and loaded
    the project's policies, within the timeout written beside it."""
    setup = setup or claude_setup.SETUP
    if setup.sample is None or setup.denied is None:
        return Check(True, 0.0, "not checked", skipped=True)
    start = time.perf_counter()
    # A session of its own, so a timeout can kill the shell and the hook it started together.
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root,
                                env=env, text=True, errors="replace", start_new_session=True)
    except OSError as exc:
        return Check(False, 0.0, f"/bin/sh did not start ({exc.strerror})",
                     "run the command by hand in the project", "")
    try:
        out, err = proc.communicate(json.dumps(setup.sample(root)), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Check(False, timeout_s * 1000, f"no answer within {timeout_s:g} s (killed)",
                     "run 'watchdog verify' in the project, and the command by hand to see "
                     "where it hangs", err)
    ms = (time.perf_counter() - start) * 1000
    if setup.denied(out, proc.returncode):
        return Check(True, ms, stderr=err)
    if proc.returncode != 0:
        advice = (INSTALL_HINT if proc.returncode in (126, 127) else
                  "run the command by hand with an event on stdin to see the error, and "
                  "'watchdog verify' in the project")
        return Check(False, ms, f"exited with status {proc.returncode}", advice, err)
    try:
        answer = json.loads(out)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        shown = repr(out.strip()[:200]) if out.strip() else "nothing"
        return Check(False, ms, f"printed {shown}, not a JSON object",
                     "check that the command is watchdog itself (a wrapper must pass stdin "
                     "and stdout through untouched)", err)
    return Check(False, ms, f"answered {json.dumps(answer)[:200]}, not a deny of "
                 f"`{CHECK_COMMAND}`: the project's policies did not load, or no longer "
                 "deny it",
                 "run 'watchdog verify' and 'watchdog eval --explain' in the project (or "
                 "pass --no-check if your policies allow it on purpose)", err, answered=True)


def report_failure(command: str, root: Path, check: Check, fail_closed: bool,
                   agent: str = "Claude Code", config: str = ".claude/settings.json") -> None:
    if check.answered:
        effect = (f"The hook runs, but {agent} would get answers without the policies "
                  "init installed.")
    elif fail_closed:
        effect = (f'With fail-closed set, {agent} would block every tool call (and '
                  "every prompt).")
    else:
        effect = (f"{agent} reads a hook that cannot run as a non-blocking error: every "
                  "tool call would run unchecked.")
    lines = [
        f"watchdog init: HOOK CHECK FAILED: the hook written to {config} does not "
        "answer as it should.",
        f"  command: {command}",
        f"  ran:     /bin/sh -c in {root}, a sample PreToolUse Bash event (`{CHECK_COMMAND}`) "
        "on stdin",
        f"  result:  {check.result}",
    ]
    err = check.stderr.strip().splitlines()[-15:]
    lines += [f"  stderr:  {line}" for line in err] or ["  stderr:  (empty)"]
    lines += [
        effect,
        f"To fix: {check.advice}; then run 'watchdog init' again (the settings are written, "
        "so only the check is left). --no-check skips this check.",
    ]
    sys.stderr.write("\n".join(lines) + "\n")
