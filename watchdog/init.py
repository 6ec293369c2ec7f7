"""`watchdog init`: install the default policy pack into a project and register the hooks.

    watchdog init [--dir PROJECT] [--harness claude] [--watchdog] [--force]
                  [--command CMD] [--fail-closed] [--no-check]

Creates PROJECT/.watchdog/ (`policies/common/` with the default pack, which serves every
harness, an empty `policies/claude/` for the project's own policies, its unit tests in
`tests/`, `system/` when the pack has one, and a `rulebook.yml` listing every Cupcake builtin,
all off) and merges watchdog's hook into PROJECT/.claude/settings.json for every Claude Code
event it answers. Running it again changes nothing: pack files that are already there are left
alone (`--force` replaces them with the shipped version), and the hook entry is added once,
next to whatever other hooks the user has; an existing watchdog entry is updated in place
(for instance to add `--watchdog`, or to move a bare `watchdog hook` to an absolute path).

The hook is written with the absolute path of the `watchdog` that runs init, because Claude
Code runs it with whatever PATH it was started with: a bare `watchdog` from a virtualenv that
is not on that PATH is `/bin/sh: watchdog: not found` (exit 127), a non-blocking error, on
every event, and every tool call then runs unchecked. So init also runs the written command
once, through `/bin/sh -c` as Claude Code does, on a sample event the default pack denies, and
fails loudly when it does not answer.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.errors import ConfigError, WatchdogError

PROG = "watchdog init"
TIMEOUT_S = 30
#: Claude Code events watchdog answers; tool events take a matcher.
TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PermissionRequest")
OTHER_EVENTS = ("UserPromptSubmit", "SessionStart", "Stop", "SubagentStop")
#: Claude Code ignores `onFailure` on these (see harness-protocols.md), so it is not written
#: there: the key would promise a fail-closed Stop hook that Claude Code does not give.
NO_ON_FAILURE = ("Stop", "SubagentStop")
#: The smoke check's tool call: one the default pack denies, so a deny shows policies loaded.
CHECK_COMMAND = "rm -rf ~"
INSTALL_HINT = ("install watchdog so that it is on PATH for every shell "
                "('uv tool install /path/to/watchdog' or 'pipx install /path/to/watchdog'), "
                "or pass --command with the absolute path of a working watchdog")


def pack_dir() -> Path:
    """The shipped default pack (layout.shipped_pack: the checkout's policies/, else the copy
    inside the wheel), or a ConfigError saying to reinstall."""
    from watchdog.policies import layout

    found = layout.shipped_pack()
    if found is None:
        here = Path(__file__).resolve()
        raise ConfigError(
            f"The default policy pack is missing (looked in {here.parents[1] / 'policies'}). "
            "Reinstall watchdog."
        )
    return Path(found)


def executable() -> str:
    """The command that starts this very watchdog, as a shell word (or two), absolute.

    The console script beside the running interpreter first (a virtualenv's, `uv tool`'s or
    pipx's own bin/), written as the PATH entry that links to it when there is one (uv and
    pipx link `~/.local/bin/watchdog` there); then `watchdog` as found on PATH; then
    `python -m watchdog` with this interpreter, which works wherever the package imports.
    """
    script = Path(sys.executable).with_name("watchdog")
    found = shutil.which("watchdog")
    if script.is_file() and os.access(script, os.X_OK):
        if found and os.path.realpath(found) == os.path.realpath(script):
            script = Path(found)
        return shlex.quote(os.path.abspath(script))
    if found:
        return shlex.quote(os.path.abspath(found))
    return f"{shlex.quote(os.path.abspath(sys.executable))} -m watchdog"


def unresolved(command: str) -> str | None:
    """Why the first word of a --command would not start here, or None when it does."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return f"it is not a valid shell command ({exc})"
    if not words:
        return "it is empty"
    if shutil.which(words[0]) is None:
        where = "does not exist or is not executable" if "/" in words[0] else "is not on PATH"
        return f"'{words[0]}' {where}"
    return None


def hook_command(harness: str, escalate: bool, command: str = "watchdog") -> str:
    return f"{command} hook --harness {harness}" + (" --watchdog" if escalate else "")


