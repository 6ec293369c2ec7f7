"""The parts of Cupcake's `rulebook.yml` that change compilation: which builtins are enabled.

Every builtin is disabled unless `enabled: true` (Cupcake's code, whatever its docs say). Two
builtins have aliases. Read only when a bundle is rebuilt (PyYAML is imported here).
"""

from __future__ import annotations

from typing import Any, NamedTuple

ALIASES = {
    "always_inject_on_prompt": "claude_code_always_inject_on_prompt",
    "enforce_full_file_read": "claude_code_enforce_full_file_read",
}


class Rulebook(NamedTuple):
    enabled_builtins: tuple[str, ...]  # canonical names
    builtin_config: dict[str, Any]  # canonical name -> its config mapping
    data: dict[str, Any]  # the whole document, for signals and watchdog settings
    problems: tuple[tuple[int, str], ...]


def parse(text: str) -> Rulebook:
    import yaml

    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        return Rulebook((), {}, {}, ((line, f"rulebook.yml is not valid YAML: {exc}"),))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Rulebook((), {}, {}, ((1, "rulebook.yml must be a YAML mapping"),))
    builtins = data.get("builtins") or {}
    if not isinstance(builtins, dict):
        return Rulebook((), {}, data, ((1, "rulebook.yml: 'builtins' must be a mapping"),))
    enabled: list[str] = []
    config: dict[str, Any] = {}
    for name, conf in builtins.items():
        canonical = ALIASES.get(str(name), str(name))
        if isinstance(conf, dict) and conf.get("enabled") is True:
            enabled.append(canonical)
            config[canonical] = conf
    return Rulebook(tuple(enabled), config, data, ())


def file_enabled(stem: str, enabled: tuple[str, ...]) -> bool:
    """A file in a `builtins/` folder loads only when its stem names an enabled builtin."""
    return ALIASES.get(stem, stem) in enabled
