"""`watchdog test`: run the Rego unit tests of a policy root through regopy.

    watchdog test [--policy-dir D] [--harness claude]

A test file is any `*_test.rego` under the root (this repo keeps them in `policies/tests/`, a
project in `.watchdog/tests/`), outside the folders the hook loads, so tests never reach the
hook's bundle. Each is compiled together with the root's policies, helpers and system files
(builtins only when `rulebook.yml` enables them, as the hook does), and every rule whose name
starts with `test_` is evaluated on its own. A test passes when its value is `true`; `false`,
undefined (a failed condition, an unknown function, an unsafe variable) or a run-time error
fails it.

Input: `test_NAME` runs with the value of the rule `input_NAME` of the same package as `input`
(a constant object: the hook payload, as Claude Code sends it), put through the hook's own
preprocessing (`resolved_file_path`, whitespace normalisation, ...), so a test sees exactly what
the policy sees in the hook. Without `input_NAME` the test runs with no input. OPA's
`deny with input as {...}` compiles in rego-cpp but crashes the process (a segfault in
regopy 1.x) as soon as the tested rules call functions of another package, as the default
pack's do; hence the convention.

Exit codes: 0 every test passed (or no test files were found, with a note on stderr); 1 a test
failed, a file did not compile, or the root could not be found.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from watchdog.errors import PolicyError, WatchdogError

PROG = "watchdog test"
TEST_SUFFIX = "_test.rego"
_PACKAGE_RE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE_RE = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)


@dataclass(frozen=True)
class TestCase:
    """One `test_*` rule: where it is written and the data path that evaluates it."""

    path: str
    line: int
    package: str
    name: str

    @property
    def ref(self) -> str:
        return f"data.{self.package}.{self.name}"

    @property
    def input_ref(self) -> str:
        return f"data.{self.package}.input_{self.name.removeprefix('test_')}"


@dataclass(frozen=True)
class TestResult:
    case: TestCase
    passed: bool
    detail: str  # why it failed; "" when it passed


def build_parser() -> argparse.ArgumentParser:
    from watchdog.cli import parser_class

    p: argparse.ArgumentParser = parser_class()(
        prog=PROG, description="Run the Rego unit tests (*_test.rego) of a policy root.")
    p.add_argument("--policy-dir", help="policy root; default: .watchdog/ or .cupcake/ above cwd")
    p.add_argument("--harness", default="claude", help="the harness whose policies to load")
    return p


def find_test_files(top: str) -> list[str]:
    """Every `*_test.rego` under top, sorted, skipping hidden folders (a nested .git, caches)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(TEST_SUFFIX)]
    return found


def collect_cases(path: str, source: str) -> list[TestCase]:
    """The `test_*` rules of one file, each once (a rule may have several bodies)."""
    package = _PACKAGE_RE.search(source)
    if package is None:
        raise PolicyError(f"{path}:1: no package declaration; a test file needs one.")
    seen: dict[str, TestCase] = {}
    for match in _TEST_RULE_RE.finditer(source):
        name = match.group(1)
        if name not in seen:
            line = source.count("\n", 0, match.start()) + 1
            seen[name] = TestCase(path, line, package.group(1), name)
    return list(seen.values())


def policy_modules(harness: str, root: Any) -> list[tuple[str, str]]:
    """What the hook would compile from this root: policies, system and helper files, and the
    builtins `rulebook.yml` enables; never a test file."""
    from watchdog.policies import layout
    from watchdog.policies import rulebook as rulebook_mod

    files = layout.list_files([root])
    enabled: tuple[str, ...] = ()
    for f in files:
        if f.kind == "rulebook":
            enabled = rulebook_mod.read(f.path).enabled_builtins
    modules: list[tuple[str, str]] = []
    for f in files:
        if f.kind == "rulebook" or f.path.endswith(TEST_SUFFIX):
            continue
        stem = os.path.basename(f.path)[: -len(".rego")]
        in_builtins = os.path.basename(os.path.dirname(f.path)) == "builtins"
        if in_builtins and not rulebook_mod.file_enabled(stem, enabled):
            continue
        with open(f.path, encoding="utf-8") as fh:
            modules.append((f.path, fh.read()))
    return modules


