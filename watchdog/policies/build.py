"""Compile policy roots into one regopy binary bundle and describe it in a manifest.

This is the cold path. It reads every .rego file, parses METADATA and the rulebook, drops what
Cupcake drops (unrouted policies, disabled builtins), renames global packages into
`cupcake.global.*`, generates the aggregation entrypoints (see `_main_module`), and
compiles everything with regopy into `<bundle_dir>/<content-hash>-<crc>.rbb`.

It runs in a child process (`python -m watchdog.policies.build`, job as JSON on stdin, manifest
as JSON on stdout) because rego-cpp can crash the process on some invalid policies and on
corrupt bundles, and because its compiler prints diagnostics on stdout, which belongs to the
harness in a hook. `verify` and `inspect` use the same child.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import zlib
from typing import Any

from watchdog import __version__
from watchdog.policies import layout, metadata, routing
from watchdog.policies import rulebook as rulebook_mod
from watchdog.policies.engine import QuietStdout
from watchdog.policies.manifest import Excluded, Manifest, PolicyInfo

MAIN_MODULE = "<watchdog>/watchdog_system.rego"
SCOPES = ("project", "global")
VERBS = '{"halt", "deny", "block", "ask", "modify", "add_context", "escalate"}'
_EVALUATE_RE = re.compile(r"(?m)^evaluate\s*(:=|=|if\b|\{)")
_GLOBAL_PACKAGE_RE = re.compile(r"(?m)^(package\s+)cupcake\.(policies|system)\b")
_ERROR_RE = re.compile(r"\(error (\d+):")
_MSG_RE = re.compile(r"\(errormsg (\d+):")


SET_KEYS = (("halts", "halt"), ("denials", "deny"), ("blocks", "block"), ("asks", "ask"),
            ("modifications", "modify"), ("add_context", "add_context"))
ALL_VERBS = tuple(v for _, v in SET_KEYS) + ("escalate",)


def _data_ref(package: str) -> str:
    return "data" + "".join(f'["{segment}"]' for segment in package.split("."))


def _main_module(packages: dict[str, list[str]], custom: dict[str, bool]) -> str:
    """Our entrypoints, generated for the packages at hand.

    Cupcake's evaluate.rego walks `data.cupcake.policies` once per verb, and each walk evaluates
    every rule of every package: 89 ms per query with 50 policies, against 7 ms for direct
    references to each package's verb sets, which give the same decisions. A root whose own
    system/evaluate.rego does more than the standard collection (it reads `input`, say) keeps
    its own `evaluate`; escalations are always collected here.
    """
    parts = ["package watchdog.system", "", "import rego.v1", ""]
    for scope, names in packages.items():
        rule = f"{scope}_sets"
        for package in sorted(names):
            for verb in ALL_VERBS:
                parts.append(
                    f'{rule} contains ["{package}", "{verb}", m] if '
                    f"{{ some m in {_data_ref(package)}.{verb} }}"
                )
        if not names:
            parts.append(f"{rule} := set()")
        if custom.get(scope):
            ns = "data.cupcake" if scope == "project" else "data.cupcake.global"
            decision_set = f"{ns}.system.evaluate"
        else:
            decision_set = "{" + ", ".join(
                f'"{key}": [m | some [_, v, m] in {rule}; v == "{verb}"]' for key, verb in SET_KEYS
            ) + "}"
        parts += [
            "",
            f'{scope} := {{"set": {decision_set}, '
            f'"escalate": [m | some [_, v, m] in {rule}; v == "escalate"]}}',
            "",
            f"{scope}_trace := [[p, v, m] | some [p, v, m] in {rule}]",
            "",
        ]
    return "\n".join(parts)


def is_standard_evaluate(source: str) -> bool:
    """Does this system/evaluate.rego only collect the six verbs, as `cupcake init` writes it?"""
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
    if re.search(r"\binput\b", code) or not re.search(r"walk\(\s*data\.cupcake\.", code):
        return False
    return all(
        re.search(rf'"{key}"\s*:\s*\w+\(\s*"{verb}"\s*\)', code) for key, verb in SET_KEYS
    )


def entrypoints(scope: str) -> tuple[str, str]:
    return f"watchdog/system/{scope}", f"watchdog/system/{scope}_trace"


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _line_of(source: str, offset: int) -> int:
    return source.encode("utf-8")[:offset].count(b"\n") + 1


def _length_prefixed(text: str, pos: int) -> tuple[str, int]:
    """rego-cpp's error s-expressions write strings as `<len>:<chars>`."""
    colon = text.index(":", pos)
    length = int(text[pos:colon])
    start = colon + 1
    return text[start : start + length], start + length