def _is_ours(hook: Any, ours: str = "") -> bool:
    """A watchdog hook entry in any form init writes or wrote: `watchdog hook ...`,
    `/abs/path/watchdog hook ...` (quoted or not), `python -m watchdog hook ...`, or exactly
    the command being written (a --command wrapper need not be named watchdog)."""
    command = hook.get("command") if isinstance(hook, dict) else None
    if not isinstance(command, str):
        return False
    if command == ours:
        return True
    try:
        words = shlex.split(command)
    except ValueError:
        return "watchdog hook" in command
    return any(os.path.basename(word) == "watchdog" and nxt == "hook"
               for word, nxt in zip(words, words[1:], strict=False))


def _our_hooks(settings: dict[str, Any], command: str) -> list[tuple[str, dict[str, Any]]]:
    hooks = settings.get("hooks")
    found: list[tuple[str, dict[str, Any]]] = []
    for event in TOOL_EVENTS + OTHER_EVENTS:
        groups = hooks.get(event) if isinstance(hooks, dict) else None
        for group in groups if isinstance(groups, list) else []:
            for hook in group.get("hooks", []) if isinstance(group, dict) else []:
                if _is_ours(hook, command):
                    found.append((event, hook))
    return found


def merge_settings(settings: dict[str, Any], command: str, fail_closed: bool = False) -> bool:
    """Add (or update) watchdog's hook for every event; True when something changed.

    `fail_closed` adds `"onFailure": "block"`; without it an `onFailure` already there stays,
    so re-running init never quietly turns a fail-closed setup open.
    """
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigError("'hooks' in .claude/settings.json is not an object; fix it by hand.")
    changed = False
    for event in TOOL_EVENTS + OTHER_EVENTS:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise ConfigError(f"hooks.{event} in .claude/settings.json is not a list; fix it.")
        blocks = fail_closed and event not in NO_ON_FAILURE
        found = False
        for group in groups:
            for hook in group.get("hooks", []) if isinstance(group, dict) else []:
                if _is_ours(hook, command):
                    found = True
                    if hook.get("command") != command:
                        hook["command"] = command
                        changed = True
                    if "timeout" not in hook:
                        hook["timeout"] = TIMEOUT_S
                        changed = True
                    if blocks and hook.get("onFailure") != "block":
                        hook["onFailure"] = "block"
                        changed = True
        if not found:
            new: dict[str, Any] = {"type": "command", "command": command, "timeout": TIMEOUT_S}
            if blocks:
                new["onFailure"] = "block"
            entry: dict[str, Any] = {"hooks": [new]}
            if event in TOOL_EVENTS:
                entry = {"matcher": "*", **entry}
            groups.append(entry)
            changed = True
    return changed


def rulebook_template() -> str:
    """Every builtin listed, all off, each with a one-line description."""
    from watchdog.policies.rulebook import BUILTINS, MESSAGES

    lines = [
        "# Cupcake builtins, as Cupcake reads them. Every builtin is off unless `enabled: true`.",
        "# To turn one on, set `enabled: true` and copy its policy from watchdog's",
        "# policies/claude/builtins/ (global ones: policies/global/claude/builtins/) into",
        "# .watchdog/policies/claude/builtins/. `watchdog verify` checks this file.",
        "builtins:",
    ]
    for name in BUILTINS:
        note = MESSAGES.get(name, "")
        lines.append(f"  # {name}" + (f": {note}" if note else ""))
        lines.append(f"  {name}:")
        lines.append("    enabled: false")
    return "\n".join(lines) + "\n"


def _copy_tree(src: Path, dst: Path, force: bool, skip_dirs: set[str], done: list[str]) -> None:
    for path in sorted(src.rglob("*.rego")):
        rel = path.relative_to(src)
        if any(part in skip_dirs or part.startswith(".") for part in rel.parts[:-1]):
            continue
        target = dst / rel
        if target.exists() and not force:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        done.append(str(target))


