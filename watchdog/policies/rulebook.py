"""Cupcake's `rulebook.yml`: which builtins are enabled, their `input.builtin_config`, signals.

Read exactly as Cupcake v0.5.2 reads it (`engine/builtins.rs`, `engine/rulebook.rs`):

- every builtin is disabled unless `enabled: true` (Cupcake's code, whatever its docs say);
  `always_inject_on_prompt` and `enforce_full_file_read` are aliases;
- an enabled builtin gets its settings, defaults filled in, at `input.builtin_config.<name>`
  in the shape Cupcake injects (`INJECTED`); `git_pre_check` and `post_edit_check` inject
  nothing, and `claude_code_always_inject_on_prompt` only `static_contexts`, when it has any;
- some builtins generate signals (`__builtin_prompt_context_<i>`, `__builtin_git_check_<i>`,
  `__builtin_post_edit_<ext>`), merged under the rulebook's own `signals:` and the files found in
  `<root>/signals/`, which win over them.

Where Cupcake refuses to start (a YAML type error, an enabled `protected_paths` without paths,
an extension with a dot, ...), watchdog reports a problem with the file's line (`watchdog verify`
exits 1; the hook logs it) and leaves that builtin disabled; the other builtins still load.
Unknown builtin names and keys are warnings: Cupcake ignores them silently, which hides typos.
Read only when a bundle is rebuilt (PyYAML is imported here).
"""

from __future__ import annotations

import difflib
import os
from typing import Any, NamedTuple

from watchdog.policies.yaml_reader import printable, read_yaml, yaml_problem

ALIASES = {
    "always_inject_on_prompt": "claude_code_always_inject_on_prompt",
    "enforce_full_file_read": "claude_code_enforce_full_file_read",
}
#: The builtins of Cupcake v0.5.2; the last three are meant for the global rulebook.
BUILTINS = (
    "claude_code_always_inject_on_prompt", "git_pre_check", "post_edit_check",
    "rulebook_security_guardrails", "protected_paths", "git_block_no_verify",
    "claude_code_enforce_full_file_read",
    "system_protection", "sensitive_data_protection", "cupcake_exec_protection",
)
MESSAGES = {
    "rulebook_security_guardrails": "Cupcake configuration files are protected from modification",
    "protected_paths": "This path is read-only and cannot be modified",
    "git_block_no_verify":
        "Git operations with --no-verify are not permitted. Commit hooks must run.",
    "claude_code_enforce_full_file_read":
        "Please read the entire file first (files under 2000 lines must be read completely)",
    "system_protection": "Access to critical system path blocked",
    "sensitive_data_protection": "Access to potentially sensitive data blocked",
    "cupcake_exec_protection": "Direct execution of Cupcake binary is not permitted",
}
#: Keys of `input.builtin_config.<name>` besides `message`, with their defaults.
LIST_KEYS = {
    "rulebook_security_guardrails": ("protected_paths", [".cupcake/"]),
    "protected_paths": ("paths", []),
    "git_block_no_verify": ("exceptions", []),
    "system_protection": ("additional_paths", []),
    "sensitive_data_protection": ("additional_patterns", []),
    "cupcake_exec_protection": ("allowed_commands", []),
}
KEYS = {
    **{name: {"enabled", "message", key} for name, (key, _) in LIST_KEYS.items()},
    "claude_code_always_inject_on_prompt": {"enabled", "context"},
    "git_pre_check": {"enabled", "checks"},
    "post_edit_check": {"enabled", "by_extension"},
    "claude_code_enforce_full_file_read": {"enabled", "message", "max_lines"},
}
DEFAULT_MAX_LINES = 2000
SIGNAL_TIMEOUT_S = 5  # a rulebook or discovered signal without timeout_seconds
GIT_CHECK_TIMEOUT_S = 30
POST_EDIT_TIMEOUT_S = 10
PROMPT_COMMAND_TIMEOUT_S = 5
PROMPT_FILE_TIMEOUT_S = 2
MAX_TIMEOUT_S = 2**64 - 1  # Cupcake reads timeout_seconds as a u64 and refuses larger ones
#: `sh -c` cannot take a NUL byte (a `"\0"` escape in YAML): the signal could never start.
NUL_COMMAND = "the command contains a NUL byte (\\0), which no shell command can hold; remove it"

Problems = list[tuple[int, str]]


