"""Hook latency benchmark: `watchdog hook --harness claude` as Claude Code runs it, against floors.

Run with the project's venv (the hook is the `watchdog` console script next to sys.executable):

    .venv/bin/python benchmarks/hook_latency.py [--runs 30] [--json OUT]

For each generated policy set (5 and 50 Cupcake-layout policies) it runs, round-robin in a
shuffled order so machine noise hits every series alike:

  floor-1     `python -c pass` with the same interpreter: process start, nothing else
  floor-2     a minimal regopy hook: import regopy, load the hook's own binary bundle, set the
              event as input, query the "project" entrypoint once, exit
  hook warm   the hook with its bundle cache already filled
  hook cold   the hook with an emptied cache dir, so it compiles the bundle first

and prints p50/p95 in ms with ratios against the floors. Then it measures in-process
evaluations per second: `watchdog.pipeline.run(...)` in a loop against a raw regopy loop over the
same events (one interpreter, bundle loaded once). Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

TARGET_RATIO = 1.25  # warm-cache hook p50 <= 1.25x floor-2 p50
SESSION = "041ceb74-e1a0-4a3e-a56d-0ffc50769658"
PROMPT_ID = "2d1cc099-6373-4656-b620-6937d81ba14c"

# floor-2: the least a Python hook built on regopy can do with this bundle and event.
FLOOR2_CODE = """\
import json, sys
import regopy
interp = regopy.Interpreter()
bundle = interp.load_bundle(sys.argv[1], regopy.BundleFormat.Binary)
interp.set_input(regopy.Input(json.loads(sys.stdin.buffer.read())))
interp.query_bundle_entrypoint(bundle, sys.argv[2])
"""


# --------------------------------------------------------------------------- events


def make_events(project: Path) -> list[tuple[str, dict[str, Any]]]:
    """Claude Code 2.1 payloads (modelled on the captured samples), cwd = the temp project."""
    cwd = str(project)

    def common(name: str) -> dict[str, Any]:
        return {
            "session_id": SESSION,
            "transcript_path": f"/home/user/.claude/projects/-home-user-project/{SESSION}.jsonl",
            "cwd": cwd,
            "prompt_id": PROMPT_ID,
            "permission_mode": "default",
            "effort": {"level": "high"},
            "hook_event_name": name,
        }

    def tool(name: str, tool_name: str, tool_input: dict[str, Any], n: int) -> dict[str, Any]:
        event = common(name)
        event.update(
            tool_name=tool_name, tool_input=tool_input, tool_use_id=f"toolu_0001edc10409a72a{n:08x}"
        )
        return event

    prompt = common("UserPromptSubmit")
    del prompt["effort"]
    prompt["prompt"] = "Run the test suite, fix the failing deploy script and push the fix."
    post = tool(
        "PostToolUse", "Bash",
        {"command": "pytest -q tests/test_deploy.py", "description": "Run the deploy tests"}, 7,
    )
    post.update(
        tool_response={
            "stdout": "F..\nFAILED tests/test_deploy.py::test_upload - ConnectionError: refused\n"
                      "1 failed, 2 passed in 0.41s",
            "stderr": "",
            "interrupted": False,
            "isImage": False,
            "noOutputExpected": False,
        },
        duration_ms=612,
    )
    return [
        ("PreToolUse Bash git status", tool(
            "PreToolUse", "Bash",
            {"command": "git status --short", "description": "Show working tree status"}, 1,
        )),
        ("PreToolUse Bash rm -rf", tool(
            "PreToolUse", "Bash",
            {"command": "rm -rf /tmp/build-cache  &&  npm run build",
             "description": "Clean rebuild"}, 2,
        )),
        ("PreToolUse Write", tool(
            "PreToolUse", "Write",
            {"file_path": f"{cwd}/src/app/settings.py",
             "content": 'import os\n\nDEBUG = False\nDEFAULT_API_KEY = "sk-test-0000000000"\n'
                        'API_KEY = os.environ.get("API_KEY", DEFAULT_API_KEY)\n'}, 3,
        )),
        ("PreToolUse Edit", tool(
            "PreToolUse", "Edit",
            {"file_path": f"{cwd}/src/app/deploy.py", "old_string": "timeout=5",
             "new_string": "timeout=30", "replace_all": False}, 4,
        )),
        ("PreToolUse Read .env", tool(
            "PreToolUse", "Read", {"file_path": f"{cwd}/.env"}, 5,
        )),
        ("UserPromptSubmit", prompt),
        ("PostToolUse Bash", post),
    ]


# --------------------------------------------------------------------------- policies


def _decision(rule_id: str, reason: str, severity: str = "HIGH") -> str:
    return (
        f"\tdecision := {{\n\t\t\"rule_id\": \"{rule_id}\",\n\t\t\"reason\": \"{reason}\",\n"
        f"\t\t\"severity\": \"{severity}\",\n\t}}"
    )


# Each template: (events, tools or None, body builder(rule_id, variant index)).
Template = tuple[list[str], list[str] | None, Callable[[str, int], str]]

_BASH_SUBSTRINGS = ["rm -rf /", "git push --force", "chmod -R 777", "| sh", "--no-verify"]
_PROTECTED_PREFIXES = ["/etc/", "/usr/", "/boot/", "/var/lib/", "/root/"]
_PROMPT_WORDS = ["deploy", "production", "migration", "credentials", "release"]
# Patterns run on lower(text): rego-cpp (regopy 1.5) rejects RE2 flags such as `(?i)`, and
# regex.match is then silently undefined.
_OUTPUT_PATTERNS = [r"\bfailed\b", r"traceback", r"permission denied", r"segmentation fault",
                    r"out of memory"]
_ASK_REGEXES = [r"^\s*(sudo|doas)\s", r"\bgit\s+reset\s+--hard\b", r"\bnpm\s+publish\b",
                r"\bdocker\s+system\s+prune\b", r"\bterraform\s+(apply|destroy)\b"]
_SECRET_SUFFIXES = [".env", ".pem", "id_rsa", ".npmrc", ".pypirc"]
_CONTENT_REGEXES = [r"(api[_-]?key|secret)\s*=\s*[\"'][^\"']{8,}", r"\beval\(",
                    r"password\s*=\s*[\"']", r"\bpickle\.loads\(", r"begin rsa private"]
_FORBIDDEN_BINARIES = [
    '{"mkfs", "dd", "shred"}', '{"nc", "ncat", "socat"}', '{"halt", "reboot", "shutdown"}',
    '{"crontab", "at"}', '{"iptables", "ufw"}',
]
_SENSITIVE_TOOLS = ['{"Bash", "Write"}', '{"Edit", "MultiEdit"}', '{"Bash", "Read"}',
                    '{"Write", "Edit", "Read"}', '{"Bash", "Edit"}']


def _bash_deny(rid: str, k: int) -> str:
    needle = _BASH_SUBSTRINGS[k % len(_BASH_SUBSTRINGS)]
    return (
        "deny contains decision if {\n"
        '\tinput.hook_event_name == "PreToolUse"\n'
        '\tinput.tool_name == "Bash"\n'
        f"\tcontains(input.tool_input.command, {json.dumps(needle)})\n"
        + _decision(rid, f"commands containing {needle} are blocked")
        + "\n}"
    )


def _file_prefix(rid: str, k: int) -> str:
    prefix = _PROTECTED_PREFIXES[k % len(_PROTECTED_PREFIXES)]
    return (
        f"protected := {json.dumps(prefix)}\n\n"
        "deny contains decision if {\n"
        '\tinput.hook_event_name == "PreToolUse"\n'
        '\tinput.tool_name in {"Write", "Edit", "MultiEdit"}\n'
        "\tstartswith(input.tool_input.file_path, protected)\n"
        + _decision(rid, f"writing under {prefix} is not allowed")
        + "\n}\n\n"
        "ask contains decision if {\n"
        '\tinput.hook_event_name == "PreToolUse"\n'
        '\tinput.tool_name in {"Write", "Edit", "MultiEdit"}\n'
        "\tpath := input.tool_input.file_path\n"
        '\tnot startswith(path, concat("", [input.cwd, "/"]))\n'
        "\tnot startswith(path, protected)\n"
        + _decision(rid, "this file is outside the project", "MEDIUM")
        + "\n}"
    )


def _pretool_context(rid: str, k: int) -> str:
    tools = _SENSITIVE_TOOLS[k % len(_SENSITIVE_TOOLS)]
    return (
        f"sensitive := {tools}\n\n"
        "add_context contains msg if {\n"
        '\tinput.hook_event_name == "PreToolUse"\n'
        "\tinput.tool_name in sensitive\n"
        '\tinput.permission_mode != "plan"\n'
        f'\tmsg := sprintf("[{rid}] %s runs in %s mode; keep changes inside %s", '
        "[input.tool_name, input.permission_mode, input.cwd])\n"
        "}"
    )


def _prompt_context(rid: str, k: int) -> str:
    word = _PROMPT_WORDS[k % len(_PROMPT_WORDS)]
    return (
        "add_context contains msg if {\n"
        '\tinput.hook_event_name == "UserPromptSubmit"\n'
        f"\tcontains(lower(input.prompt), {json.dumps(word)})\n"
        f'\tmsg := "[{rid}] The user mentioned {word}: follow docs/{word}.md and ask before '
        'anything irreversible."\n'
        "}\n\n"
        "deny contains decision if {\n"
        '\tinput.hook_event_name == "UserPromptSubmit"\n'
        '\tregex.match(`ignore (all|previous) (rules|instructions)`, lower(input.prompt))\n'
        + _decision(rid, "prompt tries to switch off the rules")
        + "\n}"
    )


def _post_output(rid: str, k: int) -> str:
    pattern = _OUTPUT_PATTERNS[k % len(_OUTPUT_PATTERNS)]
    return (
        "add_context contains msg if {\n"
        '\tinput.hook_event_name == "PostToolUse"\n'
        '\tinput.tool_name == "Bash"\n'
        f"\tregex.match(`{pattern}`, lower(input.tool_response.stdout))\n"
        f'\tmsg := sprintf("[{rid}] `%s` reported a problem; read the output before '
        'retrying", [input.tool_input.command])\n'
        "}"
    )


def _bash_ask_regex(rid: str, k: int) -> str:
    pattern = _ASK_REGEXES[k % len(_ASK_REGEXES)]
    return (
        "ask contains decision if {\n"
        '\tinput.hook_event_name == "PreToolUse"\n'
        '\tinput.tool_name == "Bash"\n'
        f"\tregex.match(`{pattern}`, input.tool_input.command)\n"
        + _decision(rid, "this command needs a human to confirm", "MEDIUM")
        + "\n}"
    )


def _read_secrets(rid: str, k: int) -> str:
    suffix = _SECRET_SUFFIXES[k % len(_SECRET_SUFFIXES)]
    return (
        "deny contains decision if {\n"
        '\tinput.hook_event_name == "PreToolUse"\n'
        '\tinput.tool_name in {"Read", "Grep", "Glob"}\n'
        "\tpath := object.get(input.tool_input, \"file_path\", "
        'object.get(input.tool_input, "path", ""))\n'
        f"\tendswith(path, {json.dumps(suffix)})\n"
        + _decision(rid, f"reading {suffix} files exposes secrets")
        + "\n}\n\n"
        "deny contains decision if {\n"
        '\tinput.hook_event_name == "PreToolUse"\n'
        '\tinput.tool_name in {"Read", "Grep", "Glob"}\n'
        '\tcontains(object.get(input.tool_input, "file_path", ""), "/.ssh/")\n'
        + _decision(rid, "SSH keys are off limits")
        + "\n}"
    )


def _content_check(rid: str, k: int) -> str:
    pattern = _CONTENT_REGEXES[k % len(_CONTENT_REGEXES)]
    return (
        "new_text := input.tool_input.content if input.tool_name == \"Write\"\n\n"
        "new_text := input.tool_input.new_string if input.tool_name == \"Edit\"\n\n"
        "ask contains decision if {\n"
        '\tinput.hook_event_name == "PreToolUse"\n'
        f"\tregex.match(`{pattern}`, lower(new_text))\n"
        + _decision(rid, "the new text looks risky; please review it", "MEDIUM")
        + "\n}"
    )


def _bash_tokens(rid: str, k: int) -> str:
    binaries = _FORBIDDEN_BINARIES[k % len(_FORBIDDEN_BINARIES)]
    return (
        f"forbidden := {binaries}\n\n"
        "deny contains decision if {\n"
        '\tinput.hook_event_name == "PreToolUse"\n'
        '\tinput.tool_name == "Bash"\n'
        '\tsome word in split(input.tool_input.command, " ")\n'
        "\tword in forbidden\n"
        + _decision(rid, "this binary must not be run by the agent")
        + "\n}"
    )


def _git_branch(rid: str, k: int) -> str:
    branch = ["main", "master", "release", "production", "develop"][k % 5]
    return (
        "ask contains decision if {\n"
        '\tinput.hook_event_name == "PreToolUse"\n'
        '\tinput.tool_name == "Bash"\n'
        '\tstartswith(input.tool_input.command, "git ")\n'
        f'\tregex.match(`\\bgit\\s+(push|merge|rebase)\\b.*\\b{branch}\\b`, '
        "input.tool_input.command)\n"
        + _decision(rid, f"changing {branch} needs confirmation", "MEDIUM")
        + "\n}\n\n"
        "add_context contains msg if {\n"
        '\tinput.hook_event_name == "PostToolUse"\n'
        '\tinput.tool_name == "Bash"\n'
        '\tstartswith(input.tool_input.command, "git commit")\n'
        f'\tmsg := "[{rid}] Commits on {branch} must reference an issue."\n'
        "}"
    )


# Order matters for the 5-policy set: the first five cover every benchmark event.
TEMPLATES: list[Template] = [
    (["PreToolUse"], ["Bash"], _bash_deny),
    (["PreToolUse"], ["Write", "Edit", "MultiEdit"], _file_prefix),
    (["PreToolUse"], None, _pretool_context),  # event-only: joins every PreToolUse:<tool>
    (["UserPromptSubmit"], None, _prompt_context),
    (["PostToolUse"], ["Bash"], _post_output),
    (["PreToolUse"], ["Bash"], _bash_ask_regex),
    (["PreToolUse"], ["Read", "Grep", "Glob"], _read_secrets),
    (["PreToolUse"], ["Write", "Edit"], _content_check),
    (["PreToolUse"], ["Bash"], _bash_tokens),
    (["PreToolUse", "PostToolUse"], ["Bash"], _git_branch),
]


def policy_text(n: int) -> str:
    events, tools, body = TEMPLATES[n % len(TEMPLATES)]
    rid = f"BENCH-{n:03d}"
    lines = ["# METADATA", "# scope: package", f"# title: benchmark policy {n:02d}", "# custom:",
             "#   routing:", f"#     required_events: {json.dumps(events)}"]
    if tools is not None:
        lines.append(f"#     required_tools: {json.dumps(tools)}")
    lines += [f"package cupcake.policies.p{n:02d}", "", "import rego.v1", "",
              body(rid, n // len(TEMPLATES)), ""]
    return "\n".join(lines)


def write_policies(root: Path, count: int) -> None:
    target = root / "policies" / "claude"
    target.mkdir(parents=True)
    for n in range(count):
        (target / f"p{n:02d}.rego").write_text(policy_text(n))


# --------------------------------------------------------------------------- measuring


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "runs": len(samples),
        "p50_ms": percentile(samples, 0.50),
        "p95_ms": percentile(samples, 0.95),
        "min_ms": min(samples),
        "mean_ms": sum(samples) / len(samples),
        "samples_ms": [round(s, 3) for s in samples],
    }


class Proc(NamedTuple):
    ms: float
    code: int
    stdout: bytes
    stderr: bytes


def timed(cmd: list[str], stdin: bytes, env: dict[str, str], cwd: Path) -> Proc:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, input=stdin, capture_output=True, env=env, cwd=cwd, timeout=120)
    ms = (time.perf_counter() - t0) * 1000
    return Proc(ms, p.returncode, p.stdout, p.stderr)


def check_hook(proc: Proc, label: str) -> None:
    """The hook must answer (exit 0, JSON or nothing on stdout, no watchdog: lines)."""
    err = proc.stderr.decode(errors="replace").strip()
    ok = proc.code == 0 and not err
    if ok and proc.stdout.strip():
        try:
            json.loads(proc.stdout)
        except ValueError:
            ok = False
    if not ok:
        raise SystemExit(
            f"hook failed on {label}: exit {proc.code}\nstdout: {proc.stdout[:500]!r}\n"
            f"stderr: {err[:2000]}"
        )


def check_ok(proc: Proc, label: str) -> None:
    if proc.code != 0:
        raise SystemExit(f"{label} failed: exit {proc.code}: {proc.stderr.decode()[-2000:]}")


def bundle_of(cache_home: Path) -> tuple[str, str, dict[str, Any]]:
    """The bundle file and project entrypoint the hook uses, from its cache manifest."""
    manifests = glob.glob(str(cache_home / "watchdog" / "manifests" / "*.json"))
    if len(manifests) != 1:
        raise SystemExit(f"expected one manifest in {cache_home}, found {manifests}")
    manifest = json.loads(Path(manifests[0]).read_text())
    if not manifest.get("bundle"):
        raise SystemExit(f"the hook's manifest has no bundle: {manifest.get('error')}")
    path = str(cache_home / "watchdog" / "bundles" / manifest["bundle"])
    entry = manifest["entrypoints"]["project"][0]
    return path, entry, manifest


def routed_count(manifest: dict[str, Any], event: dict[str, Any]) -> int | None:
    """How many policy packages the hook's routing index wakes for this event."""
    try:
        from watchdog.policies import routing

        index = manifest["scopes"]["project"]["index"]
        return len(routing.lookup(index, event["hook_event_name"], event.get("tool_name")))
    except (ImportError, KeyError, TypeError, AttributeError):
        return None


