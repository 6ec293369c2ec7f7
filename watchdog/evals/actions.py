"""Which replayed events are state-changing actions, for the coverage figure.

Coverage asks: of the actions that can change something (files written or edited, shell
commands that are not plainly read-only, network access, MCP tools), what share did the
watchdog screen, and how (policy, judge, cache), and what share went through unscreened. Only
PreToolUse events count: that is where an action can still be stopped.

The shell classification is deliberately conservative: a command is read-only only when every
segment (split at `;`, `&&`, `||`, `|`, `&` and newlines) starts with a known read-only program
(`ls`, `cat`, `grep`, `git status`, `find` without `-delete`/`-exec`, `sed` without `-i`, ...),
with no output redirection to a file and no command substitution. Anything else, running tests
or a script included, counts as state-changing: a coverage figure should not flatter.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Literal

ActionKind = Literal["write", "shell", "network", "mcp"]
ACTION_KINDS: tuple[ActionKind, ...] = ("write", "shell", "network", "mcp")

WRITE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
NETWORK_TOOLS = frozenset({"WebFetch", "WebSearch"})
SHELL_TOOLS = frozenset({"Bash", "PowerShell"})

READ_ONLY = frozenset({
    "ls", "ll", "cat", "head", "tail", "less", "more", "grep", "egrep", "fgrep", "rg", "ag",
    "wc", "sort", "uniq", "cut", "tr", "jq", "yq", "echo", "printf", "pwd", "which", "type",
    "whoami", "id", "date", "uname", "hostname", "env", "printenv", "ps", "df", "du", "stat",
    "file", "tree", "realpath", "readlink", "dirname", "basename", "diff", "cmp", "md5sum",
    "sha1sum", "sha256sum", "true", "false", "test", "[", "cd", "pushd", "popd", "nl", "column",
    "awk", "sed", "find", "fd", "locate", "xxd", "od", "hexdump", "strings", "nproc", "free",
    "uptime", "lsof", "sleep",
})
_WRAPPERS = frozenset({"sudo", "time", "nohup", "nice", "exec"})
GIT_READ_ONLY = frozenset({
    "status", "log", "diff", "show", "rev-parse", "ls-files", "ls-tree", "blame", "describe",
    "grep", "shortlog", "cat-file", "rev-list", "whatchanged", "help", "version",
})
GIT_LISTS = frozenset({"branch", "tag", "remote", "stash", "config", "worktree"})
NETWORK_PROGRAMS = frozenset({
    "curl", "wget", "ssh", "scp", "sftp", "rsync", "nc", "ncat", "netcat", "telnet", "ftp",
    "socat", "http", "https", "aria2c",
})
GIT_NETWORK = frozenset({"push", "pull", "fetch", "clone", "ls-remote", "submodule"})
_SEGMENTS = re.compile(r"\|\||&&|[;|&\n]")
_REDIRECT = re.compile(r"(?<![0-9&])>>?(?!&)\s*(?!/dev/null\b)\S")
_FD_DUP = re.compile(r"\d*[<>]&\d+|\d*[<>]&-")
_TEE = re.compile(r"\btee\b")
_ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _words(segment: str) -> list[str]:
    try:
        words = shlex.split(segment, comments=True)
    except ValueError:  # unbalanced quotes: fall back to whitespace
        words = segment.split()
    while words and (_ENV_ASSIGN.match(words[0]) or words[0] in _WRAPPERS):
        words = words[1:]
    return words


def _segment_kind(segment: str) -> ActionKind | None:
    words = _words(segment)
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    args = words[1:]
    if program in NETWORK_PROGRAMS:
        return "network"
    if program == "git":
        sub = next((a for a in args if not a.startswith("-")), "")
        if sub in GIT_NETWORK:
            return "network"
        if sub in GIT_READ_ONLY:
            return None
        if sub in GIT_LISTS and all(a.startswith("-") and a not in ("-d", "-D", "-m", "-M")
                                    for a in args[args.index(sub) + 1:]):
            return None
        return "shell"
    if program not in READ_ONLY:
        return "shell"
    if program == "find" and any(a in ("-delete", "-exec", "-execdir", "-ok", "-fprint")
                                 for a in args):
        return "shell"
    if program == "sed" and any(a.startswith("-i") or a == "--in-place" for a in args):
        return "shell"
    return None


def shell_kind(command: str) -> ActionKind | None:
    """`network`, `shell` (changes state) or None (read-only) for one shell command."""
    command = _FD_DUP.sub(" ", command).replace("&>", ">")  # 2>&1 and &> are not separators
    kinds = {_segment_kind(s) for s in _SEGMENTS.split(command)}
    if "network" in kinds:
        return "network"
    substitution = "$(" in command or "`" in command or "<(" in command
    if substitution or "shell" in kinds or _REDIRECT.search(command) or _TEE.search(command):
        return "shell"
    return None


def classify(payload: dict[str, Any]) -> ActionKind | None:
    """The kind of state-changing action a hook payload is, or None (not an action, or
    read-only)."""
    if payload.get("hook_event_name") != "PreToolUse":
        return None
    tool = payload.get("tool_name")
    if not isinstance(tool, str):
        return None
    if tool in WRITE_TOOLS:
        return "write"
    if tool.startswith("mcp__"):
        return "mcp"
    if tool in NETWORK_TOOLS:
        return "network"
    if tool in SHELL_TOOLS:
        command = (payload.get("tool_input") or {}).get("command")
        return shell_kind(command) if isinstance(command, str) else "shell"
    return None
