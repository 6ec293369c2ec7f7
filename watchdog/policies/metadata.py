"""A policy file's package and `# METADATA` routing, read exactly as Cupcake reads them.

The first line equal to `# METADATA` (after trimming) starts the block; each following line
that starts with `#` loses the `#` and one space; the first other line ends it; only the first
block counts. The block is YAML; `custom.routing` holds `required_events`, `required_tools` and
`required_signals`. Runs only when a bundle is (re)built, so it may import PyYAML.

The block is read by yaml_reader.read_yaml, as the rulebook is.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from watchdog.policies.yaml_reader import printable, read_yaml, yaml_problem

PACKAGE_RE = re.compile(r"(?m)^package\s+([a-zA-Z0-9._]+)")
#: Go-regexp syntax OPA accepts and rego-cpp does not: the regex builtin is then undefined, so
#: the rule silently never fires.
UNSUPPORTED_REGEX = re.compile(r"\(\?[imsU-]+[:)]|\(\?P<")

#: Cupcake's list; other names only warn (Claude Code adds events often).
KNOWN_EVENTS = frozenset(
    {
        "PreToolUse", "PostToolUse", "UserPromptSubmit", "Stop", "SubagentStop", "Notification",
        "PreCompact", "SessionStart", "beforeShellExecution", "beforeMCPExecution",
        "afterFileEdit", "beforeReadFile", "beforeSubmitPrompt", "stop",
        # Claude Code events Cupcake does not list yet, accepted without a warning here.
        "PermissionRequest", "PermissionDenied", "PostToolUseFailure", "PostToolBatch",
        "SessionEnd", "SubagentStart", "UserPromptExpansion", "StopFailure", "PostCompact",
        "Setup", "TaskCreated", "TaskCompleted", "TeammateIdle", "Elicitation",
        "ElicitationResult", "ConfigChange", "InstructionsLoaded", "CwdChanged", "FileChanged",
        "DirectoryAdded", "WorktreeCreate", "WorktreeRemove", "MessageDisplay",
        "PreModelSwitch", "PostModelSwitch",
    }
)


class Routing(NamedTuple):
    events: tuple[str, ...]
    tools: tuple[str, ...]
    signals: tuple[str, ...]


class Metadata(NamedTuple):
    package: str | None
    package_line: int
    block_line: int  # line of `# METADATA`, 0 when absent
    data: dict[str, Any] | None  # the parsed YAML block
    routing: Routing | None
    problems: tuple[tuple[int, str], ...]  # (line, message): the file is skipped
    warnings: tuple[tuple[int, str], ...]  # (line, message): reported, file kept


def _block(lines: list[str]) -> tuple[int, str] | None:
    for i, line in enumerate(lines):
        if line.strip() == "# METADATA":
            body = []
            for follow in lines[i + 1 :]:
                if not follow.startswith("#"):
                    break
                text = follow[1:]
                body.append(text[1:] if text.startswith(" ") else text)
            return i + 1, "\n".join(body)
    return None


def source_lines(source: str) -> list[str]:
    """The lines as Cupcake (Rust's `str::lines`) and an editor count them: split at `\\n`
    only, a trailing `\\r` dropped. `str.splitlines` also splits at `\\f`, `\\x85`, U+2028...,
    which would end a METADATA block early and number the lines after it wrongly."""
    return [line.removesuffix("\r") for line in source.split("\n")]


def _str_list(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def is_system(package: str) -> bool:
    return package == "cupcake.system" or package.startswith(
        ("cupcake.system.", "cupcake.global.system")
    )


def parse(source: str) -> Metadata:
    """Package, METADATA and routing of one .rego source, with what is wrong in it."""
    import yaml

    match = PACKAGE_RE.search(source)
    package = match.group(1) if match else None
    package_line = source.count("\n", 0, match.start()) + 1 if match else 1
    problems: list[tuple[int, str]] = []
    warnings: list[tuple[int, str]] = []
    lines = source_lines(source)
    for lineno, text_line in enumerate(lines, 1):
        if not text_line.lstrip().startswith("#") and UNSUPPORTED_REGEX.search(text_line):
            warnings.append(
                (lineno, "regex flags like (?i) and named groups (?P<..>) are not supported by "
                 "rego-cpp: this regex never matches. Use lower() on the input, or plain groups")
            )
    if package is None:
        problems.append(
            (1, "no package declaration; policies use `package cupcake.policies.<name>`")
        )
    found = _block(lines)
    data: dict[str, Any] | None = None
    routing: Routing | None = None
    block_line = 0
    if found is not None:
        block_line, text = found
        try:
            loaded = read_yaml(text)[1] if text.strip() else {}
        except yaml.YAMLError as exc:
            problems.append(yaml_problem(exc, "METADATA", block_line + 1))
            loaded = None
        if loaded is not None and not isinstance(loaded, dict):
            problems.append((block_line, "METADATA must be a YAML mapping"))
        elif isinstance(loaded, dict):
            data = loaded
    custom = data.get("custom") if data else None
    raw_routing = custom.get("routing") if isinstance(custom, dict) else None
    if isinstance(raw_routing, dict):
        events = _str_list(raw_routing.get("required_events"))
        tools = _str_list(raw_routing.get("required_tools"))
        signals = _str_list(raw_routing.get("required_signals"))
        if events is None or tools is None or signals is None:
            problems.append((block_line, "routing lists must be lists of strings"))
        else:
            routing = Routing(events, tools, signals)
    elif raw_routing is not None:
        problems.append((block_line, "custom.routing must be a mapping"))
    if package is not None and not problems:
        system = is_system(package)
        if system and routing is not None and (routing.events or routing.tools or routing.signals):
            problems.append(
                (block_line, "system policies must not declare required events, tools or signals")
            )
        elif not system and package.startswith("cupcake.policies"):
            if found is None:
                problems.append(
                    (package_line, "policy has no # METADATA block with custom.routing; "
                     "Cupcake skips it, so it is not loaded")
                )
            elif routing is None and not problems:
                problems.append(
                    (block_line, "policy METADATA has no custom.routing.required_events; "
                     "Cupcake skips it, so it is not loaded")
                )
            elif routing is not None and routing.tools and not routing.events:
                problems.append((block_line, "required_tools needs required_events"))
            elif routing is not None:
                for ev in routing.events:
                    if ev not in KNOWN_EVENTS:
                        warnings.append((block_line, f"unknown event name '{ev}' in routing"))
                if "*" in routing.tools:
                    warnings.append(
                        (block_line, "required_tools ['*'] only matches tools that another "
                         "policy names (Cupcake's routing); leave required_tools out to match "
                         "every tool")
                    )
    return Metadata(
        package, package_line, block_line, data, routing,
        tuple((line, printable(text)) for line, text in problems),
        tuple((line, printable(text)) for line, text in warnings),
    )
