"""Where policies live: finding policy roots and listing the files that make up a bundle.

A root is a Cupcake-layout folder (`.cupcake/` or `.watchdog/`: `policies/<harness>/**/*.rego`,
`system/*.rego`, `helpers/*.rego`, `rulebook.yml`) or a flat one (`<harness>/`, `system/`,
`helpers/`, `rulebook.yml` directly inside, as in this repo's `policies/`). Beside Cupcake's
per-harness folders, `common/` (our addition; Cupcake never reads it) holds policies for every
harness: they route on the normalized event and tool names (`input.watchdog.action`), so one
pack serves Claude Code, Cursor, Factory and OpenCode alike. Project roots are
found from `--policy-dir` or by walking up from the event's `cwd`; global roots are
`~/.config/watchdog/` and `~/.config/cupcake/`, evaluated first with Cupcake's global rules.

This runs on every hook call, so it only lists and stats files; reading, hashing and compiling
happen in `bundle.py` when the listing's fingerprint differs from the cached one.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from watchdog import __version__
from watchdog.errors import PolicyError

PROJECT_DIRS = (".watchdog", ".cupcake")
COMMON = "common"
RULEBOOK = "rulebook.yml"


class Root(NamedTuple):
    """One policy root, resolved to the folders that hold its files."""

    path: str
    scope: str  # "project" or "global"
    harness_dir: str  # policies/<harness>, may not exist
    common_dir: str  # policies/common: every harness, routed on normalized names; may not exist
    system_dirs: tuple[str, ...]
    helper_dirs: tuple[str, ...]
    rulebook: str


class PolicyFile(NamedTuple):
    path: str
    root: int  # index into the roots list
    kind: str  # "policy" | "system" | "helper" | "rulebook"
    stat: tuple[int, int, int]  # size, mtime_ns, inode: the warm-path fingerprint


def _root(path: str, scope: str, harness: str, flat: bool) -> Root:
    base = path if flat else os.path.join(path, "policies")
    return Root(
        path=path,
        scope=scope,
        harness_dir=os.path.join(base, harness),
        common_dir=os.path.join(base, COMMON),
        system_dirs=(os.path.join(path, "system"),),
        helper_dirs=(os.path.join(path, "helpers"),)
        + (() if flat else (os.path.join(path, "policies", "helpers"),)),
        rulebook=os.path.join(path, RULEBOOK),
    )


def resolve_policy_dir(policy_dir: str, harness: str) -> Root:
    """Resolve `--policy-dir`: a root, a project with `.watchdog/`/`.cupcake/`, or a flat root."""
    path = os.path.abspath(os.path.expanduser(policy_dir))
    if not os.path.isdir(path):
        raise PolicyError(
            f"Policy dir {path} does not exist. Create it (e.g. '{path}/policies/{harness}/') "
            "or point --policy-dir / WATCHDOG_POLICY_DIR at an existing one."
        )
    if os.path.isdir(os.path.join(path, "policies")):
        return _root(path, "project", harness, flat=False)
    for name in PROJECT_DIRS:
        inner = os.path.join(path, name)
        if os.path.isdir(inner):
            return resolve_policy_dir(inner, harness)
    return _root(path, "project", harness, flat=True)


def find_project_root(cwd: str, harness: str) -> Root | None:
    """The nearest `.watchdog/` (preferred) or `.cupcake/` at or above cwd."""
    current = os.path.abspath(cwd) if cwd else os.getcwd()
    while True:
        for name in PROJECT_DIRS:
            candidate = os.path.join(current, name)
            if os.path.isdir(candidate):
                return resolve_policy_dir(candidate, harness)
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def global_roots(dirs: list[str], harness: str) -> list[Root]:
    """Global roots that hold policies for this harness (`<dir>/policies/<harness>/` or
    `<dir>/policies/common/`)."""
    roots = []
    for d in dirs:
        if d and any(os.path.isdir(os.path.join(d, "policies", sub)) for sub in (harness, COMMON)):
            roots.append(_root(d, "global", harness, flat=False))
    return roots


def shipped_pack() -> str | None:
    """The default pack: policies/ beside the package in a checkout, else the copy inside the
    wheel (`watchdog/_policies`)."""
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(here)
    for candidate in (os.path.join(os.path.dirname(package), "policies"),
                      os.path.join(package, "_policies")):
        if os.path.isdir(os.path.join(candidate, COMMON)):
            return candidate
    return None


def default_root(harness: str) -> Root | None:
    """The shipped pack as a (flat) project root, for events with no policy root anywhere."""
    pack = shipped_pack()
    if pack is None:
        return None
    return _root(pack, "project", harness, flat=True)


def discover(
    harness: str, cwd: str, policy_dir: str | None, global_dirs: list[str]
) -> list[Root]:
    """Global roots first, then the project root: `policy_dir` when given, else the nearest
    `.watchdog/` or `.cupcake/` at or above cwd. Empty `global_dirs` turns global roots off."""
    roots = global_roots(global_dirs, harness)
    if policy_dir:
        roots.append(resolve_policy_dir(policy_dir, harness))
    else:
        found = find_project_root(cwd, harness)
        if found is not None:
            roots.append(found)
    return roots


def is_common(root: Root, path: str) -> bool:
    """Is this policy file in the root's `common/` folder (routed on normalized names)?"""
    return path.startswith(root.common_dir + os.sep)


