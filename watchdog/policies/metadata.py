"""A policy file's package and `# METADATA` routing, read exactly as Cupcake reads them.

The first line equal to `# METADATA` (after trimming) starts the block; each following line
that starts with `#` loses the `#` and one space; the first other line ends it; only the first
block counts. The block is YAML; `custom.routing` holds `required_events`, `required_tools` and
`required_signals`. Runs only when a bundle is (re)built, so it may import PyYAML.

`read_yaml` is also the rulebook's reader: one YAML document as plain JSON values (what the
manifest stores), or a `yaml.MarkedYAMLError` whose mark gives the line to fix.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

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


#: A document nested deeper, or expanding (through aliases) to more values, is refused: what
#: it holds goes into the manifest as JSON, which a recursive alias or a "billion laughs"
#: document would make endless, and Python's json would overflow its stack on the depth.
MAX_YAML_DEPTH = 100
MAX_YAML_VALUES = 100_000
_JSON_TAGS = {
    "tag:yaml.org,2002:binary": "!!binary", "tag:yaml.org,2002:set": "!!set",
    "tag:yaml.org,2002:omap": "!!omap", "tag:yaml.org,2002:pairs": "!!pairs",
}

_LOADER: Any = None


def _loader() -> Any:
    """libyaml's safe loader when present (4x faster on a cold compile), else PyYAML's, with
    Cupcake's reading of scalars: serde_yaml has no timestamps, so `2024-01-01` stays a string;
    values JSON cannot hold (`!!binary`, `!!set`, ...) and over-long integers are errors."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc,valid-type]
        pass

    def as_text(loader: Any, node: Any) -> Any:
        return loader.construct_scalar(node)

    def refuse(loader: Any, node: Any) -> Any:
        raise yaml.constructor.ConstructorError(
            None, None, f"{_JSON_TAGS[node.tag]} values are not supported; write a plain "
            "string, list or mapping", node.start_mark)

    def integer(loader: Any, node: Any) -> Any:
        try:
            return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
        except ValueError:  # more than 4300 digits: Python refuses to convert it
            raise yaml.constructor.ConstructorError(
                None, None, "this integer is too long; use a smaller number",
                node.start_mark) from None

    Loader.add_constructor("tag:yaml.org,2002:timestamp", as_text)
    Loader.add_constructor("tag:yaml.org,2002:int", integer)
    for tag in _JSON_TAGS:
        Loader.add_constructor(tag, refuse)
    _LOADER = Loader
    return Loader


def _check_node(node: Any, depth: int, budget: list[int]) -> None:
    """Refuse what would not survive as JSON: too deep (a recursive alias is endless), too
    many values once aliases are expanded, or text that is not Unicode (a lone surrogate)."""
    import yaml

    budget[0] -= 1
    problem = None
    if depth > MAX_YAML_DEPTH:
        problem = (f"nested deeper than {MAX_YAML_DEPTH} levels; flatten it (an alias inside "
                   "its own anchor nests without end)")
    elif budget[0] < 0:
        problem = f"more than {MAX_YAML_VALUES} values once aliases are expanded; use fewer"
    elif isinstance(node, yaml.ScalarNode):
        try:
            node.value.encode("utf-8")
        except UnicodeEncodeError:
            problem = "this text holds a lone surrogate, which is not Unicode; remove it"
    if problem is not None:
        raise yaml.MarkedYAMLError(problem=problem, problem_mark=node.start_mark)
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            _check_node(child, depth + 1, budget)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _check_node(key, depth + 1, budget)
            _check_node(value, depth + 1, budget)


def read_yaml(text: str) -> tuple[Any, Any]:
    """(root node, value) of the one YAML document in `text`; (None, None) when it is empty.

    Raises `yaml.YAMLError` (a `MarkedYAMLError` when the place is known) for anything that is
    not one document of plain JSON values; `yaml_problem` turns it into a line and a message.
    """
    import yaml

    loader = _loader()(text)
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return None, None
            _check_node(node, 0, [MAX_YAML_VALUES])
            return node, loader.construct_document(node)
        except RecursionError:  # PyYAML's pure-Python parser on deep nesting
            raise yaml.YAMLError(f"nested deeper than {MAX_YAML_DEPTH} levels") from None
        except yaml.reader.ReaderError as exc:  # a control character: it has a position only
            where = min(exc.position, len(text))
            line = text.count("\n", 0, where)
            mark = yaml.Mark("<text>", where, line, where - text.rfind("\n", 0, where) - 1,
                             None, 0)
            what = (f"unacceptable character #x{exc.character:04x}"
                    if isinstance(exc.character, int) else "unacceptable character")
            raise yaml.MarkedYAMLError(problem=f"{what}: {exc.reason}",
                                       problem_mark=mark) from None
    finally:
        loader.dispose()


def printable(text: str) -> str:
    """`text` with newlines and other unprintable characters escaped (`\\n`), so a name from
    the file keeps a problem on its one `file:line: message` line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def yaml_problem(exc: Exception, what: str, first_line: int = 1) -> tuple[int, str]:
    """The line of a `read_yaml` error (the text's first line being `first_line`) and a
    one-line message: `<what> is not valid YAML, column <n>: <why>`."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    text = ", ".join(str(p) for p in (context, problem) if p) or str(exc).strip() or "error"
    text = " ".join(text.split())  # PyYAML's messages span lines
    if mark is None:
        return first_line, f"{what} is not valid YAML: {text}"
    return first_line + mark.line, f"{what} is not valid YAML, column {mark.column + 1}: {text}"


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