def parse_rego_errors(text: str, sources: dict[str, str]) -> list[str]:
    """Turn a RegoError's s-expression into `file:line: message` strings."""
    out: list[str] = []
    for match in _ERROR_RE.finditer(text):
        try:
            name, end = _length_prefixed(text, match.start(1))
            offset_match = re.match(r"\|(\d+)\|(\d+)", text[end:])
            line = 0
            if offset_match and name in sources:
                line = _line_of(sources[name], int(offset_match.group(1)))
            msg_match = _MSG_RE.search(text, end)
            message = _length_prefixed(text, msg_match.start(1))[0] if msg_match else "error"
        except (ValueError, IndexError):
            continue
        out.append(f"{name}:{line}: {message}" if line else f"{name}: {message}")
    if not out:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "unknown error")
        out.append(f"rego: {first}")
    return out


def _bundle_errors(bundle: Any) -> str:
    """Messages of a bundle that built with errors (rego-cpp returns it instead of raising)."""
    from watchdog.policies.engine import error_messages

    return "; ".join(error_messages(bundle.node())) or "the bundle did not build"


def _problem(path: str, line: int, message: str) -> str:
    return f"{path}:{line}: {message}"


def _reads(source: str, field: str) -> bool:
    """Might this module read `input.watchdog.<field>`? The hook computes `shell` (bashlex costs
    ~150 ms to import) and records `session` taints only when so: when the code accesses
    `watchdog.<field>` / `watchdog["<field>"]`, or takes `input.watchdog` whole and names the
    field anywhere (comments aside)."""
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
    if re.search(rf"\bwatchdog\s*(\.\s*|\[\s*\"){field}\b", code):
        return True
    whole = re.search(r"\binput\s*\.\s*watchdog\b(?!\s*[.\[])", code)
    return bool(whole and re.search(rf"\b{field}\b", code))


def _add_signals(manifest: Manifest, scope: str, signals: dict[str, Any],
                 builtin_signals: dict[str, tuple[str, ...]]) -> None:
    """Signal definitions per scope for the hook's runner (`watchdog.signals`); a later root
    of the same scope (a second global root) adds to them."""
    manifest["signals"].setdefault(scope, {}).update(signals)
    generated = manifest["builtin_signals"].setdefault(scope, {})
    for name, names in builtin_signals.items():
        generated[name] = list(names)