def _walk_rego(top: str, root: int, kind: str, out: list[PolicyFile], recursive: bool) -> None:
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise PolicyError(f"Cannot list {top}: {exc.strerror}. Fix its permissions.") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if recursive:
                sub_kind = "system" if entry.name == "system" and kind == "policy" else kind
                _walk_rego(entry.path, root, sub_kind, out, recursive)
        elif entry.name.endswith(".rego"):
            st = entry.stat()
            out.append(PolicyFile(entry.path, root, kind, (st.st_size, st.st_mtime_ns, st.st_ino)))


def list_files(roots: list[Root]) -> list[PolicyFile]:
    """Every file that goes into the bundle or changes how it is compiled, in a stable order."""
    out: list[PolicyFile] = []
    for i, root in enumerate(roots):
        _walk_rego(root.harness_dir, i, "policy", out, recursive=True)
        _walk_rego(root.common_dir, i, "policy", out, recursive=True)
        for d in root.system_dirs:
            _walk_rego(d, i, "system", out, recursive=False)
        for d in root.helper_dirs:
            _walk_rego(d, i, "helper", out, recursive=True)
        try:
            st = os.stat(root.rulebook)
            out.append(
                PolicyFile(root.rulebook, i, "rulebook", (st.st_size, st.st_mtime_ns, st.st_ino))
            )
        except OSError:
            pass
    return out


_BUILDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build.py")


def fingerprint(harness: str, roots: list[Root], files: list[PolicyFile]) -> list[Any]:
    """What the warm path compares with the manifest: any added, removed or touched file
    (path, size, mtime, inode) changes it, and so does a new watchdog version or builder, or a
    script added to or removed from a root's `signals/` (its contents are read when it runs)."""
    try:
        st = os.stat(_BUILDER)
        builder = [st.st_size, st.st_mtime_ns]
    except OSError:
        builder = []
    return [
        __version__,
        builder,
        harness,
        [[r.scope, r.path] for r in roots],
        [[f.path, *f.stat] for f in files],
        _signal_files(roots),
    ]


def _signal_files(roots: list[Root]) -> list[list[Any]]:
    """`<root>/signals/*`: Cupcake's discovered signals, part of the manifest."""
    out: list[list[Any]] = []
    for root in roots:
        try:
            entries = sorted(os.scandir(os.path.join(root.path, "signals")), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith("."):
                out.append([entry.path])
    return out
