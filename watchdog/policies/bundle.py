"""The compiled-bundle cache: reuse a bundle while no policy file changed, rebuild otherwise.

The warm path, run by every hook, lists and stats the policy files, compares that fingerprint
with the cached manifest (`<cache>/manifests/<harness>-<crc of roots>.json`) and, when they
match, hands back the manifest: its routing index decides whether Rego runs at all, and its
bundle file (`<cache>/bundles/<content-hash>-<crc>.rbb`) loads in about a millisecond.

On a miss it runs the builder in a child process (see build.py) and stores the new manifest
with an atomic rename, so concurrent hooks never see a half-written file. A manifest that does
not parse or a bundle whose size or CRC differs from the manifest is rebuilt: rego-cpp crashes
on corrupt bundles, so nothing is loaded unchecked. Compile failures are cached too (keyed by
the same fingerprint) so a broken policy costs one compile, not one per event.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from typing import TYPE_CHECKING, Any, NamedTuple

from watchdog.errors import PolicyCompileError, PolicyError
from watchdog.policies import layout

if TYPE_CHECKING:  # annotations only: the TypedDicts cost ~2 ms to create
    from watchdog.policies.manifest import Excluded, Manifest


BUILD_TIMEOUT_S = 60.0


class Loaded(NamedTuple):
    manifest: Manifest
    bundle_path: str | None  # None when nothing can route (no bundle needed)
    rebuilt: bool
    cache_warning: str | None  # set when the cache dir could not be used


def manifest_path(cache_dir: str, harness: str, roots: list[layout.Root]) -> str:
    key = "\0".join([harness] + [f"{r.scope}:{r.path}" for r in roots]).encode()
    return os.path.join(cache_dir, "manifests", f"{harness}-{zlib.crc32(key):08x}.json")


def _read_manifest(path: str) -> Manifest | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("v") != 1:
        return None
    manifest: Manifest = data  # type: ignore[assignment]  # our own JSON, version-checked
    return manifest


def _write_atomic(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    import threading  # only when writing: the hook path stays free of it

    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def bundle_ok(path: str, manifest: Manifest) -> bool:
    """Size and CRC match what the builder wrote: loading a damaged bundle crashes rego-cpp."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return len(data) == manifest.get("bundle_size") and zlib.crc32(data) == manifest.get(
        "bundle_crc"
    )


def run_builder(
    harness: str, roots: list[layout.Root], bundle_dir: str | None, only: str | None = None,
    exclude: tuple[str, ...] = (),
) -> Manifest:
    """Compile in a child process; a crash there becomes a PolicyCompileError, not ours.

    `only` keeps a single policy file (plus system and helper files), to find a culprit;
    `exclude` leaves files out.
    """
    job = json.dumps(
        {"harness": harness, "roots": [list(r) for r in roots], "bundle_dir": bundle_dir,
         "only": only, "exclude": list(exclude)}
    )
    where = ", ".join(r.path for r in roots)
    import subprocess

    try:
        proc = subprocess.run(
            [sys.executable, "-m", "watchdog.policies.build"],
            input=job.encode(),
            capture_output=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise PolicyCompileError(
            f"compiling the policies in {where} took over {BUILD_TIMEOUT_S:.0f} s. "
            "Run 'watchdog verify' to see which policy is the problem."
        ) from exc
    if proc.returncode < 0:
        raise PolicyCompileError(
            f"the Rego compiler crashed (signal {-proc.returncode}) on the policies in {where}. "
            "Run 'watchdog verify' to find the policy that crashes it."
        )
    try:
        manifest = json.loads(proc.stdout)
    except ValueError:
        manifest = None
    if proc.returncode != 0 or not isinstance(manifest, dict):
        tail = proc.stderr.decode(errors="replace").strip().splitlines()
        detail = tail[-1] if tail else f"exit code {proc.returncode}"
        raise PolicyError(
            f"building the policy bundle for {where} failed: {detail}. "
            "Run 'watchdog verify' for details."
        )
    built: Manifest = manifest  # type: ignore[assignment]  # the builder's JSON (build.py)
    return built


def _failure_manifest(fp: list[Any], exc: PolicyCompileError) -> Manifest:
    return {
        "v": 1,
        "fingerprint": fp,
        "scopes": {},
        "problems": [],
        "warnings": [],
        "error": {"kind": exc.kind, "message": str(exc), "problems": exc.problems},
        "bundle": None,
    }


def crashing_policies(harness: str, roots: list[layout.Root]) -> dict[str, list[str]]:
    """Compile each policy file alone (each in its own child) to find the ones that crash the
    compiler, time out, or fail; path -> problems."""
    found: dict[str, list[str]] = {}
    for f in layout.list_files(roots):
        if f.kind != "policy":
            continue
        try:
            manifest = run_builder(harness, roots, None, only=f.path)
        except PolicyCompileError:
            found[f.path] = [f"{f.path}:1: the Rego compiler crashes on this policy"]
            continue
        failed = manifest.get("error")
        if failed:
            found[f.path] = [p if ".rego:" in p else f"{f.path}:1: {p.removeprefix('rego: ')}"
                             for p in failed.get("problems") or ["fails to compile"]]
    return found


def _without_crashing(harness: str, roots: list[layout.Root],
                      bundle_dir: str) -> Manifest | None:
    """The compiler crashed on the whole set: leave out the policies that crash it alone, so
    one bad file does not switch every policy off. None when that does not help."""
    found = crashing_policies(harness, roots)
    if not found:
        return None
    try:
        manifest = run_builder(harness, roots, bundle_dir, exclude=tuple(sorted(found)))
    except PolicyCompileError:
        return None
    if manifest.get("error"):
        return None
    from watchdog.policies.build import rule_ids

    excluded: list[Excluded] = []
    for path, problems in sorted(found.items()):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                ids = rule_ids(fh.read())
        except OSError:
            ids = []
        excluded.append({"file": path, "problems": problems, "rule_ids": ids})
    manifest["excluded"] = excluded + list(manifest.get("excluded", []))
    return manifest


def load(harness: str, roots: list[layout.Root], cache_dir: str, force: bool = False) -> Loaded:
    """The manifest and bundle for these roots, from the cache when nothing changed."""
    fp = layout.fingerprint(harness, roots, layout.list_files(roots))
    mpath = manifest_path(cache_dir, harness, roots)
    bundle_dir = os.path.join(cache_dir, "bundles")
    if not force:
        cached = _read_manifest(mpath)
        if cached is not None and cached.get("fingerprint") == fp:
            name = cached.get("bundle")
            return Loaded(cached, os.path.join(bundle_dir, name) if name else None, False, None)
    warning = None
    try:
        os.makedirs(bundle_dir, exist_ok=True)
        writable = os.access(bundle_dir, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        import tempfile

        warning = (
            f"the cache dir {cache_dir} is not writable, so policies are compiled on every "
            "call (slow). Fix its permissions or set WATCHDOG_CACHE_DIR."
        )
        bundle_dir = tempfile.mkdtemp(prefix="watchdog-bundle-")
    try:
        manifest = run_builder(harness, roots, bundle_dir)
    except PolicyCompileError as exc:
        manifest = _without_crashing(harness, roots, bundle_dir) or _failure_manifest(fp, exc)
    if writable:
        try:
            _write_atomic(mpath, json.dumps(manifest))
        except OSError as exc:
            warning = f"cannot write {mpath}: {exc.strerror}. Fix the cache dir's permissions."
    name = manifest.get("bundle")
    return Loaded(manifest, os.path.join(bundle_dir, name) if name else None, True, warning)