def isolated_env(home: Path, cache_home: Path) -> dict[str, str]:
    """The user's environment minus WATCHDOG_*/XDG_*, with HOME and XDG dirs in the temp dir
    (so no global policies or config of the user's leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "XDG_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(cache_home),
        XDG_STATE_HOME=str(home / ".local" / "state"),
    )
    return env


def bench_subprocess(
    tmp: Path, count: int, runs: int, rng: random.Random, hook_bin: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Floors and hook (warm, cold) for one policy set, interleaved round-robin."""
    base = tmp / f"set{count}"
    project = base / "project"
    root = project / ".cupcake"
    write_policies(root, count)
    (project / "src" / "app").mkdir(parents=True)
    home = base / "home"
    home.mkdir()
    warm_cache, cold_cache = base / "cache-warm", base / "cache-cold"
    warm_env = isolated_env(home, warm_cache)
    cold_env = isolated_env(home, cold_cache)
    events = [(label, json.dumps(ev).encode()) for label, ev in make_events(project)]
    hook_cmd = [str(hook_bin), "hook", "--harness", "claude", "--policy-dir", str(root)]

    # Fill the warm cache (this run compiles) and check every event answers.
    t0 = time.perf_counter()
    check_hook(timed(hook_cmd, events[0][1], warm_env, project), "first (compiling) run")
    first_ms = (time.perf_counter() - t0) * 1000
    bundle_path, entry, manifest = bundle_of(warm_cache)
    answers, routed = {}, {}
    for label, data in events:
        proc = timed(hook_cmd, data, warm_env, project)
        check_hook(proc, label)
        answers[label] = verdict(proc.stdout)
        routed[label] = routed_count(manifest, json.loads(data))
    floor1_cmd = [sys.executable, "-c", "pass"]
    floor2_cmd = [sys.executable, "-c", FLOOR2_CODE, bundle_path, entry]
    # Once, printing the result: the floor must really evaluate (an error output is cheap).
    check_cmd = [sys.executable, "-c", FLOOR2_CODE.replace("interp.query", "print(interp.query")
                 .rstrip() + ")", bundle_path, entry]
    proc = timed(check_cmd, events[0][1], warm_env, project)
    check_ok(proc, "floor-2 script")
    if "expressions" not in proc.stdout.decode(errors="replace"):
        raise SystemExit(f"floor-2 query gave no result: {proc.stdout[:500]!r}")

    series: dict[str, list[float]] = {"floor1": [], "floor2": [], "warm": [], "cold": []}
    for i in range(runs):
        label, data = events[i % len(events)]
        order = list(series)
        rng.shuffle(order)
        for name in order:
            if name == "floor1":
                proc = timed(floor1_cmd, b"", warm_env, project)
                check_ok(proc, "python -c pass")
            elif name == "floor2":
                proc = timed(floor2_cmd, data, warm_env, project)
                check_ok(proc, "floor-2 script")
            elif name == "warm":
                proc = timed(hook_cmd, data, warm_env, project)
                check_hook(proc, f"warm {label}")
            else:
                shutil.rmtree(cold_cache / "watchdog", ignore_errors=True)
                proc = timed(hook_cmd, data, cold_env, project)
                check_hook(proc, f"cold {label}")
            series[name].append(proc.ms)
    info = {
        "policies": count,
        "bundle": bundle_path,
        "entry": entry,
        "bundle_bytes": os.path.getsize(bundle_path),
        "first_run_ms": first_ms,
        "answers": answers,
        "routed": routed,
        "_events": events,
        "_env": warm_env,
        "_root": str(root),
        "_project": project,
    }
    return {name: summary(samples) for name, samples in series.items()}, info


