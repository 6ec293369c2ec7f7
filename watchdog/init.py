"""`watchdog init`: install the default policy pack into a project and register the hooks.

    watchdog init [--dir PROJECT] [--harness claude] [--watchdog] [--force]

Creates PROJECT/.watchdog/ (`policies/claude/` with the default pack, its unit tests in
`tests/`, `system/` when the pack has one, and a `rulebook.yml` listing every Cupcake builtin,
all off) and merges watchdog's hook into PROJECT/.claude/settings.json for every Claude Code
event it answers. Running it again changes nothing: pack files that are already there are left
alone (`--force` replaces them with the shipped version), and the hook entry is added once,
next to whatever other hooks the user has; an existing watchdog entry is updated in place
(for instance to add `--watchdog`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from watchdog.errors import ConfigError, WatchdogError

PROG = "watchdog init"
TIMEOUT_S = 30
#: Claude Code events watchdog answers; tool events take a matcher.
TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PermissionRequest")
OTHER_EVENTS = ("UserPromptSubmit", "SessionStart", "Stop", "SubagentStop")


def pack_dir() -> Path:
    """policies/ beside the package in a checkout; the copy shipped inside the wheel otherwise."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "policies", here.parent / "_policies"):
        if (candidate / "claude").is_dir():
            return candidate
    raise ConfigError(
        f"The default policy pack is missing (looked in {here.parents[1] / 'policies'}). "
        "Reinstall watchdog."
    )


def hook_command(harness: str, escalate: bool) -> str:
    return f"watchdog hook --harness {harness}" + (" --watchdog" if escalate else "")


def _is_ours(hook: Any) -> bool:
    command = hook.get("command") if isinstance(hook, dict) else None
    return isinstance(command, str) and "watchdog hook" in command


def merge_settings(settings: dict[str, Any], command: str) -> bool:
    """Add (or update) watchdog's hook for every event; True when something changed."""
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigError("'hooks' in .claude/settings.json is not an object; fix it by hand.")
    changed = False
    for event in TOOL_EVENTS + OTHER_EVENTS:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise ConfigError(f"hooks.{event} in .claude/settings.json is not a list; fix it.")
        found = False
        for group in groups:
            for hook in group.get("hooks", []) if isinstance(group, dict) else []:
                if _is_ours(hook):
                    found = True
                    if hook.get("command") != command:
                        hook["command"] = command
                        changed = True
                    if "timeout" not in hook:
                        hook["timeout"] = TIMEOUT_S
                        changed = True
        if not found:
            entry: dict[str, Any] = {
                "hooks": [{"type": "command", "command": command, "timeout": TIMEOUT_S}]
            }
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
            force: bool = False) -> list[str]:
    """Install the pack and the hooks into project; the paths written, for the summary."""
    root = Path(project).resolve()
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder. Pass an existing project with --dir.")
    pack = pack_dir()
    wd = root / ".watchdog"
    written: list[str] = []
    _copy_tree(pack / harness, wd / "policies" / harness, force, {"builtins"}, written)
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
    if merge_settings(settings, hook_command(harness, escalate)):
        settings_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = settings_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, settings_path)
        written.append(str(settings_path))
    return written


def build_parser() -> argparse.ArgumentParser:
    from watchdog.cli import parser_class

    p: argparse.ArgumentParser = parser_class()(
        prog=PROG, description="Install the default policy pack into .watchdog/ and register "
        "watchdog's hooks in .claude/settings.json.")
    p.add_argument("--dir", default=".", help="the project folder (default: the current one)")
    p.add_argument("--harness", default="claude", choices=["claude"], help="the agent (claude)")
    p.add_argument("--watchdog", action="store_true",
                   help="register the hook with --watchdog (escalations go to the judge)")
    p.add_argument("--force", action="store_true",
                   help="replace pack files already in .watchdog/ with the shipped ones")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)  # a usage error prints and exits 1
    try:
        written = install(args.dir, args.harness, args.watchdog, args.force)
    except WatchdogError as exc:
        sys.stderr.write(f"watchdog init: {exc}\n")
        return 1
    root = Path(args.dir).resolve()
    if not written:
        print(f"watchdog init: {root} is already set up; nothing changed (--force to refresh).")
        return 0
    for path in written:
        print(f"wrote {os.path.relpath(path, root)}")
    print("Check the pack with 'watchdog verify' and 'watchdog test' (run inside the project).")
    return 0