def _collect(
    roots: list[layout.Root], files: list[layout.PolicyFile], manifest: Manifest
) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, list[str]]]:
    """Choose the modules to compile and fill the manifest's routing, problems and builtins."""
    modules: list[tuple[str, str]] = []
    sources: dict[str, str] = {}
    has_evaluate = dict.fromkeys(SCOPES, False)
    custom_evaluate = dict.fromkeys(SCOPES, False)
    packages: dict[str, set[str]] = {scope: set() for scope in SCOPES}
    routed: dict[str, list[tuple[str, metadata.Routing]]] = {scope: [] for scope in SCOPES}
    routed_common: dict[str, list[tuple[str, metadata.Routing]]] = {s: [] for s in SCOPES}
    policies: dict[str, list[PolicyInfo]] = {scope: [] for scope in SCOPES}
    enabled: dict[int, tuple[str, ...]] = {}
    reads_shell = dict.fromkeys(SCOPES, False)
    reads_session = dict.fromkeys(SCOPES, False)
    for f in files:
        if f.kind != "rulebook":
            continue
        book = rulebook_mod.read(f.path, os.path.join(roots[f.root].path, "signals"))
        enabled[f.root] = book.enabled_builtins
        scope = roots[f.root].scope
        _add_signals(manifest, scope, book.signals, book.builtin_signals)
        manifest["builtins"].setdefault(scope, {}).update(book.builtin_config)
        manifest["rulebooks"].setdefault(scope, {}).update(
            {k: v for k, v in book.data.items() if k != "builtins"}
        )
        manifest["problems"] += [_problem(f.path, ln, msg) for ln, msg in book.problems]
        manifest["warnings"] += [_problem(f.path, ln, msg) for ln, msg in book.warnings]
    with_rulebook = {f.root for f in files if f.kind == "rulebook"}
    for i, root in enumerate(roots):  # a root with signals/ but no rulebook.yml
        if i not in with_rulebook:
            found = rulebook_mod.discover_signals(os.path.join(root.path, "signals"))
            _add_signals(manifest, root.scope, found, {})
    if "global" in manifest["builtins"]:  # Cupcake: project configs first, global ones override
        manifest["builtins"]["project"] = {
            **manifest["builtins"].get("project", {}), **manifest["builtins"]["global"]
        }
    files = files + _shipped_builtins(roots, files, enabled, manifest)
    for f in files:
        if f.kind == "rulebook":
            continue
        root = roots[f.root]
        parent = os.path.basename(os.path.dirname(f.path))
        stem = os.path.basename(f.path)[: -len(".rego")]
        if parent == "builtins" and not rulebook_mod.file_enabled(stem, enabled.get(f.root, ())):
            continue
        try:
            source = _read(f.path)
        except (OSError, UnicodeDecodeError) as exc:
            manifest["problems"].append(_problem(f.path, 1, f"cannot read: {exc}"))
            continue
        meta = metadata.parse(source)
        manifest["warnings"] += [_problem(f.path, ln, msg) for ln, msg in meta.warnings]
        if meta.problems or meta.package is None:
            manifest["problems"] += [_problem(f.path, ln, msg) for ln, msg in meta.problems]
            continue
        package = meta.package
        if root.scope == "global":
            source = _GLOBAL_PACKAGE_RE.sub(r"\1cupcake.global.\2", source)
            package = _GLOBAL_PACKAGE_RE.sub(
                r"\1cupcake.global.\2", "package " + package
            ).removeprefix("package ")
        if package in ("cupcake.system", "cupcake.global.system") and _EVALUATE_RE.search(source):
            if has_evaluate[root.scope]:
                continue  # a second global root's evaluate: the first one serves both
            has_evaluate[root.scope] = True
            custom_evaluate[root.scope] = not is_standard_evaluate(source)
        if package.startswith(("cupcake.policies", "cupcake.global.policies")):
            packages[root.scope].add(package)
        modules.append((f.path, source))
        sources[f.path] = source
        reads_shell[root.scope] = reads_shell[root.scope] or _reads(source, "shell")
        reads_session[root.scope] = reads_session[root.scope] or _reads(source, "session")
        # Cupcake ships its global builtins as `package cupcake.global.policies.builtins.*`.
        if meta.routing is not None and (
            meta.package.startswith("cupcake.policies")
            or (root.scope == "global" and package.startswith("cupcake.global.policies"))
        ):
            common = layout.is_common(root, f.path)
            (routed_common if common else routed)[root.scope].append((package, meta.routing))
            policies[root.scope].append(
                {
                    "package": package,
                    "file": f.path,
                    "line": meta.package_line,
                    "events": list(meta.routing.events),
                    "tools": list(meta.routing.tools),
                    "signals": list(meta.routing.signals),
                    "title": (meta.data or {}).get("title"),
                    "common": common,
                }
            )
    present = [s for s in SCOPES if any(r.scope == s for r in roots)]
    for scope in present:
        manifest["scopes"][scope] = {
            "index": routing.build(routed[scope]),
            "common_index": routing.build(routed_common[scope]),
            "policies": policies[scope],
            "aggregation": "system/evaluate.rego" if custom_evaluate[scope] else "built-in",
            "reads_shell": reads_shell[scope],
            "reads_session": reads_session[scope],
        }
    main = _main_module({s: sorted(packages[s]) for s in present}, custom_evaluate)
    modules.append((MAIN_MODULE, main))
    sources[MAIN_MODULE] = main
    return modules, sources, {s: list(entrypoints(s)) for s in present}