def verdict(stdout: bytes) -> str:
    """A short description of the hook's answer: the permission decision or context."""
    if not stdout.strip():
        return "allow (no output)"
    out = json.loads(stdout)
    hso = out.get("hookSpecificOutput", {}) or {}
    parts = []
    if hso.get("permissionDecision"):
        parts.append(hso["permissionDecision"])
    if out.get("decision"):
        parts.append(str(out["decision"]))
    if hso.get("additionalContext"):
        parts.append("+context")
    return " ".join(parts) or "allow"


def bench_inprocess(info: dict[str, Any], seconds: float) -> dict[str, Any]:
    """events/s: watchdog.pipeline.run(...) as it is, and a raw regopy loop (the floor)."""
    import regopy

    from watchdog import pipeline

    events: list[tuple[str, bytes]] = info["_events"]
    env, root, entry = info["_env"], info["_root"], info["entry"]
    interp = regopy.Interpreter()
    bundle = interp.load_bundle(info["bundle"], regopy.BundleFormat.Binary)

    def hook_pass() -> None:
        for _, data in events:
            result = pipeline.run("claude", data, env=env, policy_dir=root)
            if result.exit_code != 0 or result.stderr:
                raise SystemExit(f"pipeline.run failed: {result.stderr}")

    def raw_pass() -> None:
        for _, data in events:
            interp.set_input(regopy.Input(json.loads(data)))
            out = interp.query_bundle_entrypoint(bundle, entry)
            if not out.ok():
                raise SystemExit(f"raw regopy query failed: {out}")

    hook_pass()  # imports and first-call costs out of the way
    raw_pass()
    spent = {"hook": 0.0, "raw": 0.0}
    passes = {"hook": 0, "raw": 0}
    while min(spent.values()) < seconds:
        for name, fn in (("hook", hook_pass), ("raw", raw_pass)):
            t0 = time.perf_counter()
            fn()
            spent[name] += time.perf_counter() - t0
            passes[name] += 1
    rate = {k: passes[k] * len(events) / spent[k] for k in spent}
    return {
        "hook_run_events_per_s": rate["hook"],
        "raw_regopy_events_per_s": rate["raw"],
        "hook_run_ms_per_event": 1000 / rate["hook"],
        "raw_regopy_ms_per_event": 1000 / rate["raw"],
        "raw_over_hook": rate["raw"] / rate["hook"],
        "events": passes["hook"] * len(events),
    }


