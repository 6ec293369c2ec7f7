"""Cupcake's input preprocessing, so policies written for Cupcake see the same `input`.

Before routing and evaluation Cupcake (1) collapses runs of whitespace outside quotes in a
shell command (`git  commit` becomes `git commit`, so string matching cannot be dodged with
extra spaces), (2) adds `resolved_file_path`, `original_file_path` and `is_symlink` for the
file a tool touches (symlinks resolved, relative paths joined to the event's cwd), also per
MultiEdit edit, (3) adds `affected_parent_directories` for shell commands and (4) copies a
Write's `content` into `tool_input.new_string`. The payload is copied, never changed in place.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchdog.events import Action

SHELL_TOOLS = frozenset({"Bash", "PowerShell"})
_PATH_KEYS = ("file_path", "path", "notebook_path", "filePath")  # filePath: OpenCode
_SEPARATORS = frozenset({";", "&&", "||", "|", "&"})
_GLOB = frozenset("*?[")


def normalize_whitespace(command: str) -> str:
    """Runs of whitespace outside single or double quotes become one space; ends trimmed."""
    out: list[str] = []
    quote: str | None = None
    pending_space = False
    escaped = False
    for ch in command:
        if quote is None and not escaped and ch.isspace():
            pending_space = True
            continue
        if pending_space and out:
            out.append(" ")
        pending_space = False
        out.append(ch)
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote is None and ch in "'\"":
            quote = ch
        elif ch == quote:
            quote = None
    return "".join(out)


def resolve_path(raw: str, cwd: str) -> tuple[str, bool]:
    """Absolute, symlink-free path of raw (joined to cwd when relative), and whether it is a link.

    A dangling link resolves to its target; a missing file to realpath(parent)/name.
    """
    joined = os.path.join(cwd, os.path.expanduser(raw)) if cwd else os.path.expanduser(raw)
    joined = os.path.normpath(joined)
    is_link = os.path.islink(joined)
    if is_link or os.path.exists(joined):
        return os.path.realpath(joined), is_link
    parent, name = os.path.split(joined)
    return os.path.join(os.path.realpath(parent), name), False


def _words(command: str) -> list[str]:
    """Split on whitespace outside quotes, dropping the quotes; separators become own words."""
    words: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    for ch in command:
        if quote:
            if ch == quote:
                quote = None
            else:
                cur.append(ch)
        elif ch in "'\"":
            quote = ch
        elif ch.isspace() or ch in ";|&":
            if cur:
                words.append("".join(cur))
                cur = []
            if ch in ";|&":
                if words and words[-1] in ("|", "&") and words[-1] == ch:
                    words[-1] = ch * 2
                else:
                    words.append(ch)
        else:
            cur.append(ch)
    if cur:
        words.append("".join(cur))
    return words


def affected_directories(command: str, cwd: str) -> list[str]:
    """Directories named by a command's path-like arguments (globs cut to their parent)."""
    out: list[str] = []
    first = True
    for word in _words(command):
        if word in _SEPARATORS:
            first = True
            continue
        if first:
            first = False
            continue
        if word.startswith("-") or "=" in word.split("/", 1)[0]:
            continue
        if not ("/" in word or word.startswith((".", "~")) or _GLOB & set(word)):
            continue
        cut = word
        if _GLOB & set(word):
            cut = os.path.dirname(word.split("*")[0].split("?")[0].split("[")[0]) or "."
        resolved, _ = resolve_path(cut, cwd)
        if (cut.endswith("/") or os.path.isdir(resolved) or cut != word) and resolved not in out:
            out.append(resolved)
    return out


def _add_file_keys(target: dict[str, Any], source: dict[str, Any], cwd: str) -> None:
    for key in _PATH_KEYS:
        raw = source.get(key)
        if isinstance(raw, str) and raw:
            resolved, is_link = resolve_path(raw, cwd)
            target["resolved_file_path"] = resolved
            target["original_file_path"] = raw
            target["is_symlink"] = is_link
            return


def preprocess(raw: dict[str, Any]) -> dict[str, Any]:
    """The Rego input for a Claude-style payload (tool_name / tool_input)."""
    doc = dict(raw)
    tool_input = raw.get("tool_input")
    if not isinstance(tool_input, dict):
        return doc
    cwd = raw.get("cwd") if isinstance(raw.get("cwd"), str) else ""
    tool_input = dict(tool_input)
    doc["tool_input"] = tool_input
    tool = raw.get("tool_name") if isinstance(raw.get("tool_name"), str) else None
    command = tool_input.get("command")
    if tool in SHELL_TOOLS and isinstance(command, str):
        tool_input["command"] = normalize_whitespace(command)
        doc["affected_parent_directories"] = affected_directories(tool_input["command"], cwd or "")
    _add_file_keys(doc, tool_input, cwd or "")
    edits = tool_input.get("edits")
    if isinstance(edits, list):
        new_edits = []
        for edit in edits:
            if isinstance(edit, dict):
                edit = dict(edit)
                _add_file_keys(edit, {"file_path": tool_input.get("file_path"), **edit}, cwd or "")
            new_edits.append(edit)
        tool_input["edits"] = new_edits
    if tool == "Write" and isinstance(tool_input.get("content"), str):
        tool_input["new_string"] = tool_input["content"]
    return doc


def action_input(action: Action, cwd: str) -> dict[str, Any]:
    """`input.watchdog.action`: the normalized action with Cupcake's preprocessing applied to
    it, for every harness alike (the command's whitespace collapsed, paths resolved)."""
    doc = action.as_input()
    if action.tool_class == "shell" and isinstance(action.command, str):
        doc["command"] = normalize_whitespace(action.command)
        doc["affected_parent_directories"] = affected_directories(doc["command"], cwd or "")
    doc["resolved_paths"] = [resolve_path(p, cwd or "")[0] for p in action.paths]
    return doc