def _shipped_builtins(roots: list[layout.Root], files: list[layout.PolicyFile],
                      enabled: dict[int, tuple[str, ...]],
                      manifest: Manifest) -> list[layout.PolicyFile]:
    """Builtins a rulebook enables but its root has no Rego for come from the shipped pack
    (a user who only edits `rulebook.yml` gets them, as Cupcake's docs promise); the
    manifest's `builtin_sources` says which copy each enabled builtin uses, for `verify`."""
    pack = layout.shipped_pack()
    extra: list[layout.PolicyFile] = []
    sources: dict[str, dict[str, str]] = manifest.setdefault("builtin_sources", {})
    for i, names in enabled.items():
        root = roots[i]
        have = {rulebook_mod.ALIASES.get(stem, stem): f.path for f in files
                if f.root == i and os.path.basename(os.path.dirname(f.path)) == "builtins"
                for stem in [os.path.basename(f.path)[: -len(".rego")]]}
        harness = os.path.basename(root.harness_dir)
        shipped_dirs = [] if pack is None else [
            os.path.join(pack, harness, "builtins"),
            os.path.join(pack, "global", harness, "builtins"),
        ]
        for name in names:
            if name in have:
                sources.setdefault(root.scope, {})[name] = have[name]
                continue
            stems = [name] + [a for a, n in rulebook_mod.ALIASES.items() if n == name]
            found = next((os.path.join(d, f"{stem}.rego") for d in shipped_dirs for stem in stems
                          if os.path.isfile(os.path.join(d, f"{stem}.rego"))), None)
            if found is None:
                manifest["warnings"].append(
                    f"{root.rulebook}:1: builtin '{name}' is enabled but neither the root nor "
                    f"the shipped pack has its Rego for {harness}; it does nothing")
                continue
            st = os.stat(found)
            extra.append(layout.PolicyFile(found, i, "policy",
                                           (st.st_size, st.st_mtime_ns, st.st_ino)))
            sources.setdefault(root.scope, {})[name] = found
    return extra


def _content_hash(harness: str, roots: list[layout.Root], modules: list[tuple[str, str]],
                  regopy_version: str) -> str:
    h = hashlib.sha256()
    for part in ("watchdog-bundle-v1", __version__, regopy_version, harness):
        h.update(part.encode() + b"\0")
    for root in roots:
        h.update(f"{root.scope}:{root.path}".encode() + b"\0")
    for name, source in modules:
        h.update(name.encode() + b"\0" + source.encode("utf-8") + b"\0")
    return h.hexdigest()[:32]


_RULE_ID_RE = re.compile(r'"rule_id"\s*:\s*"([^"]+)"')


def rule_ids(source: str) -> list[str]:
    """The rule ids a policy's source declares, to name what is off when it is left out."""
    return sorted(set(_RULE_ID_RE.findall(source)))


def _named_policies(problems: list[str], files: list[layout.PolicyFile]) -> set[str]:
    """The policy files (not system or helper files) that the compiler's messages name."""
    policy_paths = {f.path for f in files if f.kind == "policy"}
    return {path for path in policy_paths if any(p.startswith(path + ":") for p in problems)}


def _exclude_culprits(
    harness: str, roots: list[layout.Root], bundle_dir: str | None, files: list[layout.PolicyFile],
    exclude: tuple[str, ...], problems: list[str], sources: dict[str, str],
) -> Manifest | None:
    """One broken policy must not switch off the others: find the files that fail (named by
    the compiler, else by compiling each one alone), leave them out, and build the rest. None
    when no culprit is found or nothing would be left."""
    named = _named_policies(problems, files)
    found: dict[str, list[str]] = {p: [m for m in problems if m.startswith(p + ":")]
                                   for p in named}
    if not found:
        for f in files:
            if f.kind != "policy":
                continue
            alone = build(harness, roots, None, only=f.path, isolate=False)
            failed = alone.get("error")
            if failed:
                found[f.path] = failed.get("problems") or [f"{f.path}:1: fails to compile"]
    remaining = [f for f in files if f.kind == "policy" and f.path not in found]
    if not found or not remaining:
        return None
    manifest = build(harness, roots, bundle_dir, exclude=exclude + tuple(sorted(found)))
    manifest["excluded"] = [
        Excluded(file=path, problems=[m if ".rego:" in m else f"{path}:1: {m}" for m in msgs],
                 rule_ids=rule_ids(sources.get(path, "")))
        for path, msgs in sorted(found.items())
    ] + list(manifest.get("excluded", []))
    return manifest


