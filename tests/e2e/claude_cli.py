"""Find or install the pinned Claude Code CLI for the e2e tests.

Why: the e2e test must exercise the exact binary users run, at a known version, because hook
payloads and reactions to hook answers change between releases. npm's
`@anthropic-ai/claude-code` pulls the native binary in through a platform package
(`@anthropic-ai/claude-code-linux-x64` and friends), so one `npm install` into a private cache
prefix is enough and nothing outside npm is downloaded. Every failure is returned as a reason
string so the test can skip cleanly on machines without npm or registry access.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

CLAUDE_CODE_VERSION = "2.1.197"
PACKAGE = "@anthropic-ai/claude-code"
INSTALL_TIMEOUT_S = 300.0
VERSION_TIMEOUT_S = 30.0


def cache_prefix(version: str = CLAUDE_CODE_VERSION) -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/watchdog-tests/claude-code-<version>`."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "watchdog-tests" / f"claude-code-{version}"


def _runs(binary: Path, version: str) -> bool:
    """True if `binary --version` works and reports the pinned version."""
    try:
        out = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            env={**os.environ, "DISABLE_AUTOUPDATER": "1"},
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip().startswith(version)


def find_installed(prefix: Path, version: str = CLAUDE_CODE_VERSION) -> Path | None:
    """The working native binary under `prefix`, if a previous install left one."""
    modules = prefix / "node_modules" / "@anthropic-ai"
    # linux-x64, linux-arm64, linux-x64-musl, ...: whichever platform package npm picked.
    for cand in sorted(modules.glob("claude-code-*/claude")):
        if cand.is_file() and _runs(cand, version):
            return cand
    return None


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ensure_claude_cli(version: str = CLAUDE_CODE_VERSION) -> tuple[Path | None, str]:
    """Return `(binary, "")`, installing on first use, or `(None, why it is unavailable)`."""
    prefix = cache_prefix(version)
    found = find_installed(prefix, version)
    if found:
        return found, ""
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm is not on PATH, so the Claude Code CLI cannot be installed"
    try:
        prefix.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return None, f"cannot create the CLI cache folder {prefix}: {exc}"
    # Serialise concurrent installs (parallel pytest workers share the cache).
    with (prefix.parent / f"{prefix.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = find_installed(prefix, version)
        if found:
            return found, ""
        manifest = prefix / "package.json"
        if not manifest.exists():
            # Without a manifest npm would walk up and install into some parent project.
            manifest.write_text(json.dumps({"name": "watchdog-e2e-claude", "private": True}))
        try:
            proc = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", f"{PACKAGE}@{version}"],
                cwd=prefix,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"npm install {PACKAGE}@{version} timed out after {INSTALL_TIMEOUT_S}s"
        except OSError as exc:
            return None, f"npm could not be run: {exc}"
        if proc.returncode != 0:
            return None, (
                f"npm install {PACKAGE}@{version} failed (exit {proc.returncode}):\n"
                + _tail(proc.stderr or proc.stdout)
            )
        found = find_installed(prefix, version)
        if found:
            return found, ""
        return None, (
            f"npm installed {PACKAGE}@{version} into {prefix}, but no working native binary "
            "was found under node_modules/@anthropic-ai/claude-code-*/claude "
            "(unsupported platform, or the binary does not run here)"
        )
