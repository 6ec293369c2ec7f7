"""`input.watchdog.shell`: a shell command as the commands it runs, for policies.

A policy that greps `tool_input.command` for `rm -rf` misses `sudo -u x bash -c 'rm -rf ~'`,
`find . | xargs rm` and `eval "$cmd"`'s literal cousins. Here the command is parsed with a real
shell parser (bashlex, a port of bash's own grammar) into every simple command it contains,
through pipes, `&&`, `||`, `;`, `&`, subshells, `{ }` groups, loops, conditionals, functions,
`$(...)`, backticks and `<(...)`, and wrappers are unwrapped into the command they run:
`bash|sh|zsh|dash|ksh -c STRING` and `eval ARGS` (their string is parsed in turn), a shell fed a
heredoc (`bash <<EOF`), and `env`, `sudo`, `doas`, `nohup`, `timeout`, `nice`, `time`, `xargs`,
`exec`, `command`, `stdbuf` (their own options skipped). Each command gives:

    {"argv": ["rm", "-rf", "/etc/x"],
     "path_args": [{"arg": "/etc/x", "path": "/etc/x", "class": "system"}],
     "redirects": [{"op": ">", "target": "/tmp/o", "path": "/tmp/o", "class": "temp"}],
     "wrapped_by": ["sudo", "bash -c"]}

Path classes: the most specific of `project` (the event's cwd, or the git work tree above
it), `temp` (/tmp, /var/tmp, /dev/shm, macOS's /private/var/folders) and `home`; else `system`
(/, /etc, /usr, /bin, /var, /dev, ...), else `other`; /dev/null and the std streams are
`other`, so `2>/dev/null` is not a system write. A file argument is a non-option word (or an
option's `=value`) that contains `/`, starts with `~` or `.`, or names something that exists in
the cwd; `~` and `$HOME` are expanded, `cd DIR` moves the cwd for the commands after it,
symlinks are resolved.
Redirects of a wrapper belong to the commands it runs.

Syntax bashlex does not handle (`[[ ]]`, `case`, the `time` keyword, ...) gives `parse_error`
and commands from a whitespace split at `;`, `&&`, `||`, `|` and `&`, still unwrapped.
`parse` never raises.
"""

from __future__ import annotations

import os
import re
from typing import Any

SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "fish"})
#: wrapper -> (short options that take a value, long options that take a value)
WRAPPERS: dict[str, tuple[str, frozenset[str]]] = {
    "sudo": ("CDghpRrTtUu", frozenset({"--chdir", "--close-from", "--group", "--host",
                                       "--prompt", "--role", "--type", "--user",
                                       "--other-user", "--command-timeout", "--chroot"})),
    "doas": ("Cu", frozenset()),
    "env": ("CSu", frozenset({"--chdir", "--split-string", "--unset"})),
    "nohup": ("", frozenset()),
    "timeout": ("ks", frozenset({"--kill-after", "--signal"})),
    "nice": ("n", frozenset({"--adjustment"})),
    "time": ("fo", frozenset({"--format", "--output"})),
    "xargs": ("adEeIiLlnPs", frozenset({"--arg-file", "--delimiter", "--eof", "--replace",
                                        "--max-lines", "--max-args", "--max-procs",
                                        "--max-chars", "--process-slot-var"})),
    "exec": ("a", frozenset()),
    "command": ("", frozenset()),
    "stdbuf": ("ioe", frozenset({"--input", "--output", "--error"})),
}
#: options whose value is glued on (`-i[R]`, `-e[EOF]`, `-l[N]`): never the next word
_OPTIONAL_VALUE = {"xargs": "eil"}
TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/private/tmp", "/private/var/tmp",
             "/private/var/folders", "/var/folders")
SYSTEM_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot",
               "/sys", "/proc", "/dev", "/var", "/opt", "/root", "/srv", "/run", "/snap",
               "/System", "/Library", "/Applications", "/private/etc", "/private/var")
HARMLESS = frozenset({"/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/tty",
                      "/dev/zero", "/dev/random", "/dev/urandom"})
