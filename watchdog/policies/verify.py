"""`watchdog verify` and `watchdog inspect`: what a policy author sees before an agent does.

verify compiles every root in the same child process the hook uses and prints each problem as
`file:line: message` (exit 1 on any; warnings are printed but do not fail). When rego-cpp
crashes on the whole set, it compiles the policies one by one to name the file that does it.
inspect prints each policy's routing and the routing index: which events wake which packages.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from watchdog import config
from watchdog.errors import PolicyCompileError, PolicyError
from watchdog.policies import bundle, layout


def _roots(harness: str, policy_dir: str | None) -> list[layout.Root]:
    settings = config.load(policy_dir=policy_dir)
    roots = layout.discover(
        harness, os.getcwd(), settings.policy_dir, config.global_dirs(settings)
    )
    if not roots:
        default = layout.default_root(harness)
        if default is None:
            raise PolicyError(
                "no policies found: no .watchdog/ or .cupcake/ here or above, and no global "
                f"policies. Pass --policy-dir, or create .watchdog/policies/{harness}/."
            )
        print(f"no policy root here or above: the hook applies the shipped default pack "
              f"({default.path}); 'watchdog init' installs it for this project",
              file=sys.stderr)
        return [default]
    return roots


_SHIPPED = (layout.shipped_pack() or "\0") + os.sep


def _rel(text: str) -> str:
    cwd = os.getcwd() + os.sep
    return text.replace(cwd, "")


def _culprits(harness: str, roots: list[layout.Root]) -> list[str]:
    """Compile each policy file alone to find the ones the compiler crashes or fails on."""
    return [p for problems in bundle.crashing_policies(harness, roots).values() for p in problems]


def verify(harness: str, policy_dir: str | None) -> int:
    roots = _roots(harness, policy_dir)
    try:
        manifest = bundle.run_builder(harness, roots, None)
    except PolicyCompileError as exc:
        problems = _culprits(harness, roots) or [str(exc)]
        manifest = {"problems": problems, "warnings": [], "scopes": {}, "error": None}
    problems = list(manifest.get("problems", []))
    for item in manifest.get("excluded", []):  # the hook leaves these out, the rest decides
        ids = ", ".join(item.get("rule_ids") or []) or "all its rules"
        problems += [f"{p} (left out: {ids} off)" for p in item.get("problems") or
                     [f"{item.get('file')}:1: fails to compile"]]
    failed = manifest.get("error")
    if failed:
        errors = failed.get("problems") or [str(failed.get("message"))]
        if not any(".rego:" in e for e in errors):
            errors = _culprits(harness, roots) or errors  # rego gave no location: find the file
        problems += errors
    for line in problems:
        print(_rel(line))
    for line in manifest.get("warnings", []):
        print(_rel(line.replace(": ", ": warning: ", 1) if ": " in line else line))
    for scope, used in sorted(manifest.get("builtin_sources", {}).items()):
        for name, path in sorted(used.items()):
            copy = ("the shipped copy" if path.startswith(_SHIPPED) else "the root's copy")
            print(f"builtin {name} ({scope}): {copy}, {_rel(path)}")
    count = sum(len(s.get("policies", [])) for s in manifest.get("scopes", {}).values())
    where = ", ".join(f"{r.scope} {r.path}" for r in roots)
    if count == 0 and not problems:
        problems.append(f"{where}: no routed policy for {harness}: nothing would be checked. "
                        f"Add policies/{harness}/*.rego with a # METADATA routing block, or "
                        "run 'watchdog init'.")
        print(_rel(problems[-1]))
    if problems:
        print(f"{len(problems)} problem(s) in {where}", file=sys.stderr)
        return 1
    ms = manifest.get("build_ms")
    print(f"ok: {count} routed policies compiled ({where})" + (f" in {ms} ms" if ms else ""),
          file=sys.stderr)
    return 0


def inspect(harness: str, policy_dir: str | None, as_json: bool) -> int:
    roots = _roots(harness, policy_dir)
    manifest = bundle.run_builder(harness, roots, None)
    scopes: dict[str, Any] = manifest.get("scopes", {})
    if as_json:
        print(json.dumps({"roots": [list(r) for r in roots], "scopes": scopes,
                          "problems": manifest.get("problems", [])}, indent=2))
        return 0
    for scope, info in scopes.items():
        print(f"{scope} policies ({len(info['policies'])}):")
        for p in info["policies"]:
            tools = ",".join(p["tools"]) or "*"
            signals = f"  signals: {','.join(p['signals'])}" if p["signals"] else ""
            print(f"  {p['package']}  [{','.join(p['events'])} / {tools}]  "
                  f"{_rel(p['file'])}:{p['line']}{signals}")
        print(f"{scope} routing index:")
        for key, packages in sorted(info["index"].items()):
            print(f"  {key} -> {', '.join(packages)}")
        common = info.get("common_index", {})
        if common:
            print(f"{scope} routing index of common/ (normalized event and tool names):")
            for key, packages in sorted(common.items()):
                print(f"  {key} -> {', '.join(packages)}")
    for line in manifest.get("problems", []):
        print(f"skipped: {_rel(line)}")
    return 0
