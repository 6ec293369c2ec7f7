"""Cupcake's signals: shell commands whose results policies read at `input.signals.<name>`.

Definitions come from the manifest (`signals` per scope: the rulebook's `signals:`, the files in
`<root>/signals/` and the ones enabled builtins generate, read at build time). Per event only
the signals the *matched* packages ask for run, as in Cupcake:

- the names in a matched policy's `required_signals`;
- for a matched builtin package (`cupcake.policies.builtins.<name>`, or its global form) the
  signals that builtin generated, narrowed where the builtin's Rego could not use the others:
  `post_edit_check` runs only `__builtin_post_edit_<ext>` of the edited file's extension, and
  `git_pre_check` runs its checks only when the Bash command contains `git commit`, `git push`
  or `git merge` (the Rego's own test, so decisions are the same; the checks, test suites
  with a 30 s timeout, do not run on every `ls`). Cupcake's prefix match
  (`__builtin_<package suffix>_`) misses the names it generates for prompt contexts and git
  checks, so there those signals never run; here they do.

All of an event's signals run at once, each as `sh -c <command>` in its own process group
with the preprocessed event JSON on stdin, in the event's cwd when that folder exists, and
killed at its timeout (at most a day). A result is the trimmed stdout parsed as JSON, else the
string; JSON that Rego and UTF-8 cannot carry (`1e400`, `NaN`, a lone `"\\ud800"`) counts as
not JSON, as it does for Cupcake's serde_json. A non-zero exit gives `{"exit_code", "output",
"error", "success": false}`; a timeout or a command that could not start leaves the key absent
(and is reported to the caller, which logs it). subprocess and threading are imported only
when a signal runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # annotations only: the TypedDicts cost ~2 ms to create
    from watchdog.policies.manifest import Manifest



BUILTIN_PREFIXES = ("cupcake.policies.builtins.", "cupcake.global.policies.builtins.")
GIT_OPERATIONS = ("git commit", "git push", "git merge")
DEFAULT_TIMEOUT_S = 5
MAX_TIMEOUT_S = 24 * 3600


class Failure(NamedTuple):
    """A signal that produced no value: timed out, could not start, or is not defined."""

    scope: str
    name: str
    reason: str


def _edited_extension(doc: dict[str, Any]) -> str | None:
    """The extension post_edit_check's Rego derives from tool_input.file_path|notebook_path."""
    tool_input = doc.get("tool_input")
    if not isinstance(tool_input, dict):
        return None
    path = tool_input.get("file_path")
    if not isinstance(path, str):
        path = tool_input.get("notebook_path")
    if not isinstance(path, str):
        return None
    name = path.split("/")[-1]
    if "." not in name:
        return None
    ext = name.split(".")[-1]
    return ext or None


def _git_operation(doc: dict[str, Any]) -> bool:
    tool_input = doc.get("tool_input")
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    if not isinstance(command, str):
        return False
    lowered = command.lower()
    return any(op in lowered for op in GIT_OPERATIONS)


def _builtin_names(builtin: str, generated: Iterable[str], doc: dict[str, Any]) -> list[str]:
    names = list(generated)
    if builtin == "post_edit_check":
        ext = _edited_extension(doc)
        wanted = f"__builtin_post_edit_{ext}"
        return [n for n in names if ext is not None and n == wanted]
    if builtin == "git_pre_check":
        return names if _git_operation(doc) else []
    return names


def required(
    manifest: Manifest, scope: str, packages: Iterable[str], doc: dict[str, Any]
) -> list[str]:
    """The signal names one scope's matched packages need for this (preprocessed) event."""
    declared = {
        p.get("package"): p.get("signals") or []
        for p in manifest.get("scopes", {}).get(scope, {}).get("policies", [])
    }
    generated = manifest.get("builtin_signals", {}).get(scope, {})
    names: dict[str, None] = {}
    for package in packages:
        names.update(dict.fromkeys(str(n) for n in declared.get(package, [])))
        for prefix in BUILTIN_PREFIXES:
            if package.startswith(prefix):
                builtin = package[len(prefix):]
                names.update(dict.fromkeys(_builtin_names(builtin, generated.get(builtin, []),
                                                          doc)))
    return list(names)