class Rulebook(NamedTuple):
    enabled_builtins: tuple[str, ...]  # canonical names
    builtin_config: dict[str, Any]  # canonical name -> what Cupcake injects for it
    data: dict[str, Any]  # the whole document, for watchdog and telemetry settings
    problems: tuple[tuple[int, str], ...]  # (line, message): Cupcake would not start
    warnings: tuple[tuple[int, str], ...] = ()
    #: signal name -> {"command": str, "timeout_seconds": int}, for the signals runner
    signals: dict[str, dict[str, Any]] = {}
    #: canonical builtin name -> the signals it generated (the runner adds these to its policy,
    #: which Cupcake's `__builtin_<package>_` prefix match misses for prompt contexts and checks)
    builtin_signals: dict[str, tuple[str, ...]] = {}


class _Lines:
    """Line numbers of YAML nodes, looked up by path (`builtins`, `protected_paths`, `paths`, 0)."""

    def __init__(self, root: Any) -> None:
        self.root = root

    def __call__(self, *path: str | int) -> int:
        import yaml

        node, line = self.root, 1
        if node is not None:
            line = node.start_mark.line + 1
        for step in path:
            found = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == step:
                        found, line = value, key.start_mark.line + 1
                        break
            elif (
                isinstance(node, yaml.SequenceNode) and isinstance(step, int)
                and 0 <= step < len(node.value)
            ):
                found = node.value[step]
                line = found.start_mark.line + 1
            if found is None:
                break
            node = found
        return line


def _nearest(name: str, options: Any) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _message(name: str, key: str, conf: dict[str, Any], where: Any, out: Problems) -> Any:
    value = conf.get("message", MESSAGES[name])
    if not isinstance(value, str):
        out.append((where(key, "message"), f"builtins.{key}.message must be a string"))
    return value


def _check_command(conf: Any, label: str, line: int, out: Problems) -> str | None:
    """A `{command, message}` entry of git_pre_check or post_edit_check; both are required."""
    if not isinstance(conf, dict):
        out.append((line, f"{label} must be a mapping with 'command' and 'message'"))
        return None
    bad = [k for k in ("command", "message") if not isinstance(conf.get(k), str)]
    if bad:
        out.append((line, f"{label}: '{bad[0]}' is required and must be a string"))
        return None
    command: str = conf["command"]
    if not command.strip():
        out.append((line, f"{label}: command cannot be empty"))
        return None
    if "\0" in command:
        out.append((line, f"{label}: {NUL_COMMAND}"))
        return None
    return command


def _shell_quote(path: str) -> str:
    # Cupcake writes `cat '<path>'` with ' escaped as \', which sh does not accept inside
    # single quotes; the usual '\'' keeps such paths working and leaves every other path as is.
    return "'" + path.replace("'", "'\\''") + "'"