def build(
    harness: str, roots: list[layout.Root], bundle_dir: str | None, only: str | None = None,
    exclude: tuple[str, ...] = (), isolate: bool = True,
) -> Manifest:
    """Compile the roots; return the manifest (with `error` set when compilation failed).

    With `bundle_dir` None nothing is written (verify). Never raises for policy problems.
    `exclude` leaves policy files out; with `isolate`, a policy that fails to compile is left
    out (listed in `excluded` with its problems and rule ids) and the rest is built.
    """
    started = time.perf_counter()
    files = layout.list_files(roots)
    fp = layout.fingerprint(harness, roots, files)
    if only is not None:
        files = [f for f in files if f.kind != "policy" or f.path == only]
    if exclude:
        files = [f for f in files if f.path not in exclude]
    manifest: Manifest = {
        "v": 1,
        "watchdog_version": __version__,
        "harness": harness,
        "roots": [list(r) for r in roots],
        "fingerprint": fp,
        "scopes": {},
        "problems": [],
        "warnings": [],
        "builtins": {},
        "rulebooks": {},
        "signals": {},
        "builtin_signals": {},
        "error": None,
        "bundle": None,
    }
    modules, sources, eps = _collect(roots, files, manifest)
    manifest["modules"] = [name for name, _ in modules]
    if not any(s["index"] or s["common_index"] for s in manifest["scopes"].values()):
        manifest["build_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return manifest  # nothing can route: no bundle needed, every event is allowed
    import regopy

    interp = regopy.Interpreter()
    all_eps = [ep for pair in eps.values() for ep in pair]
    try:
        with QuietStdout():
            for name, source in modules:
                interp.add_module(name, source)
            bundle = interp.build(None, all_eps)
        if not bundle.ok():
            raise regopy.RegoError(_bundle_errors(bundle))
    except Exception as exc:  # noqa: BLE001 - RegoError, or rego-cpp failing in other ways
        problems = parse_rego_errors(str(exc), sources)
        if isolate and only is None:
            isolated = _exclude_culprits(harness, roots, bundle_dir, files, exclude, problems,
                                         sources)
            if isolated is not None:
                isolated["fingerprint"] = fp
                return isolated
        manifest["error"] = {
            "kind": "policy_compile_error",
            "message": f"policies failed to compile: {problems[0]}",
            "problems": problems,
        }
        return manifest
    manifest["entrypoints"] = eps
    digest = _content_hash(harness, roots, modules, regopy.__version__)
    if bundle_dir is not None:
        os.makedirs(bundle_dir, exist_ok=True)
        tmp = os.path.join(bundle_dir, f".{digest}.{os.getpid()}.tmp")
        with QuietStdout():
            interp.save_bundle(tmp, bundle, regopy.BundleFormat.Binary)
        with open(tmp, "rb") as fh:
            data = fh.read()
        crc = zlib.crc32(data)
        name = f"{digest}-{crc:08x}.rbb"
        os.replace(tmp, os.path.join(bundle_dir, name))
        manifest["bundle"] = name
        manifest["bundle_crc"] = crc
        manifest["bundle_size"] = len(data)
    manifest["content_hash"] = digest
    manifest["build_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return manifest


def main() -> int:
    """Child-process entry: job JSON on stdin, manifest JSON on stdout."""
    job = json.loads(sys.stdin.read())
    roots = [
        layout.Root(r[0], r[1], r[2], r[3], tuple(r[4]), tuple(r[5]), r[6]) for r in job["roots"]
    ]
    manifest = build(job["harness"], roots, job.get("bundle_dir"), job.get("only"),
                     tuple(job.get("exclude") or ()), bool(job.get("isolate", True)))
    sys.stdout.write(json.dumps(manifest))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
