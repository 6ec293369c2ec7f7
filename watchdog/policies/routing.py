"""Cupcake's routing index: which policy packages an event wakes.

Keys are `Event` (no tools), `Event:Tool`, or `Event:*`. `Event:*` packages join every
existing `Event:<tool>` key of that event; on PreToolUse/PostToolUse, event-only packages join
every `Event:<tool>` key too. A lookup takes `event:tool` (when the payload has a string
`tool_name`) plus the event-only key. Matching is exact and case-sensitive. As in Cupcake, a `*`
policy alone is not found for a tool no other policy names: `verify` warns about it.

Routing is a gate: when any project policy routes, every loaded policy is evaluated (the
aggregation walks all packages), so policies must still check the event in their rule bodies.
The index is built at compile time and stored as JSON in the bundle manifest; `lookup` is all
the hook runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # metadata imports PyYAML's user; the hook only needs lookup()
    from watchdog.policies.metadata import Routing

Index = dict[str, list[str]]


def _add(index: Index, key: str, package: str) -> None:
    packages = index.setdefault(key, [])
    if package not in packages:
        packages.append(package)


def build(policies: Iterable[tuple[str, Routing]]) -> Index:
    """Index (package, routing) pairs of routed, non-system policies."""
    index: Index = {}
    for package, routing in policies:
        for event in routing.events:
            if not routing.tools:
                _add(index, event, package)
            for tool in routing.tools:
                _add(index, f"{event}:{tool}", package)
    specific = [k for k in index if ":" in k and not k.endswith(":*")]
    for key in specific:
        event = key.split(":", 1)[0]
        for package in index.get(f"{event}:*", []):
            _add(index, key, package)
        if event in ("PreToolUse", "PostToolUse"):
            for package in index.get(event, []):
                _add(index, key, package)
    return index


def lookup(index: Index, event: str, tool: str | None) -> list[str]:
    """Packages routed for this event (and tool), without duplicates, in index order."""
    if tool is None:
        return list(index.get(event, ()))
    matched = list(index.get(f"{event}:{tool}", ()))
    for package in index.get(event, ()):
        if package not in matched:
            matched.append(package)
    return matched