def test_input(harness: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The hook's input for a test's payload: Cupcake's preprocessing and, when the harness
    can read the payload, `input.watchdog.action` (merged over any `watchdog` it gives)."""
    from watchdog import evaluation, harnesses
    from watchdog.errors import EventError
    from watchdog.preprocess import preprocess

    try:
        event = harnesses.get(harness).parse(payload)
    except EventError:
        return preprocess(payload)
    base, action = evaluation.base_input(event)
    given = payload.get("watchdog")
    base["watchdog"] = {**(given if isinstance(given, dict) else {}), "action": action}
    return base


def _evaluate(interp: Any, case: TestCase, harness: str) -> TestResult:
    import json

    from watchdog.policies.engine import QuietStdout, error_messages

    try:
        with QuietStdout():
            given = interp.query(case.input_ref)
        given_text = str(given) if given.ok() else "undefined"
        if given_text == "undefined":
            interp.set_input_term("{}")
        else:
            payload = json.loads(given_text)["expressions"][0]
            if not isinstance(payload, dict):
                return TestResult(case, False, f"input_{case.name[5:]} is not an object")
            interp.set_input_term(json.dumps(test_input(harness, payload)))
        with QuietStdout():
            out = interp.query(case.ref)
        if not out.ok():
            messages = "; ".join(error_messages(out.node()))
            return TestResult(case, False, f"error: {messages or 'rego evaluation error'}")
        text = str(out)
    except Exception as exc:  # noqa: BLE001 - rego-cpp raises RegoError, or JSON errors on odd output
        return TestResult(case, False, f"error: {str(exc).strip().splitlines()[0][:200]}")
    if text == "undefined":
        return TestResult(case, False, "undefined (a condition in the test did not hold)")
    try:
        value = json.loads(text)["expressions"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return TestResult(case, False, f"unexpected output: {text[:200]}")
    if value is True:
        return TestResult(case, True, "")
    return TestResult(case, False, f"value is {json.dumps(value)[:200]}, not true")


def run(harness: str, policy_dir: str | None, cwd: str | None = None) -> list[TestResult]:
    """Compile the root with its test files and evaluate every test; raise on a compile error."""
    import regopy

    from watchdog.policies import layout

    if policy_dir:
        root = layout.resolve_policy_dir(policy_dir, harness)
    else:
        found = layout.find_project_root(cwd or os.getcwd(), harness)
        if found is None:
            raise PolicyError(
                "No .watchdog/ or .cupcake/ folder here or above. Pass --policy-dir, or create "
                "one with 'watchdog init'."
            )
        root = found
    test_files = find_test_files(root.path)
    if not test_files:
        return []
    interp = regopy.Interpreter()
    cases: list[TestCase] = []
    sources = policy_modules(harness, root)
    for path in test_files:
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        sources.append((path, source))
        cases += collect_cases(path, source)
    from watchdog.policies.engine import QuietStdout

    for path, source in sources:
        try:
            with QuietStdout():
                interp.add_module(os.path.relpath(path), source)
        except Exception as exc:  # noqa: BLE001 - RegoError carries rego's own report
            first = str(exc).strip().splitlines()
            raise PolicyError(
                f"{os.path.relpath(path)}: does not compile: {' '.join(first[:3])[:300]}. "
                "Run 'watchdog verify' for the policies' own errors."
            ) from exc
    return [_evaluate(interp, case, harness) for case in cases]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)  # a usage error prints and exits 1
    try:
        results = run(args.harness, args.policy_dir)
    except WatchdogError as exc:
        sys.stderr.write(f"watchdog test: {exc}\n")
        return 1
    if not results:
        sys.stderr.write("watchdog test: no *_test.rego files under the policy root; nothing run\n")
        return 0
    failed = 0
    for r in results:
        where = f"{os.path.relpath(r.case.path)}:{r.case.line}"
        if r.passed:
            print(f"PASS {where} {r.case.name}")
        else:
            failed += 1
            print(f"FAIL {where} {r.case.name}: {r.detail}")
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
