"""YAML as Cupcake's serde_yaml reads it, for rulebook.yml and `# METADATA` blocks.

One document of plain JSON values (what the manifest stores): dates stay text, values JSON
cannot hold are refused, depth and alias expansion are bounded, and every failure is a
`yaml.MarkedYAMLError` whose mark gives the line to fix (`yaml_problem` turns it into a line
and a one-line message). Runs only when a bundle is (re)built, so it may import PyYAML.
"""

from __future__ import annotations

from typing import Any

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
