"""The lock and pyproject.toml agree, and this environment is what the lock says.

A fresh machine installs exactly requirements-lock.txt (scripts/venv.sh); if someone widens a
range in pyproject.toml, adds a dependency or an extra, and forgets `scripts/lock`, these fail
and say which package to re-lock.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _pins() -> dict[str, tuple[str, str | None]]:
    pins: dict[str, tuple[str, str | None]] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        m = PIN.match(line)
        if m:
            pins[canonicalize_name(m.group(1))] = (m.group(2), m.group(3))
    return pins


def _requirements() -> list[Requirement]:
    """Every requirement of the package, all its extras (self-references expanded) and the
    build backend."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = data["project"]
    own = canonicalize_name(project["name"])
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        reqs += [Requirement(r) for r in extra]
    reqs += [Requirement(r) for r in data["build-system"]["requires"]]
    return [r for r in reqs if canonicalize_name(r.name) != own]


def _applies(req: Requirement) -> bool:
    env = {**default_environment(), "extra": ""}
    return req.marker is None or req.marker.evaluate(env)


def test_every_pin_carries_hashes() -> None:
    """pip's --require-hashes (scripts/venv.sh) needs a hash for every package."""
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    pinned = [i for i, line in enumerate(lines) if PIN.match(line)]
    assert pinned, "no pins parsed from requirements-lock.txt"
    unhashed = [lines[i] for i in pinned
                if i + 1 >= len(lines) or "--hash=sha256:" not in lines[i + 1]]
    assert not unhashed, unhashed


def test_every_pyproject_requirement_is_pinned_within_its_range() -> None:
    pins = _pins()
    problems = []
    for req in _requirements():
        if not _applies(req):
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req} is not in the lock")
        elif not req.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{req} but the lock pins {name}=={pins[name][0]}")
    assert not problems, "; ".join(problems) + ". Run scripts/lock and commit the lock."


def test_installed_versions_match_the_lock() -> None:
    """Catches a venv installed from something other than the lock (pip install -e . would
    take the newest releases)."""
    mismatched = []
    env = default_environment()
    for name, (version, marker) in _pins().items():
        if marker and not Requirement(f"x; {marker}").marker.evaluate(env):  # type: ignore[union-attr]
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            mismatched.append(f"{name} missing (lock: {version})")
            continue
        if Version(installed) != Version(version):
            mismatched.append(f"{name} {installed} (lock: {version})")
    assert not mismatched, (
        ", ".join(mismatched) + ". Re-run scripts/venv.sh, which installs the lock.")


@pytest.mark.parametrize("upper", ["rq", "redis", "pydantic", "litellm", "regopy"])
def test_majors_the_code_relies_on_have_upper_bounds(upper: str) -> None:
    for req in _requirements():
        if canonicalize_name(req.name) == upper:
            assert any(s.operator in ("<", "<=", "~=", "==") for s in req.specifier), str(req)
            return
    pytest.fail(f"{upper} is not a requirement")