def _import_times(cmd: list[str], data: bytes, env: dict[str, str], cwd: Path,
                  repeats: int) -> dict[str, tuple[int, int]]:
    """Module -> (self us, cumulative us) from `-X importtime`, the minimum over repeats."""
    best: dict[str, tuple[int, int]] = {}
    for _ in range(repeats):
        proc = timed(cmd, data, env, cwd)
        check_ok(proc, " ".join(cmd[:4]))
        for line in proc.stderr.decode(errors="replace").splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            head, cumulative, name = line.split("|", 2)
            own, cum = int(head.split(":")[1]), int(cumulative)
            key = name.strip()
            old = best.get(key)
            best[key] = (min(own, old[0]), min(cum, old[1])) if old else (own, cum)
    return best


def bench_imports(info: dict[str, Any], hook_bin: Path, repeats: int = 5) -> dict[str, Any]:
    """What the warm hook imports, against floor-2 (`python -X importtime`, min of 5 runs)."""
    data = info["_events"][0][1]
    hook_cmd = [sys.executable, "-X", "importtime", str(hook_bin), "hook", "--harness", "claude",
                "--policy-dir", info["_root"]]
    floor_cmd = [sys.executable, "-X", "importtime", "-c", FLOOR2_CODE, info["bundle"],
                 info["entry"]]
    hook = _import_times(hook_cmd, data, info["_env"], info["_project"], repeats)
    floor = _import_times(floor_cmd, data, info["_env"], info["_project"], repeats)
    extra = {k: v[0] for k, v in hook.items() if k not in floor}
    return {
        "hook_modules": len(hook),
        "floor2_modules": len(floor),
        "hook_self_ms": sum(v[0] for v in hook.values()) / 1000,
        "floor2_self_ms": sum(v[0] for v in floor.values()) / 1000,
        "hook_only_self_ms": sum(extra.values()) / 1000,
        "hook_only_modules": dict(sorted(extra.items(), key=lambda kv: -kv[1])),
        "hook_top_cumulative_us": dict(
            sorted(((k, v[1]) for k, v in hook.items()), key=lambda kv: -kv[1])[:12]
        ),
    }