def install(project: str, harness: str = "claude", escalate: bool = False,
            force: bool = False, command: str | None = None,
            fail_closed: bool = False) -> list[str]:
    """Install the pack and the hooks into project; the paths written, for the summary.

    `command` is the hook's whole command line (default: this watchdog's absolute path).
    """
    root = Path(project).resolve()
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder. Pass an existing project with --dir.")
    pack = pack_dir()
    wd = root / ".watchdog"
    written: list[str] = []
    _copy_tree(pack / "common", wd / "policies" / "common", force, set(), written)
    own = wd / "policies" / harness  # Cupcake's per-harness folder: the user's own policies
    if not own.is_dir():
        own.mkdir(parents=True)
        written.append(str(own) + os.sep)
    if (pack / "system").is_dir():
        _copy_tree(pack / "system", wd / "system", force, set(), written)
    if (pack / "tests").is_dir():
        _copy_tree(pack / "tests", wd / "tests", force, set(), written)
    rulebook = wd / "rulebook.yml"
    if force or not rulebook.exists():
        rulebook.write_text(rulebook_template(), encoding="utf-8")
        written.append(str(rulebook))
    settings_path = root / ".claude" / "settings.json"
    settings: dict[str, Any] = {}
    if settings_path.exists():
        try:
            loaded = json.loads(settings_path.read_text(encoding="utf-8") or "{}")
        except ValueError as exc:
            raise ConfigError(
                f"{settings_path} is not valid JSON ({exc}); fix it, then run "
                "'watchdog init' again."
            ) from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{settings_path} is not a JSON object; fix it by hand.")
        settings = loaded
    command = command or hook_command(harness, escalate, executable())
    if merge_settings(settings, command, fail_closed):
        settings_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = settings_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, settings_path)
        written.append(str(settings_path))
    return written


@dataclass(frozen=True)
class Check:
    """What the configured hook command did with the sample event."""

    ok: bool
    ms: float
    result: str = ""  # what went wrong, in a few words
    advice: str = ""  # what to do about it
    stderr: str = ""
    answered: bool = False  # a JSON answer, only not the expected one


def sample_event(root: Path) -> dict[str, Any]:
    """A PreToolUse Bash event as Claude Code sends it, for a call the default pack denies.

    A session id of its own, so no verdict owed to a real session is delivered to it (and so
    no Redis is touched with --watchdog: a deny is never escalated).
    """
    session = f"watchdog-init-check-{uuid.uuid4()}"
    return {
        "session_id": session,
        "transcript_path": str(root / ".claude" / f"{session}.jsonl"),  # never created
        "cwd": str(root),
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": CHECK_COMMAND,
                       "description": "watchdog init: check that the hook answers"},
        "tool_use_id": "toolu_watchdog_init_check",
    }