def _result(code: int, out: bytes, err: bytes) -> Any:
    stdout = out.decode("utf-8", errors="replace").strip()
    if code != 0:
        return {
            "exit_code": code,
            "output": stdout,
            "error": err.decode("utf-8", errors="replace").strip(),
            "success": False,
        }
    try:
        value = json.loads(stdout, parse_constant=_reject_constant, parse_float=_finite)
        # The value goes to Rego as JSON text and into the log as UTF-8: `"\ud800"` decodes
        # to a lone surrogate, which neither can carry. Depth past Python's stack is refused
        # here rather than where the input is serialized.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # not JSON, over-long integers, lone surrogates
        return stdout
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: not JSON, and not valid Rego input


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e400: Rego has no infinity either
        raise ValueError(f"{text} is out of range")
    return value


def _timeout(value: Any) -> float:
    """A definition's timeout in seconds, at most a day: Cupcake allows any u64, and the poll
    behind `communicate` overflows past 24.8 days."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return DEFAULT_TIMEOUT_S
    return float(min(max(value, 0), MAX_TIMEOUT_S))


def _run_one(command: str, timeout: float, stdin: bytes, cwd: str | None) -> tuple[bool, Any]:
    """(True, result) or (False, why it produced nothing)."""
    import signal
    import subprocess

    try:
        proc = subprocess.Popen(
            ["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=cwd, start_new_session=True,
        )
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte or a lone surrogate in it
        return False, f"could not start: {exc}"
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        # The whole process group: `sh -c 'make test'` leaves its children behind otherwise.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        return False, f"timed out after {timeout:g} s"
    return True, _result(proc.returncode, out, err)


def run(
    wanted: dict[str, list[str]],
    definitions: dict[str, dict[str, Any]],
    stdin: bytes,
    cwd: str | None,
    on_done: Callable[[str, str, bool, Any, float], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], list[Failure]]:
    """Run every wanted signal (scope -> names) concurrently; results per scope, and failures.

    `definitions` maps scope -> name -> {command, timeout_seconds}. `on_done(scope, name, ok,
    value, ms)` is called for each, in order, once all have finished (for --explain).
    """
    import time

    if cwd is not None and not os.path.isdir(cwd):
        cwd = None
    results: dict[str, dict[str, Any]] = {scope: {} for scope in wanted}
    failures: list[Failure] = []
    jobs: list[tuple[str, str, str, float]] = []
    for scope, names in wanted.items():
        for name in names:
            spec = definitions.get(scope, {}).get(name)
            if not isinstance(spec, dict) or not isinstance(spec.get("command"), str):
                failures.append(Failure(scope, name, "not defined in rulebook.yml or signals/"))
                continue
            timeout = _timeout(spec.get("timeout_seconds", DEFAULT_TIMEOUT_S))
            jobs.append((scope, name, spec["command"], timeout))

    outcomes: list[tuple[bool, Any, float]] = [(False, "did not run", 0.0)] * len(jobs)

    def work(i: int) -> None:
        _, _, command, timeout = jobs[i]
        started = time.perf_counter()
        try:
            ok, value = _run_one(command, timeout, stdin, cwd)
        except Exception as exc:  # noqa: BLE001 - a bug; in a thread it would only print a
            # traceback on the harness's stderr. The signal is absent, as on a timeout.
            ok, value = False, f"failed: {type(exc).__name__}: {exc}"
        outcomes[i] = (ok, value, (time.perf_counter() - started) * 1000)

    if len(jobs) == 1:
        work(0)
    elif jobs:
        import threading

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for (scope, name, _, _), (ok, value, ms) in zip(jobs, outcomes, strict=True):
        if ok:
            results[scope][name] = value
        else:
            failures.append(Failure(scope, name, str(value)))
        if on_done is not None:
            on_done(scope, name, ok, value, ms)
    return results, failures