def _builtin(
    name: str, key: str, conf: dict[str, Any], enabled: bool, where: Any, out: Problems
) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """Validate one builtin's settings; its injected config (None: nothing) and signals."""
    signals: dict[str, dict[str, Any]] = {}
    if name in LIST_KEYS:
        list_key, default = LIST_KEYS[name]
        message = _message(name, key, conf, where, out)
        values = conf.get(list_key, default)
        if not _is_str_list(values):
            text = f"builtins.{key}.{list_key} must be a list of strings"
            out.append((where(key, list_key), text))
            return None, signals
        if name in ("protected_paths", "rulebook_security_guardrails"):
            if enabled and not values:
                what = "paths" if name == "protected_paths" else "protected paths"
                out.append((where(key, list_key), f"{key}: enabled but no {what} configured"))
            for i, value in enumerate(values):
                if not value.strip():
                    line = where(key, list_key, i)
                    out.append((line, f"{key}.{list_key}[{i}]: path cannot be empty"))
        return {"message": message, list_key: list(values)}, signals
    if name == "claude_code_enforce_full_file_read":
        message = _message(name, key, conf, where, out)
        max_lines = conf.get("max_lines", DEFAULT_MAX_LINES)
        if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 0:
            text = f"builtins.{key}.max_lines must be a positive integer"
            out.append((where(key, "max_lines"), text))
        elif enabled and max_lines == 0:
            out.append((where(key, "max_lines"), f"{key}: max_lines cannot be 0"))
        return {"message": message, "max_lines": max_lines}, signals
    if name == "claude_code_always_inject_on_prompt":
        context = conf.get("context", [])
        if not isinstance(context, list):
            out.append((where(key, "context"), f"builtins.{key}.context must be a list"))
            return None, signals
        if enabled and not context:
            out.append((where(key, "context"), f"{key}: enabled but no context configured"))
        static: list[str] = []
        for i, source in enumerate(context):
            line, label = where(key, "context", i), f"{key}.context[{i}]"
            if isinstance(source, str):
                static.append(source)
            elif not isinstance(source, dict) or any(
                not isinstance(source.get(k), str | None) for k in ("file", "command")
            ):
                out.append((line, f"{label}: must be a string, {{file: path}} or {{command: cmd}}"))
            elif any("\0" in (source.get(k) or "") for k in ("file", "command")):
                out.append((line, f"{label}: {NUL_COMMAND}"))
            elif isinstance(source.get("command"), str):  # command wins over file, as in Cupcake
                signals[f"__builtin_prompt_context_{i}"] = {
                    "command": source["command"], "timeout_seconds": PROMPT_COMMAND_TIMEOUT_S}
            elif isinstance(source.get("file"), str):
                signals[f"__builtin_prompt_context_{i}"] = {
                    "command": f"cat {_shell_quote(source['file'])}",
                    "timeout_seconds": PROMPT_FILE_TIMEOUT_S}
            else:
                out.append((line, f"{label}: dynamic source must have either 'file' or 'command'"))
        return ({"static_contexts": static} if static else None), signals
    if name == "git_pre_check":
        checks = conf.get("checks", [])
        if not isinstance(checks, list):
            out.append((where(key, "checks"), f"builtins.{key}.checks must be a list"))
            return None, signals
        if enabled and not checks:
            out.append((where(key, "checks"), f"{key}: enabled but no checks configured"))
        for i, check in enumerate(checks):
            command = _check_command(check, f"{key}.checks[{i}]", where(key, "checks", i), out)
            if command is not None:
                signals[f"__builtin_git_check_{i}"] = {
                    "command": command, "timeout_seconds": GIT_CHECK_TIMEOUT_S}
        return None, signals
    # post_edit_check
    by_ext = conf.get("by_extension", {})
    if not isinstance(by_ext, dict):
        out.append((where(key, "by_extension"), f"builtins.{key}.by_extension must be a mapping"))
        return None, signals
    if enabled and not by_ext:
        out.append((where(key, "by_extension"), f"{key}: enabled but no extensions configured"))
    for ext, check in by_ext.items():
        ext = str(ext)
        line, label = where(key, "by_extension", ext), f"{key}.by_extension.{ext}"
        command = _check_command(check, label, line, out)
        if "." in ext:
            out.append((line, f"{label}: extension should not include dot (use 'rs' not '.rs')"))
        elif command is not None:
            signals[f"__builtin_post_edit_{ext}"] = {
                "command": command, "timeout_seconds": POST_EDIT_TIMEOUT_S}
    return None, signals


def _signals(data: dict[str, Any], where: Any, out: Problems) -> dict[str, dict[str, Any]]:
    raw = data.get("signals") or {}
    if not isinstance(raw, dict):
        out.append((where("signals"), "rulebook.yml: 'signals' must be a mapping"))
        return {}
    signals: dict[str, dict[str, Any]] = {}
    for name, conf in raw.items():
        name = str(name)
        line = where("signals", name)
        if not isinstance(conf, dict) or not isinstance(conf.get("command"), str):
            out.append((line, f"signals.{name}: 'command' is required and must be a string"))
            continue
        if "\0" in conf["command"]:
            out.append((line, f"signals.{name}: {NUL_COMMAND}"))
            continue
        timeout = conf.get("timeout_seconds", SIGNAL_TIMEOUT_S)
        if (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0
                or timeout > MAX_TIMEOUT_S):
            out.append((line, f"signals.{name}.timeout_seconds must be a positive integer"))
            continue
        signals[name] = {"command": conf["command"], "timeout_seconds": timeout}
    return signals


