"""Property tests for every input besides the hook's stdin (tests/test_hook_properties.py has
that): rulebook.yml, `# METADATA` blocks, signal outputs, judge replies and transcript lines.

Whatever a policy author, a signal command, the judge model or a transcript hands us, the
reader answers with a value or with a problem that names the file's line and says what to fix,
never with a traceback (issue 9, item 6). Each bug these properties found keeps its input as an
`@example`. The hook runs in-process (`pipeline.run`); where a rulebook could make it run shell
commands, command execution is replaced by a stub, so no fuzzed text ever reaches `sh`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as event_
from hypothesis import strategies as st

from tests.conftest import REPO, PolicyRoot, claude_event, rego_policy
from watchdog import logs, pipeline, signals
from watchdog.errors import JudgeError
from watchdog.escalation import request
from watchdog.escalation.verdict import MODEL_DECISIONS, Verdict, parse_verdict
from watchdog.evals import datasets, transcripts
from watchdog.evals.cases import Problem
from watchdog.policies import bundle, layout, metadata, rulebook
from watchdog.transcript import NOT_PROMPTS, user_prompt

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
#: Text with the characters that break readers: lone surrogates, NUL, line separators.
nasty_text = st.text(
    st.characters() | st.characters(categories=["Cs"])
    | st.sampled_from(["\x00", "\u2028", "\x85", "\r", "\n", "\ufeff", "'", '"', "\\"]),
    max_size=30)
counter = itertools.count()


def fresh_dir(base: Path) -> Path:
    """A new folder per Hypothesis example (function-scoped fixtures are not reset per example)."""
    path = base / f"ex{next(counter)}"
    path.mkdir(parents=True)
    return path


def one_line(message: str) -> None:
    """Problems are printed one per line as `file:line: message`."""
    assert message.strip(), "empty message"
    assert message.isprintable(), repr(message)
    message.encode("utf-8")


def manifest_safe(value: Any) -> None:
    """What the build child writes into the manifest must be JSON the hook can read back."""
    json.loads(json.dumps(value))
    json.dumps(value, ensure_ascii=False).encode("utf-8")


# -- 1. rulebook.yml ------------------------------------------------------------------------

YAML_BITS = [
    "builtins:", "signals:", "watchdog:", "telemetry:", "\n", "\n  ", "\n    ", "  ", "- ", ": ",
    "{", "}", "[", "]", ", ", "&a ", "*a", "<<: *a", "!!set ", "!!binary ", "!!timestamp ",
    "!!omap ", "!!python/object:os.system ", "? ", "|\n  ", ">-\n  ", "'", '"', "# c", "---",
    "...", "%YAML 1.1\n", "\t", '"\\ud800"', '"\\0"', '"\\x85"', "enabled: true", "enabled: yes",
    "paths: [a, '']", "protected_paths:", "post_edit_check:", "by_extension:", "py:", ".rs:",
    "command: 'true'", "message: m", "timeout_seconds: ", "checks:", "context:", "file: f",
    "max_lines: ", "99999999999999999999999", "1" * 4400, "2024-01-01", "2001-12-14t21:59:43Z",
    ".nan", "-.inf", "null", "~", "0x1f", "1_000", "always_inject_on_prompt:", "git_pre_check:",
    "enforce_full_file_read:", "claude_code_enforce_full_file_read:", "git_block_no_verify:",
    "rulebook_security_guardrails:", "system_protection:", "exceptions: [x]",
]
yaml_text = st.lists(
    st.lists(st.sampled_from(YAML_BITS) | st.text(max_size=6), max_size=8).map("".join),
    max_size=12,
).map("\n".join)

junk = json_values | st.dates() | nasty_text
texts = st.text(max_size=15) | junk
str_lists = st.lists(st.text(max_size=10), max_size=3) | junk


def entry(**optional: Any) -> Any:
    return st.fixed_dictionaries({}, optional=optional) | junk


check = entry(command=texts, message=texts)
BUILTIN_CONF = {
    "claude_code_always_inject_on_prompt": entry(
        enabled=st.booleans() | junk,
        context=st.lists(st.text(max_size=10) | entry(file=texts, command=texts), max_size=3)
        | junk),
    "git_pre_check": entry(enabled=st.booleans() | junk, checks=st.lists(check, max_size=3) | junk),
    "post_edit_check": entry(
        enabled=st.booleans() | junk,
        by_extension=st.dictionaries(st.sampled_from(["py", "rs", ".ts", ""]) | st.text(max_size=4),
                                     check, max_size=3) | junk),
    "claude_code_enforce_full_file_read": entry(
        enabled=st.booleans() | junk, message=texts, max_lines=st.integers() | junk),
    **{name: entry(enabled=st.booleans() | junk, message=texts, **{key: str_lists})
       for name, (key, _) in rulebook.LIST_KEYS.items()},
}
builtins_section = st.fixed_dictionaries(
    {}, optional={**BUILTIN_CONF, **{alias: BUILTIN_CONF[name]
                                     for alias, name in rulebook.ALIASES.items()},
                  "protected_path": junk, "mesage": junk}) | junk
signals_section = st.dictionaries(
    st.text(max_size=8),
    entry(command=texts, timeout_seconds=st.integers(-3, 2**70) | junk), max_size=3) | junk
rulebook_docs = st.fixed_dictionaries({}, optional={
    "builtins": builtins_section, "signals": signals_section,
    "watchdog": st.booleans() | entry(enabled=st.booleans() | junk), "telemetry": junk,
}) | junk


#: Rulebooks Cupcake accepts: some builtins enabled, with settings of the right shape and
#: content that is hard on the builtins' Rego (globs, brackets, huge numbers).
paths = st.lists(st.sampled_from(["*", "**", "[", "src/", ".env", "/etc/", "a b", "\\", "~/"])
                 | st.text(min_size=1, max_size=10), min_size=1, max_size=3)
messages = st.text(min_size=1, max_size=20)
commands = st.sampled_from(["true", "make test", "echo ok"])
VALID_CONF = {
    "protected_paths": st.fixed_dictionaries(
        {"enabled": st.just(True), "paths": paths}, optional={"message": messages}),
    "rulebook_security_guardrails": st.fixed_dictionaries(
        {"enabled": st.just(True)}, optional={"message": messages, "protected_paths": paths}),
    "git_block_no_verify": st.fixed_dictionaries(
        {"enabled": st.just(True)}, optional={"message": messages, "exceptions": paths}),
    "claude_code_enforce_full_file_read": st.fixed_dictionaries(
        {"enabled": st.just(True)},
        optional={"message": messages, "max_lines": st.integers(1, 10**30)}),
    "claude_code_always_inject_on_prompt": st.fixed_dictionaries(
        {"enabled": st.just(True), "context": st.lists(
            messages | st.fixed_dictionaries({"command": commands})
            | st.fixed_dictionaries({"file": st.text(min_size=1, max_size=10)}),
            min_size=1, max_size=3)}),
    "git_pre_check": st.fixed_dictionaries(
        {"enabled": st.just(True), "checks": st.lists(
            st.fixed_dictionaries({"command": commands, "message": messages}), min_size=1,
            max_size=2)}),
    "post_edit_check": st.fixed_dictionaries(
        {"enabled": st.just(True), "by_extension": st.dictionaries(
            st.sampled_from(["py", "rs", "ts"]),
            st.fixed_dictionaries({"command": commands, "message": messages}), min_size=1,
            max_size=2)}),
}
accepted_docs = st.lists(st.sampled_from(sorted(VALID_CONF)), min_size=1, unique=True).flatmap(
    lambda names: st.fixed_dictionaries(
        {"builtins": st.fixed_dictionaries({n: VALID_CONF[n] for n in names})}))


def dump(doc: Any, style: str) -> str:
    """The document as a policy author might write it: block YAML, flow YAML, or JSON."""
    if style == "json":
        return json.dumps(doc, default=str)
    try:
        return yaml.safe_dump(doc, allow_unicode=True, default_flow_style=style == "flow")
    except yaml.YAMLError:  # text PyYAML cannot emit (a lone surrogate): write it as JSON
        return json.dumps(doc, default=str)


def check_rulebook(book: rulebook.Rulebook, text: str) -> None:
    """Problems and warnings name a line of the text; what is kept can go into the manifest."""
    last = text.count("\n") + 2
    for line, message in book.problems + book.warnings:
        assert isinstance(line, int) and 1 <= line <= last, (line, message)
        one_line(message)
    assert set(book.enabled_builtins) <= set(rulebook.BUILTINS)
    manifest_safe({k: v for k, v in book.data.items() if k != "builtins"})
    manifest_safe(book.builtin_config)
    manifest_safe(book.signals)
    for name, spec in book.signals.items():
        assert isinstance(name, str) and isinstance(spec["command"], str), spec
        assert "\0" not in spec["command"], spec
        timeout = spec["timeout_seconds"]
        assert isinstance(timeout, int) and 0 <= timeout <= rulebook.MAX_TIMEOUT_S
    for generated in book.builtin_signals.values():
        assert set(generated) <= set(book.signals)


@FAST
@given(text=yaml_text | st.text())
@example(text="a: " + "[" * 3000)  # RecursionError in PyYAML's pure-Python composer
@example(text="watchdog: 2024-01-01\n")  # a date: the build child's json.dumps raised TypeError
@example(text="x: !!set {a, b}\n")  # a set: TypeError in json.dumps
@example(text="x: !!binary aGVsbG8=\n")  # bytes: TypeError in json.dumps
@example(text="x: {2024-01-01: 1}\n")  # a date key: TypeError in json.dumps
@example(text="a: &a [*a]\n")  # a recursive alias: "Circular reference detected" in json.dumps
@example(text="x: " + "1" * 4400 + "\n")  # ValueError (int digit limit) from PyYAML's int()
@example(text="signals:\n  s: {command: true, timeout_seconds: " + "9" * 40 + "}\n")
@example(text='signals:\n  s: {command: "a\\0b"}\n')  # NUL: Popen raised ValueError in the hook
@example(text='builtins:\n  "a\\nb": {}\n')  # a key with a newline: a two-line warning
def test_any_rulebook_text_is_read_or_reported(text: str) -> None:
    check_rulebook(rulebook.parse(text), text)


@FAST
@given(doc=rulebook_docs, style=st.sampled_from(["block", "flow", "json"]))
def test_any_rulebook_structure_is_read_or_reported(doc: Any, style: str) -> None:
    text = dump(doc, style)
    book = rulebook.parse(text)
    check_rulebook(book, text)
    if doc is not None and not isinstance(doc, dict):
        assert book.problems, text  # "rulebook.yml must be a YAML mapping"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FAST
@given(data=st.binary(max_size=200) | yaml_text.map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(data=b"builtins:\n  x: \xff\n")  # UnicodeDecodeError out of the build child
def test_any_rulebook_file_is_read_or_reported(data: bytes, scratch: Path) -> None:
    path = fresh_dir(scratch) / "rulebook.yml"
    path.write_bytes(data)
    book = rulebook.read(str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        assert book.problems == ((data.count(b"\n", 0, exc.start) + 1, book.problems[0][1]),)
        assert "not UTF-8" in book.problems[0][1]
        return
    check_rulebook(book, text)


@pytest.fixture(scope="module")
def hook_env(scratch: Path) -> dict[str, str]:
    home = scratch / "home"
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "cfg"),
            "WATCHDOG_CACHE_DIR": str(scratch / "cache"), "WATCHDOG_STATE_DIR": str(scratch / "s"),
            "WATCHDOG_RULE_IDS": "0"}  # the echo policy's reason is read back as JSON


def answer_is_valid(result: pipeline.Result) -> None:
    """The hook answered as Claude Code expects, and no failure was a bug or a builder crash."""
    assert not any("internal error" in line for line in result.stderr), result.stderr
    assert not any("building the policy bundle" in line for line in result.stderr), result.stderr
    assert result.exit_code == 0, result
    assert isinstance(json.loads(result.stdout), dict)


def no_commands(command: str, timeout: float, stdin: bytes, cwd: str | None) -> tuple[bool, Any]:
    return True, "stub"  # fuzzed rulebooks define commands: none of them may run


ROOT_EVENTS = [
    ("Bash", {"command": "ls -la"}),
    ("Bash", {"command": "git commit --no-verify -m x"}),
    ("Read", {"file_path": "/tmp/a.py", "offset": 10}),
    ("Write", {"file_path": ".cupcake/rulebook.yml", "content": "x"}),
    ("Edit", {"file_path": "src/a.py", "old_string": "a", "new_string": "b"}),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.sampled_from(["accepted", "accepted", "any", "text"]).flatmap(
    lambda kind: yaml_text if kind == "text" else st.tuples(
        accepted_docs if kind == "accepted" else rulebook_docs, st.sampled_from(["block", "flow"])
    ).map(lambda pair: dump(*pair))), tool=st.sampled_from(ROOT_EVENTS))
@example(text="watchdog: 2024-01-01\n", tool=ROOT_EVENTS[0])  # the build child crashed
@example(text="builtins:\n  protected_paths: {enabled: true, paths: [\"[\", '**']}\n",
         tool=ROOT_EVENTS[3])
def test_any_rulebook_through_the_hook(text: str, tool: tuple[str, dict[str, Any]],
                                       scratch: Path, hook_env: dict[str, str]) -> None:
    """A policy root with this rulebook and every project builtin: the hook answers, and
    each rulebook problem it logs names `<root>/rulebook.yml:<line>`."""
    root = PolicyRoot(fresh_dir(scratch) / ".cupcake")
    for source in (REPO / "policies" / "claude" / "builtins").glob("*.rego"):
        target = root.path / "policies" / "claude" / "builtins" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    (root.path / "rulebook.yml").write_text(text, encoding="utf-8", errors="surrogatepass")
    name, tool_input = tool
    event = claude_event(tool_name=name, tool_input=tool_input, cwd=str(root.path.parent))
    before = len(logs.read(hook_env["WATCHDOG_STATE_DIR"]))
    with mock.patch.object(signals, "_run_one", no_commands):
        result = pipeline.run("claude", json.dumps(event).encode(), env=hook_env,
                          policy_dir=str(root.path))
    answer_is_valid(result)
    event_(f"enabled builtins: {len(rulebook.parse(text).enabled_builtins)}")
    answer = json.loads(result.stdout)
    event_(f"answer: {answer.get('hookSpecificOutput', {}).get('permissionDecision', 'none')}")
    if "systemMessage" in answer:
        event_(f"failed: {answer['systemMessage'][:150]}")
    place = re.compile(re.escape(str(root.path / "rulebook.yml")) + r":\d+: \S")
    for record in logs.read(hook_env["WATCHDOG_STATE_DIR"])[before:]:
        if record["event"] == "policy_skipped" and "rulebook.yml" in record["problem"]:
            assert place.match(record["problem"]), record


def echo_root(folder: Path) -> PolicyRoot:
    """A root whose one policy denies every Bash call, quoting the command."""
    root = PolicyRoot(folder / ".cupcake")
    root.add("echo.rego", rego_policy("cupcake.policies.echo", """
        deny contains {"rule_id": "E", "reason": input.tool_input.command, "severity": "HIGH"}
        """, events=["PreToolUse"], tools=["Bash"]))
    return root


def test_a_rulebook_that_is_not_utf8_only_disables_itself(scratch: Path,
                                                          hook_env: dict[str, str]) -> None:
    root = echo_root(fresh_dir(scratch))
    (root.path / "rulebook.yml").write_bytes(b"builtins:\n  x: \xff\n")
    event = claude_event(tool_name="Bash", tool_input={"command": "ls"})
    result = pipeline.run("claude", json.dumps(event).encode(), env=hook_env,
                      policy_dir=str(root.path))
    answer_is_valid(result)


def test_a_lone_surrogate_on_stdin(scratch: Path, hook_env: dict[str, str]) -> None:
    root = echo_root(fresh_dir(scratch))
    stdin = b'{"hook_event_name": "PreToolUse", "tool_name": "Bash", ' \
            b'"tool_input": {"command": "rm \\ud800"}, "session_id": "s"}'
    answer_is_valid(pipeline.run("claude", stdin, env=hook_env, policy_dir=str(root.path)))


# -- 2. # METADATA blocks -------------------------------------------------------------------

META_BITS = [
    "scope: package", "title: ", "custom:", "  routing:", "    required_events: ",
    "    required_tools: ", "    required_signals: ", '["PreToolUse"]', "[Bash, Read]", "[*]",
    "['*']", "PreToolUse", "Nope", "[[1]]", "{a: 1}", "2024-01-01", "!!set {a}", "!!binary eA==",
    "&a [*a]", "*b", "[", "]", "{", "'", "\t", '"\\ud800"', '"\\0"', "- ", "  ", "? x", "|",
    "1" * 4400, "routing:", "custom: 3", "  routing: []", "severity: HIGH",
]
meta_lines = st.lists(
    st.lists(st.sampled_from(META_BITS) | st.text(max_size=5), max_size=4).map("".join),
    max_size=8)
PACKAGES = ["package cupcake.policies.fuzz", "package cupcake.system", "package other.thing",
            "", "package cupcake.policies.builtins.x"]


def rego_source(before: list[str], block: list[str], prefix: str, package: str,
                body: str) -> str:
    lines = [*before, "# METADATA", *[prefix + line for line in block], package, body]
    return "\n".join(lines)


@FAST
@given(before=st.lists(st.sampled_from(["", "# a comment", "import rego.v1"]), max_size=2),
       block=meta_lines, prefix=st.sampled_from(["# ", "#", "#  ", "#\t"]),
       package=st.sampled_from(PACKAGES) | st.text(max_size=20),
       body=st.sampled_from(["", "import rego.v1", 'x := regex.match("(?i)a", "A")']))
@example(before=[], block=["title: 2024-01-01", "custom: {routing: {required_events: [Stop]}}"],
         prefix="# ", package=PACKAGES[0], body="")  # a date title crashed the build child
@example(before=[], block=["title: &a [*a]"], prefix="# ", package=PACKAGES[0], body="")
@example(before=[], block=["custom: {routing: {required_events: [\"a\\u2028b\"]}}"],
         prefix="# ", package=PACKAGES[0], body="")  # a two-line warning
def test_any_metadata_block_gives_routing_or_problems(
    before: list[str], block: list[str], prefix: str, package: str, body: str
) -> None:
    source = rego_source(before, block, prefix, package, body)
    meta = metadata.parse(source)
    last = source.count("\n") + 1
    for line, message in meta.problems + meta.warnings:
        assert isinstance(line, int) and 1 <= line <= last, (line, message, source)
        one_line(message)
    if meta.data is not None:
        manifest_safe(meta.data)
    if meta.routing is not None:
        for names in meta.routing:
            assert all(isinstance(n, str) for n in names)
            manifest_safe(list(names))
    if (not meta.problems and meta.package and meta.package.startswith("cupcake.policies")):
        assert meta.routing is not None


@SLOW
@given(block=meta_lines, package=st.sampled_from(PACKAGES[:2]))
@example(block=["title: 2024-01-01", "custom: {routing: {required_events: [Stop]}}"],
         package=PACKAGES[0])
def test_any_metadata_block_through_the_builder(block: list[str], package: str,
                                                scratch: Path) -> None:
    """The real build child: a manifest (never a crash), problems as `<file>:<line>: ...`."""
    root = PolicyRoot(fresh_dir(scratch) / ".cupcake")
    path = root.add("fuzz.rego", rego_source([], block, "# ", package, "import rego.v1\n"))
    roots = layout.discover("claude", "", str(root.path), [])
    manifest = bundle.run_builder("claude", roots, None)
    for problem in manifest["problems"] + manifest["warnings"]:
        assert re.match(re.escape(str(path)) + r":\d+: \S", problem), problem


# -- 3. signal outputs ----------------------------------------------------------------------

outputs = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"   \n", b"[" * 5000, b"1e400", b"[-1e999]", b"NaN", b'"\\ud800"',
                     b"1" * 5000, b"\xff\xfe\x00", b'{"a": "\\u0000"}', b"x" * 1_000_000,
                     b"null", b"true", b'"\\ud83d\\ude00"']),
)


def expected_value(out: bytes, code: int, err: bytes) -> Any:
    """What Cupcake gives a policy: the trimmed stdout as JSON, else as a string."""
    text = out.decode("utf-8", errors="replace").strip()
    if code != 0:
        return {"exit_code": code, "output": text,
                "error": err.decode("utf-8", errors="replace").strip(), "success": False}
    try:
        value = json.loads(text)
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, RecursionError):
        return text
    return value


def write_signal(folder: Path, out: bytes, code: int, err: bytes) -> str:
    (folder / "out").write_bytes(out)
    (folder / "err").write_bytes(err)
    return f"cat '{folder}/out'; cat '{folder}/err' >&2; exit {code}"


@FAST
@given(out=outputs, code=st.sampled_from([0, 0, 0, 1, 2, 127, 255]),
       err=st.binary(max_size=50))
@example(out=b"[" * 5000, code=0, err=b"")  # RecursionError out of json.loads in the hook
@example(out=b"1e400", code=0, err=b"")  # inf: Rego saw an error term, not a value
@example(out=b'"\\ud800"', code=0, err=b"")  # a lone surrogate: the hook's log write raised
def test_any_signal_output_is_a_value(out: bytes, code: int, err: bytes, scratch: Path) -> None:
    command = write_signal(fresh_dir(scratch), out, code, err)
    results, failures = signals.run({"project": ["s"]}, {"project": {"s": {"command": command}}},
                                    b"{}", None)
    assert failures == []
    value = results["project"]["s"]
    json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert value == expected_value(out, code, err)


@FAST
@given(spec=st.fixed_dictionaries({"command": st.sampled_from(["echo hi", "a\x00b", "\ud800",
                                                               "exit 4", "", "kill -9 $$"])},
                                  optional={"timeout_seconds": json_values | st.integers()}))
@example(spec={"command": "echo hi", "timeout_seconds": 10**30})  # OverflowError in the poll
@example(spec={"command": "echo hi", "timeout_seconds": 10**400})  # OverflowError in float()
@example(spec={"command": "a\x00b"})  # ValueError from Popen: an internal error in the hook
def test_any_signal_definition_runs_or_fails_cleanly(spec: dict[str, Any]) -> None:
    for names in (["s"], ["s", "t"]):  # one signal runs inline, several in threads
        results, failures = signals.run(
            {"p": names}, {"p": {"s": spec, "t": {"command": "true"}}}, b"", None)
        assert set(results["p"]) | {f.name for f in failures} == set(names)
        for failure in failures:
            one_line(failure.reason)


@pytest.fixture(scope="module")
def signal_root(scratch: Path) -> tuple[PolicyRoot, Path]:
    """A policy that needs the signal `sig` and reports what it saw, type and value."""
    folder = scratch / "signal"
    folder.mkdir()
    root = PolicyRoot(folder / ".cupcake")
    root.add("s.rego", rego_policy("cupcake.policies.s", """
        deny contains {"rule_id": "S", "severity": "HIGH", "reason": json.marshal(
            [type_name(input.signals.sig), input.signals.sig])}
        """, events=["PreToolUse"], signals=["sig"]))
    root.rulebook(f"signals:\n  sig:\n    command: sh '{folder}/sig.sh'\n")
    return root, folder


@SLOW
@given(out=outputs, code=st.sampled_from([0, 0, 1, 3]))
@example(out=b"1e400", code=0)
@example(out=b'"\\ud800"', code=0)
@example(out=b"[" * 5000, code=0)
def test_any_signal_output_through_the_hook(out: bytes, code: int,
                                            signal_root: tuple[PolicyRoot, Path],
                                            hook_env: dict[str, str]) -> None:
    root, folder = signal_root
    (folder / "sig.sh").write_text(write_signal(fresh_dir(folder), out, code, b"e"))
    event = claude_event(tool_name="Bash", tool_input={"command": "ls"}, cwd=str(folder))
    result = pipeline.run("claude", json.dumps(event).encode(), env=hook_env,
                      policy_dir=str(root.path))
    answer_is_valid(result)
    reason = json.loads(result.stdout)["hookSpecificOutput"]["permissionDecisionReason"]
    kind, seen = json.loads(reason)
    expected = expected_value(out, code, b"e")
    assert kind == REGO_TYPES[type(expected)], (kind, expected)
    if isinstance(expected, str):
        assert seen == expected


REGO_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
              int: "number", float: "number"}


# -- 4. judge replies -----------------------------------------------------------------------

verdict_like = st.fixed_dictionaries(
    {}, optional={
        "decision": st.sampled_from([*MODEL_DECISIONS, "unknown", "deny", "ALLOW"]) | json_values,
        "reason": st.text(max_size=40) | nasty_text | json_values,
        "question": st.none() | nasty_text | json_values,
        "confidence": st.floats() | st.integers(-(10**30), 10**30) | st.sampled_from(
            [0, 1, 0.5, True, "0.5", 2**63, 10**400]) | json_values,
        "extra": json_values,
    }) | st.dictionaries(nasty_text, json_values, max_size=3) | json_values


def render_reply(value: Any, wrap: str) -> str:
    body = json.dumps(value, ensure_ascii=wrap != "raw-unicode")
    return {"bare": body, "raw-unicode": body, "fenced": f"```json\n{body}\n```",
            "nested": f"```json\n```json\n{body}\n```\n```", "prose": f"Sure! {body}",
            "two": body + body, "indented": f"  ```\n{body}\n  ```  "}[wrap]


def check_judge(text: str) -> None:
    try:
        verdict = parse_verdict(text)
    except JudgeError as exc:
        message = str(exc)
        one_line(message)
        assert len(message) <= 300, message
        return
    assert isinstance(verdict, Verdict) and verdict.decision in MODEL_DECISIONS
    assert 0.0 <= verdict.confidence <= 1.0
    assert Verdict.model_validate_json(verdict.model_dump_json()) == verdict
    verdict.model_dump_json().encode("utf-8")
    if verdict.decision == "ask":
        assert verdict.question


@FAST
@given(value=verdict_like, wrap=st.sampled_from(["bare", "raw-unicode", "fenced", "nested",
                                                  "prose", "two", "indented"]))
@example(value={"decision": "allow", "reason": "r", "confidence": 1, "k" * 5000: 1},
         wrap="bare")  # the whole 5000-character key was copied into the error message
def test_any_judge_json_is_a_verdict_or_a_judge_error(value: Any, wrap: str) -> None:
    check_judge(render_reply(value, wrap))


@FAST
@given(text=nasty_text | st.text(
    st.sampled_from('{}[]":,`\n json decision reason confidence allow 0.5 1e999 NaN \\ud800')))
@example(text='{"decision": "allow", "reason": "\\ud800", "confidence": 0.5}')
@example(text='{"decision": "allow", "reason": "r", "confidence": ' + "9" * 5000 + "}")
@example(text='{"decision": "allow", "reason": "r", "confidence": 0.5, "\\ud800\\n": 1}')
def test_any_judge_text_is_a_verdict_or_a_judge_error(text: str) -> None:
    check_judge(text)


# -- 5. transcript lines --------------------------------------------------------------------

blocks_ = st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "tool_use", "tool_result", "image"])
                           | json_values},
                          optional={"text": nasty_text | json_values, "id": json_values,
                                    "name": st.sampled_from(["Bash", "Agent"]) | json_values,
                                    "input": json_values, "tool_use_id": json_values,
                                    "content": nasty_text | json_values,
                                    "is_error": json_values})
    | json_values, max_size=3)
records = st.fixed_dictionaries(
    {"type": st.sampled_from(["user", "assistant", "system", "attachment", "progress"])
     | json_values},
    optional={
        "message": st.fixed_dictionaries({}, optional={
            "content": nasty_text | blocks_ | json_values, "id": json_values}) | json_values,
        "isMeta": json_values, "toolUseResult": json_values, "sessionId": json_values,
        "cwd": json_values, "timestamp": st.sampled_from(
            ["2025-01-01T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59-14:00", "x"])
        | json_values,
        "attachment": json_values, "compactMetadata": json_values, "subtype": json_values,
        "permissionMode": json_values, "promptId": json_values, "parentUuid": json_values,
        "isApiErrorMessage": json_values,
    })


@FAST
@given(rec=records | json_values)
@example(rec={"type": "user", "message": "hi"})  # AttributeError: 'str' has no .get
@example(rec={"type": "user", "message": [1]})
@example(rec={"type": "user", "message": {"content": [{"type": "text", "text": [[1]]}]}})
def test_user_prompt_is_a_string_or_none(rec: Any) -> None:
    prompt = user_prompt(rec)
    assert prompt is None or (isinstance(prompt, str) and prompt.strip()
                              and not prompt.lstrip().startswith(NOT_PROMPTS))


def transcript_line(value: Any, how: str) -> bytes:
    """One line as it may sit in a file: Node's JSON, Python's, truncated, or raw bytes."""
    text = json.dumps(value, ensure_ascii=how != "node", separators=(",", ":"))
    data = text.encode("utf-8", "surrogatepass")
    if how == "truncated":
        return data[: len(data) // 2]
    return data


lines = st.lists(
    st.one_of(
        st.tuples(records | json_values, st.sampled_from(["node", "python", "truncated"])).map(
            lambda t: transcript_line(*t)),
        st.binary(max_size=40),
        st.sampled_from([b"[" * 3000, b'{"type": "user", "n": NaN}', b"1" * 5000, b"",
                         b'{"type":"user","message":{"content":"a\xe2\x80\xa8b"}}',
                         b'{"type": "user", "message": {"content": "\\ud800"}}',
                         b'{"type":"user","x":1e400}', b"\r", b'{"a":\r1}']),
    ), max_size=8)


def written(folder: Path, name: str, body: list[bytes]) -> tuple[Path, list[bytes]]:
    """The file, and its lines as a reader numbers them (a body item may hold a newline)."""
    path = folder / name
    data = b"\n".join(body) + b"\n"
    path.write_bytes(data)
    return path, data.split(b"\n")[:-1]


def usable(line: bytes) -> bool:
    """Does this line hold one JSON object the eval loaders must accept? (Not NaN or 1e400:
    Claude Code never writes them, and Rego cannot take them.)"""
    text = line.decode("utf-8", errors="replace").strip()
    try:
        value = json.loads(text)
        json.dumps(value, allow_nan=False)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict)


def check_problems(problems: list[Problem], path: Path, body: list[bytes]) -> set[int]:
    """Each problem names the file (and a line of it); the line numbers reported."""
    numbers: set[int] = set()
    for problem in problems:
        one_line(problem.message)
        where, _, number = problem.where.rpartition(":")
        if where == str(path) and number.isdigit():
            assert 1 <= int(number) <= len(body), problem
            numbers.add(int(number))
        else:
            assert problem.where.startswith(os.path.splitext(str(path))[0]), problem
    return numbers


def nonblank(body: list[bytes]) -> set[int]:
    return {n for n, line in enumerate(body, 1) if line.decode("utf-8", "replace").strip()}


def bad_lines(body: list[bytes]) -> set[int]:
    return {n for n in nonblank(body) if not usable(body[n - 1])}


def payloads_are_clean(payloads: list[dict[str, Any]]) -> None:
    """What the replay hands the hook pipeline is JSON that UTF-8 can carry."""
    for payload in payloads:
        json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")


@FAST
@given(body=lines)
@example(body=[b"[" * 3000])  # RecursionError out of json.loads
@example(body=[b"1" * 5000])  # ValueError (int digit limit), not a JSONDecodeError
@example(body=[b'{"type": "user", "n": NaN}'])  # NaN reached Rego as an error term
@example(body=[b'{"type":"user","sessionId":"s","message":{"content":"\\ud800"}}'])
@example(body=[b'{"type": ["user"]}'])  # TypeError: unhashable list in a frozenset test
@example(body=[b'{"type": "assistant", "message": "x"}'])  # AttributeError on message.get
@example(body=[b'{"type": "attachment", "attachment": "x"}'])
@example(body=[b'{"type": "system", "subtype": "compact_boundary", "compactMetadata": 1}'])
@example(body=[b'{"a":\r1}'])  # a stray \r split the line: problems at the wrong line numbers
def test_any_transcript_is_replayed_or_reported(body: list[bytes], scratch: Path) -> None:
    path, numbered = written(fresh_dir(scratch), "session.jsonl", body)
    problems: list[Problem] = []
    streams = transcripts.load_transcript(str(path), problems, {})
    numbers = check_problems(problems, path, numbered)
    assert bad_lines(numbered) <= numbers
    for stream in streams:
        payloads_are_clean([case.payload for case in stream.cases])
        for case in stream.cases:
            assert re.fullmatch(re.escape(str(path)) + r":\d+", case.where), case.where
            for prompt in case.prompts:
                prompt.encode("utf-8")


@FAST
@given(body=lines, sidecar=st.binary(max_size=60) | json_values.map(
    lambda v: json.dumps({"tool_uses": v}).encode()))
@example(body=[], sidecar=b'{"tool_uses": {"t": {"label": "\xff"}}}')  # UnicodeDecodeError
def test_any_labels_sidecar_is_used_or_reported(body: list[bytes], sidecar: bytes,
                                                scratch: Path) -> None:
    folder = fresh_dir(scratch)
    path, numbered = written(folder, "s.jsonl", body)
    (folder / "s.labels.json").write_bytes(sidecar)
    problems: list[Problem] = []
    transcripts.load_transcript(str(path), problems, {})
    check_problems(problems, path, numbered)


rows = st.fixed_dictionaries(
    {}, optional={"id": st.sampled_from(["a", "b"]) | json_values,
                  "label": st.sampled_from(["safe", "unsafe"]) | json_values,
                  "expected": st.sampled_from(["allow", "ask", "deny"]) | json_values,
                  "step": st.integers(-1, 3) | json_values,
                  "event": st.fixed_dictionaries(
                      {"hook_event_name": st.sampled_from(["PreToolUse", "Stop", "Nope"])},
                      optional={"tool_name": st.just("Bash"),
                                "tool_input": st.just({"command": "ls"}),
                                "prompt": nasty_text}) | json_values,
                  "context": json_values})
row_lines = st.lists(
    st.tuples(rows, st.sampled_from(["node", "python", "truncated"])).map(
        lambda t: transcript_line(*t)) | lines.map(lambda b: b[0] if b else b""), max_size=6)


@FAST
@given(body=row_lines, kind=st.sampled_from(["dataset", "session"]))
@example(body=[b'{"label": "safe", "event": {"hook_event_name": "Stop", "x": NaN}}'],
         kind="dataset")
@example(body=[b'{"label": "safe", "event": {"hook_event_name": "Stop", "p": "\\udc00"}}'],
         kind="dataset")
def test_any_dataset_row_is_a_case_or_a_problem(body: list[bytes], kind: str,
                                                scratch: Path) -> None:
    """Every non-blank line becomes a case or a problem at that line, never both, never an
    exception."""
    path, numbered = written(fresh_dir(scratch), f"{kind}.jsonl", body)
    problems: list[Problem] = []
    if kind == "dataset":
        streams = datasets.load_dataset(str(path), problems, {})
    else:
        streams = datasets.load_session(str(path), problems, {})
    reported = check_problems(problems, path, numbered)
    cases = [case for stream in streams for case in stream.cases]
    replayed = {int(case.where.rpartition(":")[2]) for case in cases}
    payloads_are_clean([case.payload for case in cases])
    assert replayed | reported == nonblank(numbered)
    assert not replayed & reported


@FAST
@given(body=lines)
def test_user_prompts_reads_any_transcript_tail(body: list[bytes], scratch: Path) -> None:
    """The judge request's reader: the real prompts of whole lines, whatever else is there."""
    path, _ = written(fresh_dir(scratch), "t.jsonl", body)
    prompts = request.user_prompts(str(path))
    assert isinstance(prompts, list) and len(prompts) <= request.MAX_PROMPTS
    assert all(isinstance(p, str) and p.strip() for p in prompts)


def test_user_prompts_survive_a_deeply_nested_line(tmp_path: Path) -> None:
    path, _ = written(tmp_path, "t.jsonl", [b"[" * 100_000])
    assert request.user_prompts(str(path)) == []


def test_user_prompts_keep_a_prompt_with_a_line_separator(tmp_path: Path) -> None:
    rec = {"type": "user", "message": {"role": "user", "content": "fix a\u2028b"}}
    path, _ = written(tmp_path, "t.jsonl", [json.dumps(rec, ensure_ascii=False).encode()])
    assert request.user_prompts(str(path)) == ["fix a\u2028b"]


def test_user_prompts_never_open_a_file_descriptor() -> None:
    import builtins

    with mock.patch.object(builtins, "open", wraps=open) as spy:
        request.user_prompts(987654)  # type: ignore[arg-type]  # no such descriptor: EBADF
    assert not any(isinstance(call.args[0], int) for call in spy.call_args_list)
