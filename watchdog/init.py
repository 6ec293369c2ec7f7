"""`watchdog init` / `watchdog uninstall`: the default policy pack and the agent's hook.

    watchdog init [--dir PROJECT] [--harness H] [--global] [--watchdog] [--force]
                  [--command CMD] [--fail-closed] [--no-check]
    watchdog uninstall [--dir PROJECT] [--harness H] [--global]

`init` creates PROJECT/.watchdog/ (`policies/common/` with the default pack, which serves every
harness, an empty `policies/<harness>/` for the project's own Cupcake-style policies, the
pack's unit tests in `tests/`, and a `rulebook.yml` listing every Cupcake builtin, all off) and
registers watchdog's hook in the harness's own config (the harness's `Setup` says where and
how): `.claude/settings.json`, `.cursor/hooks.json`, `.factory/settings.json`, or the OpenCode
plugin. Running it again changes nothing: pack files already there are left alone (`--force`
replaces them), and the hook is added once, beside the user's other hooks; an existing
watchdog entry is updated in place. A config file that changes is backed up beside itself
first. `--global` registers the hook in the user-wide config instead (the pack then comes from
the shipped default, or `~/.config/watchdog/`).

The hook is written with the absolute path of the `watchdog` that runs init, because the agent
runs it with whatever PATH it was started with: a bare `watchdog` from a virtualenv that is not
on that PATH is `/bin/sh: watchdog: not found` (exit 127), a non-blocking error, on every event,
and every tool call then runs unchecked. So init also runs the written command once, through
`/bin/sh -c` as the agent does, on a sample event the default pack denies, and fails loudly when
it does not answer. `uninstall` removes exactly the hook entries (and plugin files) that are
watchdog's, and the pack files that are still as shipped; anything the user changed stays.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shlex
import shutil
import sys
from pathlib import Path

from watchdog import agent_config, harnesses
from watchdog.errors import ConfigError, WatchdogError
from watchdog.harnesses.base import Harness
from watchdog.harnesses.claude_setup import CHECK_COMMAND
from watchdog.hook_check import INSTALL_HINT, check_hook, report_failure

PROG = "watchdog init"

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


def rulebook_template() -> str:
    """Every builtin listed, all off, each with a one-line description."""
    from watchdog.policies.rulebook import BUILTINS, MESSAGES

    lines = [
        "# Cupcake builtins, as Cupcake reads them. Every builtin is off unless `enabled: true`.",
        "# To turn one on, set `enabled: true`: its policy comes from the pack shipped with",
        "# watchdog, unless .watchdog/policies/<harness>/builtins/ holds your own copy.",
        "# `watchdog verify` checks this file and says which copy each builtin uses.",
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


def install_pack(root: Path, harness: str, force: bool) -> list[str]:
    """The default pack, its tests and a rulebook into root/.watchdog/; the paths written."""
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
    return written


def install(project: str, harness: str = "claude", escalate: bool = False,
            force: bool = False, command: str | None = None,
            fail_closed: bool = False, global_: bool = False,
            home: Path | None = None) -> list[str]:
    """Install the pack (project installs only) and the hook; the paths written.

    `command` is the hook's whole command line (default: this watchdog's absolute path).
    """
    root = Path(project).resolve()
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder. Pass an existing project with --dir.")
    agent = harnesses.get(harness)
    written = [] if global_ else install_pack(root, harness, force)
    command = command or hook_command(harness, escalate, executable())
    written += agent_config.install(agent.setup, root, home or Path.home(), global_, command,
                                    fail_closed)
    return written


def uninstall(project: str, harness: str = "claude", global_: bool = False,
              home: Path | None = None) -> list[str]:
    """Remove our hook entries and plugin files, and the pack files still as shipped."""
    root = Path(project).resolve()
    agent = harnesses.get(harness)
    done = agent_config.uninstall(agent.setup, root, home or Path.home(), global_)
    if not global_:
        done += _remove_unchanged_pack(root)
    return done


def _remove_unchanged_pack(root: Path) -> list[str]:
    """Pack files identical to the shipped ones, then folders left empty; edits stay."""
    pack = pack_dir()
    wd = root / ".watchdog"
    done: list[str] = []
    pairs = [(pack / "common", wd / "policies" / "common"), (pack / "tests", wd / "tests"),
             (pack / "system", wd / "system")]
    for src, dst in pairs:
        for path in sorted(src.rglob("*.rego")) if src.is_dir() else []:
            target = dst / path.relative_to(src)
            if target.is_file() and filecmp.cmp(path, target, shallow=False):
                target.unlink()
                done.append(f"{target} (removed)")
    rulebook = wd / "rulebook.yml"
    if rulebook.is_file() and rulebook.read_text(encoding="utf-8") == rulebook_template():
        rulebook.unlink()
        done.append(f"{rulebook} (removed)")
    for folder in sorted((p for p in wd.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()
    if wd.is_dir() and not any(wd.iterdir()):
        wd.rmdir()
    return done


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
    p.add_argument("--harness", default="claude", choices=sorted(harnesses.NAMES),
                   help="the agent whose hook to register (default: claude)")
    p.add_argument("--global", dest="global_", action="store_true",
                   help="register the hook in the user-wide config (~/.claude, ~/.cursor, ...) "
                   "instead of the project's; no pack is copied")
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
    p.add_argument("--serve", action="store_true",
                   help="register 'watchdog hook --serve': the hook asks a running 'watchdog "
                   "serve' (warm: no imports, no bundle load per event) and evaluates "
                   "in-process when it is down")
    p.add_argument("--http", metavar="URL", nargs="?", const="http://127.0.0.1:8750",
                   help="Claude Code only: register `\"type\": \"http\"` hooks posting to "
                   "'watchdog serve' at URL (default http://127.0.0.1:8750). They fail OPEN "
                   "while the server is down (use --fail-closed, Claude Code 2.1.295+, or "
                   "prefer --serve, which falls back in-process)")
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
    if args.serve:
        command += " --serve"
    if args.http is not None:
        if args.harness != "claude":
            sys.stderr.write("watchdog init: --http is for Claude Code's http hooks; for "
                             f"{args.harness} use --serve.\n")
            return 1
        command = args.http.rstrip("/") + "/hook/claude"
        args.no_check = True  # the smoke check runs a command; serve answers for itself
        if not args.fail_closed:
            sys.stderr.write(
                "watchdog init: WARNING: Claude Code lets a tool call run when an http hook "
                "cannot be reached, so while 'watchdog serve' is down nothing is checked. "
                "Add --fail-closed (Claude Code 2.1.295+), or use --serve instead.\n")
    try:
        agent = harnesses.get(args.harness)
        written = install(args.dir, args.harness, args.watchdog, args.force, command,
                          args.fail_closed, args.global_)
    except WatchdogError as exc:
        sys.stderr.write(f"watchdog init: {exc}\n")
        return 1
    if not written:
        print(f"watchdog init: {root} is already set up; nothing changed (--force to refresh).")
    for path in written:
        print(f"wrote {_shown(path, root)}")
    print(f"hook command: {command}")
    closed = _fails_closed(agent, root, args.global_, command, args.fail_closed)
    config = _shown(str(agent.setup.config_path(root, Path.home(), args.global_)), root)
    if args.http is not None:
        print("hook check: not run for an http hook; start 'watchdog serve', then "
              "'watchdog doctor' checks that it answers.")
    elif not args.no_check:
        check = check_hook(command, root, {**os.environ, "CLAUDE_PROJECT_DIR": str(root)},
                           agent.setup, agent=_agent_name(agent), )
        if check.skipped:
            print(f"hook check: skipped ({agent.name} gives no sample event to run)")
        elif not check.ok:
            report_failure(command, root, check, closed, _agent_name(agent), config)
            return 1
        else:
            print(f"hook check: ok (denied `{CHECK_COMMAND}` in {check.ms:.0f} ms)")
    if not closed and agent.name == "claude":
        print('hint: without "onFailure": "block" Claude Code runs a tool call unchecked when '
              "the hook cannot run; 'watchdog init --fail-closed' adds it.")
    print("Check the pack with 'watchdog verify' and 'watchdog test' (run inside the project).")
    return 0


def _shown(path: str, root: Path) -> str:
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel


def _agent_name(agent: Harness) -> str:
    return harnesses.display(agent.name)


def _fails_closed(agent: Harness, root: Path, global_: bool, command: str,
                  asked: bool) -> bool:
    """Is the installed hook fail-closed? Claude Code's config says so per hook entry."""
    if agent.name != "claude":
        return asked
    from watchdog.harnesses import claude_setup

    settings = agent_config.read(claude_setup.config_path(root, Path.home(), global_))
    return all(hook.get("onFailure") == "block"
               for event, hook in claude_setup.ours_by_event(settings, command)
               if event not in claude_setup.NO_ON_FAILURE)