MAX_DEPTH = 8  # nested bash -c / eval strings followed
_FD_OPS = frozenset({">&", "<&"})
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "|&"})
# bashlex (0.18) rejects heredocs whose delimiter is quoted (`<<'EOF'`, the way Claude Code
# writes commit messages); the quotes only turn expansion off, which bashlex never does.
_QUOTED_HEREDOC = re.compile(r"<<(-?)[ \t]*(?:'([^'\n]+)'|\"([^\"\n]+)\"|\\(\w+))")


class _Context:
    def __init__(self, cwd: str, home: str) -> None:
        self.cwd = cwd
        self.home = home
        self.project = _project_root(cwd, home)
        self.commands: list[dict[str, Any]] = []
        self.errors: list[str] = []


def _project_root(cwd: str, home: str) -> str | None:
    """The git work tree holding cwd, else cwd; None when that would be `/` or home itself."""
    if not cwd or not os.path.isabs(cwd):
        return None
    cwd = os.path.realpath(cwd)
    current = cwd
    for _ in range(40):
        if os.path.exists(os.path.join(current, ".git")):
            cwd = current
            break
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if cwd == "/" or (home and cwd == os.path.realpath(home)):
        return None
    return cwd


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def classify(path: str, project: str | None, home: str) -> str:
    """The class of an absolute, resolved path (see the module docstring)."""
    if path in HARMLESS or path.startswith("/dev/fd/"):
        return "other"
    if path == "/":
        return "system"
    # The most specific folder wins: a project in ~ or in /tmp, a home in /tmp (as in tests).
    candidates = [(d, "temp") for d in TEMP_DIRS]
    if home and home != "/":
        candidates.append((os.path.realpath(home), "home"))
    if project:
        candidates.append((project, "project"))
    best = max(((len(d), cls) for d, cls in candidates if _under(path, d)), default=None)
    if best is not None:
        return best[1]
    if any(_under(path, d) for d in SYSTEM_DIRS):
        return "system"
    return "other"


def _expand(word: str, home: str) -> str:
    if word == "~" or word.startswith("~/"):
        word = home + word[1:]
    for var in ("${HOME}", "$HOME"):
        if word.startswith(var):
            word = home + word[len(var):]
    return word


def _resolve(word: str, ctx: _Context) -> dict[str, Any] | None:
    """`{"path", "class"}` for a word naming a file, else None."""
    expanded = _expand(word, ctx.home)
    if not expanded or "://" in expanded or "\0" in expanded:
        return None
    if "$" in expanded or "`" in expanded:
        return {"path": None, "class": "other"}  # an unexpanded variable: unknown location
    joined = os.path.join(ctx.cwd, expanded) if ctx.cwd else expanded
    if not os.path.isabs(joined):
        return None
    try:
        path = os.path.realpath(joined)
    except (OSError, ValueError):
        path = os.path.normpath(joined)
    return {"path": path, "class": classify(path, ctx.project, ctx.home)}


def _looks_like_path(word: str, ctx: _Context) -> bool:
    if "/" in word or word.startswith(("~", ".", "$HOME", "${HOME}")):
        return True
    try:
        return bool(ctx.cwd) and os.path.lexists(os.path.join(ctx.cwd, word))
    except (OSError, ValueError):
        return False


def _path_args(argv: list[str], ctx: _Context) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for arg in argv[1:]:
        word = arg
        if arg.startswith("-"):
            if "=" not in arg:
                continue
            word = arg.split("=", 1)[1]
        if not word or not _looks_like_path(word, ctx):
            continue
        found = _resolve(word, ctx)
        if found is not None:
            out.append({"arg": arg, **found})
    return out


