"""The compiled bundle's manifest: the contract between the builder and everything that reads it.

The builder (build.py, in a child process) writes it as JSON beside the bundle; the hook, serve,
`verify`, `doctor`, the escalation request and the evals read it. These TypedDicts name every
key and its type once, so mypy checks each reader; a missing key reads as absent (`total=False`:
an empty root's manifest has no entrypoints, a failed build has `error`).
"""

from __future__ import annotations

from typing import Any, TypedDict

#: Routing index: `Event`, `Event:Tool` or `Event:*` -> packages (routing.py).
Index = dict[str, list[str]]


class PolicyInfo(TypedDict, total=False):
    package: str
    file: str
    line: int
    events: list[str]
    tools: list[str]
    signals: list[str]
    title: str | None
    common: bool  # in policies/common/: routed on the normalized names


class ScopeInfo(TypedDict, total=False):
    index: Index  # native event and tool names (policies/<harness>/)
    common_index: Index  # normalized names (policies/common/)
    policies: list[PolicyInfo]
    aggregation: str  # "built-in" or "system/evaluate.rego"
    reads_shell: bool  # may a policy of this scope read input.watchdog.shell
    reads_session: bool  # ... input.watchdog.session


class BuildError(TypedDict, total=False):
    kind: str
    message: str
    problems: list[str]


class Excluded(TypedDict, total=False):
    file: str
    problems: list[str]
    rule_ids: list[str]


class Manifest(TypedDict, total=False):
    v: int
    watchdog_version: str
    harness: str
    roots: list[list[Any]]
    fingerprint: list[Any]
    scopes: dict[str, ScopeInfo]  # "global", "project"
    entrypoints: dict[str, list[str]]  # scope -> [decision entrypoint, trace entrypoint]
    problems: list[str]  # files left out, as file:line: message
    warnings: list[str]
    excluded: list[Excluded]  # policies that did not compile, left out alone
    builtins: dict[str, dict[str, Any]]  # scope -> builtin name -> its rulebook config
    builtin_sources: dict[str, dict[str, str]]  # scope -> builtin -> the Rego file used
    rulebooks: dict[str, dict[str, Any]]  # scope -> rulebook.yml keys other than builtins
    signals: dict[str, dict[str, Any]]  # scope -> signal name -> its spec
    builtin_signals: dict[str, dict[str, Any]]
    error: BuildError | None
    bundle: str | None  # the bundle file's name in the cache
    bundle_crc: int
    bundle_size: int
    content_hash: str
    modules: list[str]
    build_ms: float