def build_uninstall_parser() -> argparse.ArgumentParser:
    from watchdog.cli import parser_class

    p: argparse.ArgumentParser = parser_class()(
        prog="watchdog uninstall", description="Remove watchdog's hooks from the agent's config "
        "(and the pack files in .watchdog/ that are still as shipped); nothing of yours.")
    p.add_argument("--dir", default=".", help="the project folder (default: the current one)")
    p.add_argument("--harness", default="claude", choices=sorted(harnesses.NAMES),
                   help="the agent")
    p.add_argument("--global", dest="global_", action="store_true",
                   help="the user-wide config instead of the project's")
    return p


def uninstall_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_uninstall_parser().parse_args(argv)
    root = Path(args.dir).resolve()
    try:
        done = uninstall(args.dir, args.harness, args.global_)
    except WatchdogError as exc:
        sys.stderr.write(f"watchdog uninstall: {exc}\n")
        return 1
    for line in done:
        print(f"changed {_shown(line, root)}")
    if not done:
        print(f"watchdog uninstall: no watchdog hook found for {args.harness}; nothing changed.")
    kept = root / ".watchdog"
    if not args.global_ and kept.is_dir():
        print(f"kept {_shown(str(kept), root)}: files you added or changed (delete it yourself "
              "if you no longer want them).")
    return 0