def print_imports(res: dict[str, Any]) -> None:
    imp = res["imports"]
    print(f"\nImports of the warm hook ({res['policies']} policies; python -X importtime, "
          "min of 5 runs; importtime inflates absolute figures)")
    print(f"  hook:    {imp['hook_modules']:3d} modules, {imp['hook_self_ms']:6.1f} ms")
    print(f"  floor-2: {imp['floor2_modules']:3d} modules, {imp['floor2_self_ms']:6.1f} ms")
    print(f"  only in the hook: {len(imp['hook_only_modules'])} modules, "
          f"{imp['hook_only_self_ms']:.1f} ms:")
    for name, us in list(imp["hook_only_modules"].items())[:12]:
        print(f"    {us / 1000:6.2f} ms  {name}")
    print("  largest cumulative imports in the hook:")
    for name, us in imp["hook_top_cumulative_us"].items():
        print(f"    {us / 1000:6.2f} ms  {name}")


def compile_package() -> Path:
    """Bytecode for watchdog: an editable install writes none, and with PYTHONDONTWRITEBYTECODE
    set every hook would otherwise recompile the package's modules."""
    spec = importlib.util.find_spec("watchdog")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"watchdog is not importable with {sys.executable}; use the venv")
    pkg = Path(list(spec.submodule_search_locations)[0])
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(pkg)], check=True)
    return pkg


def ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b else "   -  "


def print_report(results: list[dict[str, Any]], runs: int) -> None:
    print()
    print(f"Subprocess latency, {runs} runs per row (wall clock of spawn + answer), ms")
    print("(vs floor-2: p50 / regopy-floor p50;  vs floor-1: p50 / `python -c pass` p50)")
    header = (f"{'scenario':<26}{'policies':>9}{'p50':>9}{'p95':>9}"
              f"{'vs floor-2':>12}{'vs floor-1':>12}")
    print(header)
    print("-" * len(header))
    names = [("floor1", "floor-1 python -c pass"), ("floor2", "floor-2 regopy minimal"),
             ("warm", "hook, warm cache"), ("cold", "hook, cold compile")]
    for res in results:
        s = res["subprocess"]
        f1, f2 = s["floor1"]["p50_ms"], s["floor2"]["p50_ms"]
        for key, title in names:
            row = s[key]
            vs2 = ratio(row["p50_ms"], f2) if key in ("warm", "cold") else ""
            vs1 = ratio(row["p50_ms"], f1) if key != "floor1" else ""
            print(f"{title:<26}{res['policies']:>9}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
                  f"{vs2:>12}{vs1:>12}")
        print()
    print(f"Target: warm-cache hook p50 <= {TARGET_RATIO:.2f}x floor-2 p50")
    for res in results:
        s = res["subprocess"]
        r = s["warm"]["p50_ms"] / s["floor2"]["p50_ms"]
        over = s["warm"]["p50_ms"] - s["floor2"]["p50_ms"]
        state = "met" if r <= TARGET_RATIO else "NOT met"
        print(f"  {res['policies']:>3} policies: {r:.2f}x ({over:+.1f} ms over floor-2) -> {state}")
    print()
    print("In-process evaluations (same events, round-robin; warm bundle cache)")
    header = f"{'policies':>9}{'hook.run ev/s':>16}{'raw regopy ev/s':>18}{'raw / hook':>12}"
    print(header)
    print("-" * len(header))
    for res in results:
        p = res["inprocess"]
        print(f"{res['policies']:>9}{p['hook_run_events_per_s']:>16.0f}"
              f"{p['raw_regopy_events_per_s']:>18.0f}{p['raw_over_hook']:>11.2f}x")
    print()
    print("Hook answers (warm run, per event; routed = policy packages the event wakes):")
    labels = list(results[0]["answers"])
    width = max(len(x) for x in labels) + 2
    print(f"  {'event':<{width}}" + "".join(f"{str(r['policies']) + ' policies':>28}"
                                             for r in results))
    for label in labels:
        cells = []
        for r in results:
            n = r["routed_packages"].get(label)
            cells.append(f"{r['answers'][label]} ({'?' if n is None else n} routed)")
        print(f"  {label:<{width}}" + "".join(f"{c:>28}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30, help="runs per series (default 30)")
    parser.add_argument("--policies", default="5,50", help="policy set sizes (default 5,50)")
    parser.add_argument("--eval-seconds", type=float, default=2.0,
                        help="time per in-process loop and policy set (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="shuffle seed for the run order")
    parser.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    parser.add_argument("--importtime", action="store_true",
                        help="also compare the warm hook's imports with floor-2's")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    sizes = [int(x) for x in args.policies.split(",") if x.strip()]

    hook_bin = Path(sys.executable).parent / "watchdog"
    if not hook_bin.exists():
        raise SystemExit(f"no watchdog console script at {hook_bin}; run with the venv python")
    pkg = compile_package()
    print(f"compiled bytecode: python -m compileall -q {pkg}")
    print(f"python: {sys.executable} ({sys.version.split()[0]}), "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
    print(f"hook:   {hook_bin} hook --harness claude --policy-dir <root>")

    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="watchdog-bench-"))
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for count in sizes:
            print(f"  {count} policies: {args.runs} rounds of floor-1/floor-2/warm/cold ...",
                  flush=True)
            series, info = bench_subprocess(tmp, count, args.runs, rng, hook_bin)
            print(f"  {count} policies: in-process loops, {args.eval_seconds:g} s each ...",
                  flush=True)
            inproc = bench_inprocess(info, args.eval_seconds)
            imports = bench_imports(info, hook_bin) if args.importtime else None
            results.append({
                "policies": count,
                "bundle_bytes": info["bundle_bytes"],
                "first_run_ms": info["first_run_ms"],
                "answers": info["answers"],
                "routed_packages": info["routed"],
                "subprocess": series,
                "inprocess": inproc,
                **({"imports": imports} if imports else {}),
            })
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_report(results, args.runs)
    for res in results:
        if "imports" in res:
            print_imports(res)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    if args.json:
        doc = {
            "python": sys.executable,
            "python_version": sys.version,
            "runs": args.runs,
            "target_warm_over_floor2": TARGET_RATIO,
            "results": results,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