def discover_signals(signals_dir: str) -> dict[str, dict[str, Any]]:
    """Cupcake's convention: every non-hidden file in `signals/` is the signal `<file stem>`."""
    found: dict[str, dict[str, Any]] = {}
    try:
        entries = sorted(os.scandir(signals_dir), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith("."):
            continue
        stem = os.path.splitext(entry.name)[0] or entry.name
        found.setdefault(stem, {"command": entry.path, "timeout_seconds": SIGNAL_TIMEOUT_S})
    return found


def parse(text: str, signals_dir: str | None = None) -> Rulebook:
    """The rulebook in `text`; with `signals_dir`, also the signal scripts found there."""
    import yaml

    discovered = discover_signals(signals_dir) if signals_dir else {}
    try:
        node, data = read_yaml(text) if text.strip() else (None, {})
    except yaml.YAMLError as exc:
        return Rulebook((), {}, {}, (yaml_problem(exc, "rulebook.yml"),), signals=discovered)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Rulebook((), {}, {}, ((1, "rulebook.yml must be a YAML mapping"),),
                        signals=discovered)
    where = _Lines(node)
    problems: Problems = []
    warnings: Problems = []
    signals = _signals(data, where, problems)
    builtins = data.get("builtins") or {}
    if not isinstance(builtins, dict):
        problems.append((where("builtins"), "rulebook.yml: 'builtins' must be a mapping"))
        builtins = {}
    seen: dict[str, str] = {}
    enabled: list[str] = []
    config: dict[str, Any] = {}
    generated: dict[str, dict[str, Any]] = {}
    builtin_signals: dict[str, tuple[str, ...]] = {}
    for raw_key, conf in builtins.items():
        key = str(raw_key)
        name = ALIASES.get(key, key)
        if name not in BUILTINS:
            hint = _nearest(key, [*BUILTINS, *ALIASES])
            warnings.append((where("builtins", key), f"unknown builtin '{key}'{hint}; ignored"))
            continue
        if name in seen:
            text = f"builtins.{key} and builtins.{seen[name]} configure the same builtin"
            problems.append((where("builtins", key), text))
            enabled = [n for n in enabled if n != name]
            config.pop(name, None)
            builtin_signals.pop(name, None)
            continue
        seen[name] = key
        if conf is None:
            continue
        if not isinstance(conf, dict):
            problems.append((where("builtins", key), f"builtins.{key} must be a mapping"))
            continue
        for extra in sorted(set(map(str, conf)) - KEYS[name]):
            hint = _nearest(extra, KEYS[name])
            text = f"unknown key '{extra}' in builtins.{key}{hint}; ignored"
            warnings.append((where("builtins", key, extra), text))
        on = conf.get("enabled", False)
        if not isinstance(on, bool):
            problems.append((where("builtins", key, "enabled"),
                             f"builtins.{key}.enabled must be true or false"))
            on = False
        found: Problems = []
        injected, made = _builtin(name, key, conf, on, lambda *p: where("builtins", *p), found)
        problems += found
        if not on or found:
            continue
        enabled.append(name)
        if injected is not None:
            config[name] = injected
        if made:
            builtin_signals[name] = tuple(made)
            generated.update(made)
    merged = {**generated, **discovered, **signals}  # rulebook entries, then files, win
    return Rulebook(tuple(enabled), config, data,
                    tuple((line, printable(text)) for line, text in problems),
                    tuple((line, printable(text)) for line, text in warnings), merged,
                    builtin_signals)


def read(path: str, signals_dir: str | None = None) -> Rulebook:
    """The rulebook file at `path` (none there: an empty one); a file that cannot be read or
    is not UTF-8 is a problem at its line, as Cupcake would not start with it either."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raw = b""
    except OSError as exc:
        why = f"rulebook.yml cannot be read ({exc.strerror}); fix its permissions"
        return Rulebook((), {}, {}, ((1, why),),
                        signals=discover_signals(signals_dir) if signals_dir else {})
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        why = (f"rulebook.yml is not UTF-8 (byte 0x{raw[exc.start]:02x}, column {column}); "
               "save it as UTF-8")
        return Rulebook((), {}, {}, ((line, why),),
                        signals=discover_signals(signals_dir) if signals_dir else {})
    return parse(text, signals_dir)


def load(root_path: str) -> Rulebook:
    """A root's `rulebook.yml` (when present) with the scripts in its `signals/` folder."""
    from watchdog.policies.layout import RULEBOOK

    return read(os.path.join(root_path, RULEBOOK), os.path.join(root_path, "signals"))


def file_enabled(stem: str, enabled: tuple[str, ...]) -> bool:
    """A file in a `builtins/` folder loads only when its stem names an enabled builtin."""
    return ALIASES.get(stem, stem) in enabled