def _skip_options(name: str, argv: list[str], i: int) -> int:
    """Index of the wrapped command after `argv[i:]`'s options for wrapper `name`."""
    short, long = WRAPPERS[name]
    glued = _OPTIONAL_VALUE.get(name, "")
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return i + 1
        if name == "env" and "=" in arg and not arg.startswith("-"):
            i += 1  # NAME=VALUE
            continue
        if arg.startswith("--"):
            i += 2 if ("=" not in arg and arg in long) else 1
            continue
        if arg.startswith("-") and len(arg) > 1 and not (name == "nice" and arg[1:].isdigit()):
            step = 1
            for j, ch in enumerate(arg[1:], start=1):
                if ch in glued:
                    break
                if ch in short:
                    step = 2 if j == len(arg) - 1 else 1  # the value is the next word or glued
                    break
            i += step
            continue
        if name == "nice" and arg.startswith("-"):
            i += 1
            continue
        if name == "timeout":
            return i + 1  # the duration, then the command
        return i
    return i


def _shell_script(argv: list[str]) -> tuple[str | None, bool]:
    """(the -c string, whether the shell reads a script file) for `bash [options] ...`."""
    i, has_c = 1, False
    while i < len(argv):
        arg = argv[i]
        if arg in ("--", "-"):
            i += 1
            break
        if arg in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if arg.startswith(("-", "+")) and len(arg) > 1:
            if not arg.startswith("--") and "c" in arg[1:]:
                has_c = True
            i += 1
            continue
        break
    if has_c:
        return (argv[i] if i < len(argv) else ""), False
    return None, i < len(argv)


def _emit(argv: list[str], redirects: list[dict[str, Any]], wrapped_by: list[str],
          ctx: _Context) -> None:
    ctx.commands.append({
        "argv": argv,
        "path_args": _path_args(argv, ctx),
        "redirects": redirects,
        "wrapped_by": list(wrapped_by),
    })
    if argv and argv[0] == "cd" and len(argv) == 2 and argv[1] != "-":
        found = _resolve(argv[1], ctx)
        if found is not None and found["path"]:
            ctx.cwd = found["path"]


def _unwrap(argv: list[str], redirects: list[dict[str, Any]], wrapped_by: list[str],
            heredoc: str | None, ctx: _Context, depth: int) -> None:
    """Follow wrappers down to the command that runs, then record it."""
    while argv:
        name = os.path.basename(argv[0])
        if name in SHELLS and depth < MAX_DEPTH:
            script, reads_file = _shell_script(argv)
            if script is not None:
                _parse_into(script, ctx, [*wrapped_by, f"{name} -c"], redirects, depth + 1)
                return
            if heredoc is not None and not reads_file:
                _parse_into(heredoc, ctx, [*wrapped_by, f"{name} <<"], redirects, depth + 1)
                return
            break
        if name == "eval" and depth < MAX_DEPTH:
            _parse_into(" ".join(argv[1:]), ctx, [*wrapped_by, "eval"], redirects, depth + 1)
            return
        if name in WRAPPERS:
            rest = _skip_options(name, argv, 1)
            if rest >= len(argv) or (name == "command" and {"-v", "-V"} & set(argv[1:rest])):
                break  # `sudo -v`, `env` alone, `command -v x`: the wrapper is the command
            wrapped_by = [*wrapped_by, name]
            argv = argv[rest:]
            continue
        break
    _emit(argv, redirects, wrapped_by, ctx)


def _redirect(node: Any, ctx: _Context) -> dict[str, Any]:
    op = str(node.type)
    output = node.output
    target = output.word if hasattr(output, "word") else str(output)
    entry: dict[str, Any] = {"op": op, "target": target, "path": None, "class": None}
    if op in ("<<", "<<-", "<<<") or (op in _FD_OPS and (target.isdigit() or target == "-")):
        return entry  # a heredoc delimiter, a here-string, a descriptor: no file
    found = _resolve(target, ctx)
    if found is not None:
        entry.update(found)
    return entry


def _substitutions(node: Any, ctx: _Context, wrapped_by: list[str], depth: int) -> None:
    """Commands inside a word: `$(...)`, backticks, `<(...)`."""
    for part in getattr(node, "parts", None) or []:
        kind = getattr(part, "kind", "")
        if kind in ("commandsubstitution", "processsubstitution"):
            label = "$()" if kind == "commandsubstitution" else "<()"
            _walk(part.command, ctx, [*wrapped_by, label], [], depth)
        else:
            _substitutions(part, ctx, wrapped_by, depth)