def check_hook(command: str, root: Path, env: dict[str, str],
               timeout_s: float = TIMEOUT_S) -> Check:
    """Run `command` as Claude Code does (`/bin/sh -c`, event JSON on stdin, cwd the project)
    and judge its answer: a deny of `rm -rf ~` shows it started, read the event and loaded
    the project's policies, within the timeout written beside it."""
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
        out, err = proc.communicate(json.dumps(sample_event(root)), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Check(False, timeout_s * 1000, f"no answer within {timeout_s:g} s (killed)",
                     "run 'watchdog verify' in the project, and the command by hand to see "
                     "where it hangs", err)
    ms = (time.perf_counter() - start) * 1000
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
    specific = answer.get("hookSpecificOutput")
    decision = specific.get("permissionDecision") if isinstance(specific, dict) else None
    if decision != "deny" and answer.get("continue") is not False:
        return Check(False, ms, f"answered {json.dumps(answer)[:200]}, not a deny of "
                     f"`{CHECK_COMMAND}`: the project's policies did not load, or no longer "
                     "deny it",
                     "run 'watchdog verify' and 'watchdog eval --harness claude --explain' in "
                     "the project (or pass --no-check if your policies allow it on purpose)", err,
                     answered=True)
    return Check(True, ms, stderr=err)


def report_failure(command: str, root: Path, check: Check, fail_closed: bool) -> None:
    if check.answered:
        effect = ("The hook runs, but Claude Code would get answers without the policies "
                  "init installed.")
    elif fail_closed:
        effect = ('With "onFailure": "block" Claude Code would block every tool call (and '
                  "every prompt).")
    else:
        effect = ("Claude Code reads a hook that cannot run as a non-blocking error: every "
                  "tool call would run unchecked.")
    lines = [
        "watchdog init: HOOK CHECK FAILED: the hook written to .claude/settings.json does not "
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


def warn_command(command: str) -> None:
    """A --command is trusted as given; say loudly when it would not start from here."""
    reason = unresolved(command)
    if reason is not None:
        sys.stderr.write(
            f"watchdog init: WARNING: --command {command!r} will not start: {reason}. Claude "
            "Code would get 'not found' (exit 127) on every event and run every tool call "
            f"unchecked. To fix: {INSTALL_HINT}.\n")
    elif not os.path.isabs(shlex.split(command)[0]):
        print(f"note: the hook finds {shlex.split(command)[0]!r} on PATH; it must be on the "
              "PATH of every shell Claude Code is started from.")


def build_parser() -> argparse.ArgumentParser:
    from watchdog.cli import parser_class

    p: argparse.ArgumentParser = parser_class()(
        prog=PROG, description="Install the default policy pack into .watchdog/ and register "
        "watchdog's hooks in .claude/settings.json, then check that the hook answers.")
    p.add_argument("--dir", default=".", help="the project folder (default: the current one)")
    p.add_argument("--harness", default="claude", choices=["claude"], help="the agent (claude)")
    p.add_argument("--watchdog", action="store_true",
                   help="register the hook with --watchdog (escalations go to the judge)")
    p.add_argument("--force", action="store_true",
                   help="replace pack files already in .watchdog/ with the shipped ones")
    p.add_argument("--command", metavar="CMD",
                   help="the executable the hook runs, for example plain 'watchdog' when "
                   "settings.json is shared and watchdog is on everyone's PATH (default: the "
                   "absolute path of this watchdog)")
    p.add_argument("--fail-closed", action="store_true",
                   help='add "onFailure": "block": Claude Code blocks the event when the hook '
                   "cannot run, times out or prints no valid answer (Claude Code 2.1.295+)")
    p.add_argument("--no-check", action="store_true",
                   help="do not run the written hook command once on a sample event")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)  # a usage error prints and exits 1
    root = Path(args.dir).resolve()
    if args.command is not None:
        try:
            words = shlex.split(args.command)
        except ValueError as exc:
            sys.stderr.write(f"watchdog init: --command {args.command!r}: {exc}\n")
            return 1
        if not words or "hook" in words:
            sys.stderr.write("watchdog init: --command is the executable alone (for example "
                             "'watchdog' or '/opt/wd/bin/watchdog'); init adds 'hook --harness "
                             f"{args.harness}'.\n")
            return 1
        warn_command(args.command)
    command = hook_command(args.harness, args.watchdog, args.command or executable())
    try:
        written = install(args.dir, args.harness, args.watchdog, args.force, command,
                          args.fail_closed)
    except WatchdogError as exc:
        sys.stderr.write(f"watchdog init: {exc}\n")
        return 1
    if not written:
        print(f"watchdog init: {root} is already set up; nothing changed (--force to refresh).")
    for path in written:
        print(f"wrote {os.path.relpath(path, root)}")
    print(f"hook command: {command}")
    settings = json.loads((root / ".claude" / "settings.json").read_text(encoding="utf-8"))
    closed = all(hook.get("onFailure") == "block" for event, hook in _our_hooks(settings, command)
                 if event not in NO_ON_FAILURE)
    if not args.no_check:
        check = check_hook(command, root, {**os.environ, "CLAUDE_PROJECT_DIR": str(root)})
        if not check.ok:
            report_failure(command, root, check, closed)
            return 1
        print(f"hook check: ok (denied `{CHECK_COMMAND}` in {check.ms:.0f} ms)")
    if not closed:
        print('hint: without "onFailure": "block" Claude Code runs a tool call unchecked when '
              "the hook cannot run; 'watchdog init --fail-closed' adds it.")
    print("Check the pack with 'watchdog verify' and 'watchdog test' (run inside the project).")
    return 0