def _command(node: Any, ctx: _Context, wrapped_by: list[str],
             inherited: list[dict[str, Any]], depth: int) -> None:
    argv: list[str] = []
    redirects: list[dict[str, Any]] = []
    heredoc: str | None = None
    for part in node.parts:
        kind = part.kind
        if kind == "word":
            argv.append(part.word)
            _substitutions(part, ctx, wrapped_by, depth)
        elif kind == "assignment":
            _substitutions(part, ctx, wrapped_by, depth)
        elif kind == "redirect":
            redirects.append(_redirect(part, ctx))
            doc = getattr(part, "heredoc", None)
            if doc is not None:
                body = str(doc.value)
                heredoc = body.rsplit("\n", 1)[0] if "\n" in body else ""
            if hasattr(part.output, "word"):
                _substitutions(part.output, ctx, wrapped_by, depth)
    if argv or redirects:
        _unwrap(argv, [*redirects, *inherited], wrapped_by, heredoc, ctx, depth)


def _walk(node: Any, ctx: _Context, wrapped_by: list[str], inherited: list[dict[str, Any]],
          depth: int) -> None:
    kind = getattr(node, "kind", "")
    if kind == "command":
        _command(node, ctx, wrapped_by, inherited, depth)
        return
    redirects = [*(_redirect(r, ctx) for r in getattr(node, "redirects", None) or []),
                 *inherited]
    children = list(getattr(node, "parts", None) or []) + list(getattr(node, "list", None) or [])
    subshell = kind == "compound" and any(
        getattr(c, "kind", "") == "reservedword" and c.word == "(" for c in children)
    saved = ctx.cwd
    for child in children:
        if getattr(child, "kind", "") == "word":  # `for x in WORDS`: substitutions run
            _substitutions(child, ctx, wrapped_by, depth)
        else:
            _walk(child, ctx, wrapped_by, redirects, depth)
    if subshell:
        ctx.cwd = saved  # a subshell's `cd` does not outlive it


def _split_fallback(command: str) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    for token in command.split():
        if token in _SEPARATORS:
            groups.append([])
        else:
            groups[-1].append(token)
    return [g for g in groups if g]


def _parse_into(command: str, ctx: _Context, wrapped_by: list[str],
                inherited: list[dict[str, Any]], depth: int) -> None:
    import bashlex  # type: ignore[import-untyped]

    if not command.strip():
        return
    try:
        try:
            nodes = bashlex.parse(command)
        except bashlex.errors.ParsingError as exc:
            if "here-document" not in str(exc) or not _QUOTED_HEREDOC.search(command):
                raise
            nodes = bashlex.parse(_QUOTED_HEREDOC.sub(
                lambda m: f"<<{m.group(1)}{m.group(2) or m.group(3) or m.group(4)}", command))
    except Exception as exc:  # noqa: BLE001 - bashlex raises ParsingError, NotImplementedError, ...
        ctx.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        for argv in _split_fallback(command):
            _unwrap(argv, list(inherited), wrapped_by, None, ctx, depth)
        return
    for node in nodes:
        _walk(node, ctx, wrapped_by, inherited, depth)


def parse(command: str, cwd: str, home: str) -> dict[str, Any]:
    """`{"commands": [...], "parse_error": None | str}` for one shell command line."""
    ctx = _Context(cwd, home)
    try:
        _parse_into(command, ctx, [], [], 0)
    except RecursionError:
        ctx.errors.append("RecursionError: the command nests too deeply")
        ctx.commands = [
            {"argv": argv, "path_args": [], "redirects": [], "wrapped_by": []}
            for argv in _split_fallback(command)
        ]
    return {"commands": ctx.commands, "parse_error": ctx.errors[0] if ctx.errors else None}
