"""`watchdog doctor`: will the watchdog work for this project, and if not, what to do.

    watchdog doctor [--harness claude] [--dir PROJECT] [--json]

Every check ends in findings that are `ok`, a `warning` (it works, maybe not as you expect) or
a `problem` (something does not work), each saying what to do; the exit code is 1 when any is
a problem. The checks, in order:

* hooks: watchdog's entries in PROJECT/.claude/settings.json, .claude/settings.local.json and
  ~/.claude/settings.json name a program that resolves (on PATH, or an executable file) and
  runs (`--version`, when it is watchdog itself);
* policies: the roots the hook uses for PROJECT (the same `layout.discover`), a root that holds
  no policy for the harness, and what `watchdog verify` says of them (run as a subprocess: it
  prints its problems rather than returning them);
* escalation, when a registered hook passes `--watchdog`: Redis answers (the embedded server
  is never started from here), a worker serves the queue, the budget caps can pay for one
  call (`verdicts.check_caps`) and the judge model's API key variable is set;
* environment: `WATCHDOG_*` variables nothing reads, with the name that was probably meant.

Not on the hook's path; litellm (through the budget check) and redis load only when a hook
passes `--watchdog`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from watchdog import config
from watchdog.errors import ConfigError, PolicyError

LEVELS = ("ok", "warning", "problem")
PROJECT_SETTINGS = (".claude/settings.json", ".claude/settings.local.json")
RUN_TIMEOUT_S = 30.0
VERIFY_TIMEOUT_S = 300.0
MAX_LINES = 10  # of verify's output shown in one finding
_OURS = re.compile(r"\bwatchdog\b.*\bhook\b")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# Providers whose models need no API key variable (local servers, cloud IAM credentials).
_NO_KEY = ("ollama", "ollama_chat", "lm_studio", "vllm", "hosted_vllm", "llamafile",
           "bedrock", "sagemaker", "vertex_ai", "vertex_ai_beta")


class Finding(NamedTuple):
    check: str  # hooks | hook_run | version | policies | verify | redis | workers | budget |
    #             judge_key | env | config
    level: str  # ok | warning | problem
    message: str
    fix: str = ""


# -- hooks -------------------------------------------------------------------------------------


def _hook_entries(path: Path, agent: str = "Claude Code") -> tuple[dict[str, list[str]],
                                                                    Finding | None]:
    """watchdog's hook commands in one agent config file, each with its events (the keys of
    its `hooks` object: Claude Code, Cursor and Factory all nest commands under them)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, Finding("hooks", "problem", f"{path} cannot be read as JSON ({exc}), so "
                           f"{agent} cannot read its hooks either", "fix the file")
    hooks = data.get("hooks") if isinstance(data, dict) else None
    found: dict[str, list[str]] = {}
    for event, groups in hooks.items() if isinstance(hooks, dict) else ():
        for command in _commands(groups):
            if _OURS.search(command) or command.startswith(("http://", "https://")):
                found.setdefault(command, []).append(str(event))
    return found, None


def _commands(value: Any) -> list[str]:
    """Every `command` string at any depth (Claude's groups of hooks, Cursor's flat list)."""
    if isinstance(value, dict):
        own = [value["command"]] if isinstance(value.get("command"), str) else []
        if value.get("type") == "http" and "/hook/" in str(value.get("url")):
            own.append(str(value["url"]))  # an http hook posting to `watchdog serve`
        return own + [c for k, v in value.items() if k != "command" for c in _commands(v)]
    if isinstance(value, list):
        return [c for v in value for c in _commands(v)]
    return []


def _suggest(words: list[str]) -> str:
    here = shutil.which("watchdog") or str(Path(sys.executable).with_name("watchdog"))
    rest = " ".join(words[words.index("hook"):]) if "hook" in words else "hook --harness claude"
    return f"use the full path in the hook command, e.g. '{here} {rest}'"


def _check_command(command: str, project: Path) -> tuple[str, str, str]:
    """(level, what was found, what to do) for one hook command, resolved as a shell would
    (Claude Code sets CLAUDE_PROJECT_DIR and runs hooks in the project)."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return "problem", f"cannot be parsed as a shell command ({exc})", "fix its quoting"
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    if not words:
        return "problem", "names no program", "put 'watchdog hook --harness claude' there"
    words = [os.path.expanduser(os.path.expandvars(
        w.replace("${CLAUDE_PROJECT_DIR}", str(project)).replace("$CLAUDE_PROJECT_DIR",
                                                                 str(project))))
             for w in words]
    program, fix = words[0], _suggest(words)
    if "/" in program:
        path = program if os.path.isabs(program) else str(project / program)
        if not os.path.isfile(path):
            return "problem", f"{path} does not exist", fix
        if not os.access(path, os.X_OK):
            return "problem", f"{path} is not executable", f"chmod +x {path}, or {fix}"
    else:
        found = shutil.which(program)
        if found is None:
            return ("problem", f"'{program}' is not on PATH here, so the hook cannot start",
                    fix)
        path = found
    if os.path.basename(path).startswith("watchdog"):
        argv = [path, "--version"]
    elif "-m" in words[:-1] and words[words.index("-m") + 1] == "watchdog":
        argv = [path, "-m", "watchdog", "--version"]
    else:
        return "ok", f"resolves to {path} (not run: it is not watchdog itself)", ""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return "problem", f"{path} does not run ({exc})", fix
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "watchdog" not in output:
        last = output.splitlines()[-1] if output else "no output"
        return ("problem", f"{' '.join(argv)} exited {proc.returncode}: {last}",
                f"reinstall watchdog there, or {fix}")
    return "ok", f"runs ({path}: {output.splitlines()[0]})", ""


def check_hooks(project: Path, home: Path, harness: str = "claude",
                env: Mapping[str, str] | None = None) -> tuple[list[Finding], bool]:
    """The findings, and whether any registered hook turns escalation on (`--watchdog`)."""
    from watchdog import harnesses

    agent = harnesses.get(harness)
    setup = agent.setup
    findings: list[Finding] = []
    escalates = registered = False
    if harness == "claude":
        files = [project / name for name in PROJECT_SETTINGS] + [home / ".claude/settings.json"]
    else:
        files = [setup.config_path(project, home, False), setup.config_path(project, home, True)]
    first: str | None = None
    for path in files:
        entries, broken = _hook_entries(path, harnesses.display(harness))
        if broken is not None:
            findings.append(broken)
        for command, events in entries.items():
            registered = True
            escalates = escalates or "--watchdog" in command.split()
            level, what, fix = (_check_url(command) if command.startswith(("http://", "https"))
                                else _check_command(command, project))
            runnable = level == "ok" and not command.startswith(("http://", "https://"))
            first = first or (command if runnable else None)
            findings.append(Finding("hooks", level, f"{path}: '{command}' "
                                    f"({len(events)} event(s)) {what}", fix))
        for rel in setup.files("watchdog", False):  # the OpenCode plugin
            plugin = path.parent / rel
            if plugin.is_file():
                registered = True
                text = plugin.read_text(encoding="utf-8", errors="replace")
                escalates = escalates or "--watchdog" in text
                findings.append(Finding("hooks", "ok", f"{plugin}: watchdog's plugin is "
                                        "installed"))
    if not registered:
        where = ", ".join(str(f) for f in files)
        findings.append(Finding(
            "hooks", "problem", f"no watchdog hook is registered in {where}, so "
            f"{harnesses.display(harness)} never calls watchdog",
            f"run 'watchdog init --harness {harness} --dir {project}', or add the entries "
            "shown in docs/harnesses.md"))
    if first is not None and env is not None:
        findings.append(_run_sample(first, project, env, setup))
    return findings + [_version(agent)], escalates


def _check_url(url: str) -> tuple[str, str, str]:
    """An http hook: does `watchdog serve` answer at that address?"""
    import urllib.request

    base = url.split("/hook/")[0]
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:  # noqa: S310
            body = json.loads(resp.read() or b"{}")
    except (OSError, ValueError) as exc:
        return ("problem", f"posts to {base}, where no watchdog serve answers ({exc}): the "
                "agent lets every call through unchecked until one does",
                "start 'watchdog serve', or register the command hook with 'watchdog init "
                "--serve' (it falls back in-process)")
    return "ok", f"posts to watchdog serve {body.get('version', '?')} at {base}", ""


def _run_sample(command: str, project: Path, env: Mapping[str, str], setup: Any) -> Finding:
    """Run the registered command once on the harness's sample event (init's check)."""
    from watchdog import hook_check

    check = hook_check.check_hook(command, project, {**env, "CLAUDE_PROJECT_DIR": str(project)},
                                  setup)
    if check.skipped:
        return Finding("hook_run", "ok", "not run on a sample event (none for this harness)")
    if check.ok:
        return Finding("hook_run", "ok", f"the hook denied a sample `rm -rf ~` in {check.ms:.0f} "
                       "ms: it starts, reads the event and loads the policies")
    level = "warning" if check.answered else "problem"
    return Finding("hook_run", level, f"the hook on a sample `rm -rf ~` event: {check.result}",
                   check.advice)


def _version(agent: Any) -> Finding:
    """The agent CLI's version beside the ones watchdog was tested with."""
    facts = agent.facts
    found = shutil.which(facts.binary) if facts.binary else None
    if found is None:
        return Finding("version", "ok", f"'{facts.binary or agent.name}' is not on PATH here, "
                       f"so its version is not checked (tested: {facts.tested_versions})")
    try:
        proc = subprocess.run([found, "--version"], capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
        shown = (proc.stdout or proc.stderr).strip().splitlines()[0][:80]
    except (OSError, subprocess.SubprocessError, IndexError):
        shown = "unknown (--version failed)"
    return Finding("version", "ok", f"{facts.binary} {shown} (tested: {facts.tested_versions})")


# -- policies ----------------------------------------------------------------------------------


def check_policies(harness: str, project: Path, settings: config.Settings,
                   env: Mapping[str, str]) -> list[Finding]:
    from watchdog.policies import layout

    try:
        roots = layout.discover(harness, str(project), settings.policy_dir,
                                config.global_dirs(settings))
    except PolicyError as exc:
        return [Finding("policies", "problem", str(exc))]
    if not roots:
        return [_no_root(project)] + check_verify(harness, project, env)
    findings = []
    for root in roots:
        try:
            count = sum(1 for f in layout.list_files([root]) if f.kind == "policy")
        except PolicyError as exc:
            findings.append(Finding("policies", "problem", str(exc)))
            continue
        if count:
            findings.append(Finding("policies", "ok", f"{root.scope} root {root.path}: {count} "
                                    f"policy file(s) for {harness}"))
            continue
        fix = (f"add .rego policies under {root.harness_dir}, or install the default pack "
               f"with 'watchdog init --dir {project}'" if root.scope == "project" else
               f"add .rego policies under {root.harness_dir}, or remove {root.path}")
        findings.append(Finding(
            "policies", "problem", f"{root.scope} root {root.path} holds no .rego policy for "
            f"{harness} (none under {root.harness_dir}), so nothing from it is checked", fix))
    return findings + check_verify(harness, project, env)


def _no_root(project: Path) -> Finding:
    """No root anywhere: the hook falls back to the default pack shipped with watchdog."""
    from watchdog import init

    where = (f"no policy root for {project}: no .watchdog/ or .cupcake/ at or above it, no "
             "WATCHDOG_POLICY_DIR and no global roots")
    try:
        pack = init.pack_dir()
    except ConfigError as exc:
        return Finding("policies", "problem", f"{where}, and {exc}")
    return Finding("policies", "warning", f"{where}, so the shipped default pack ({pack}) "
                   "applies", f"run 'watchdog init --dir {project}' to install it in the "
                   "project, where you can change it")


def check_verify(harness: str, project: Path, env: Mapping[str, str]) -> list[Finding]:
    """`watchdog verify` in PROJECT, as the user would run it (it prints its problems)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "watchdog", "verify", "--harness", harness],
                              cwd=project, capture_output=True, text=True, env=dict(env),
                              timeout=VERIFY_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return [Finding("verify", "problem", f"'watchdog verify' did not finish ({exc})",
                        f"run 'watchdog verify' in {project} and look at its output")]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    warnings = [line for line in lines if ": warning: " in line]
    problems = [line for line in lines if ": warning: " not in line]
    tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    out = []
    if proc.returncode == 0:
        out.append(Finding("verify", "ok", f"watchdog verify: {tail or 'ok'}"))
    else:
        shown = problems[:MAX_LINES] or [tail or f"exit code {proc.returncode}"]
        more = f"\n... and {len(problems) - MAX_LINES} more" if len(problems) > MAX_LINES else ""
        out.append(Finding("verify", "problem",
                           "watchdog verify found problems:\n" + "\n".join(shown) + more,
                           f"fix each file:line; 'watchdog verify' in {project} lists them"))
    if warnings:
        out.append(Finding("verify", "warning", "watchdog verify warns:\n"
                           + "\n".join(warnings[:MAX_LINES]), "see docs/policies.md"))
    return out


# -- escalation --------------------------------------------------------------------------------


def check_escalation(settings: config.Settings, env: Mapping[str, str]) -> list[Finding]:
    from watchdog.errors import QueueUnavailable
    from watchdog.escalation import queue

    findings: list[Finding] = []
    conn: Any = None
    if settings.redis_url:
        target: config.Settings | None = settings
        where = settings.redis_url
    else:
        sock = queue.embedded_socket(settings.state_dir)
        pid = queue.embedded_pid(settings.state_dir)
        target = None if pid is None else settings._replace(redis_url=f"unix://{sock}")
        where = f"the embedded Redis (unix://{sock}, pid {pid})"
        if pid is None:
            findings.append(Finding(
                "redis", "warning", f"the embedded Redis (unix://{sock}) is not running "
                "(doctor does not start it)", "it starts at the first escalation or with "
                "'watchdog worker'; or set WATCHDOG_REDIS_URL to a shared Redis"))
            findings.append(Finding(
                "workers", "problem", f"no worker serves queue '{settings.queue}' (none runs "
                "without the embedded Redis), so the judge sees no escalated event",
                "start one with 'watchdog worker'"))
    try:
        if target is not None:
            try:
                conn = queue.connect(target, timeout_s=2.0)
                findings.append(Finding("redis", "ok", f"{where} answers"))
                workers = queue.live_workers(conn, settings.queue)
            except QueueUnavailable as exc:
                findings.append(Finding("redis", "problem", str(exc)))
                conn = None
            else:
                findings.append(_workers(workers, settings, where))
        findings += check_budget(settings, conn)
    finally:
        if conn is not None:
            conn.close()
    return findings + check_judge_keys(settings, env)


def _workers(count: int, settings: config.Settings, where: str) -> Finding:
    if count:
        return Finding("workers", "ok", f"{count} live worker(s) serve queue '{settings.queue}'")
    return Finding("workers", "problem", f"no live worker serves queue '{settings.queue}' on "
                   f"{where}, so escalated events get the policy's decision only",
                   "start one with 'watchdog worker' where the judge's API key is set")


def check_budget(settings: config.Settings, conn: Any) -> list[Finding]:
    """Caps that turn the judge off or cannot pay for one call, and the budget right now."""
    from watchdog.escalation import verdicts
    from watchdog.escalation.budget import CAP_VARS, Budget, to_micros, usd_text

    caps = {"daily": settings.budget_daily_usd, "session": settings.budget_session_usd,
            "total": settings.budget_total_usd}
    findings = [Finding("budget", "warning", f"budget_{dim}_usd is 0, which turns the judge "
                        "off: every escalation gets the budget fallback",
                        f"set {CAP_VARS[dim]} above 0") for dim, cap in caps.items() if cap == 0]
    problems = verdicts.check_caps(settings)
    findings += [Finding("budget", "problem", p) for p in problems]
    if problems or findings:
        return findings
    try:
        worst = verdicts.typical_call_usd(settings)
    except Exception as exc:  # noqa: BLE001 - check_caps reported an import failure already
        return [Finding("budget", "warning", f"one call's worst case is unknown ({exc})")]
    text = ", ".join(f"{dim} {usd_text(to_micros(cap))}" for dim, cap in caps.items())
    findings.append(Finding("budget", "ok", f"the caps ({text}) can each pay for one call's "
                            f"worst case ({usd_text(to_micros(worst))} on a typical prompt)"))
    if conn is not None:
        budget = Budget(conn, settings.redis_prefix, caps["daily"], caps["session"],
                        caps["total"])
        state = budget.state(None, call_usd=worst)
        if state["exhausted"]:
            findings.append(Finding("budget", "warning", f"no call can be paid for now: "
                                    f"{state['why']}"))
    return findings


def key_var(model: str) -> str | None:
    """The API key variable litellm reads for a model: `<PROVIDER>_API_KEY` (ANTHROPIC_API_KEY
    for anthropic/..., OPENAI_API_KEY for openai/...); None for providers that take none."""
    if "/" in model:
        provider = model.split("/", 1)[0].lower()
    else:
        provider = "anthropic" if model.startswith("claude") else "openai"
    return None if provider in _NO_KEY else f"{provider.upper()}_API_KEY"


def check_judge_keys(settings: config.Settings, env: Mapping[str, str]) -> list[Finding]:
    findings = []
    for model in dict.fromkeys((settings.judge_model, *settings.judge_fallbacks)):
        var = key_var(model)
        if var is None or env.get(var):
            what = "needs no API key" if var is None else f"{var} is set"
            findings.append(Finding("judge_key", "ok", f"judge model {model}: {what}"))
            continue
        findings.append(Finding(
            "judge_key", "warning", f"judge model {model}: {var} is not set here; the workers "
            "that call it need it (this check sees only doctor's environment)",
            f"export {var}=... where 'watchdog worker' runs"))
    return findings


# -- environment and the report ----------------------------------------------------------------


def check_env(env: Mapping[str, str]) -> list[Finding]:
    findings = []
    for name, nearest in config.unknown_env(env):
        hint = f"did you mean {nearest}?" if nearest else "no setting has a name like it"
        findings.append(Finding(
            "env", "problem", f"{name} is set but nothing reads it, so it has no effect "
            f"({hint})", f"rename it to {nearest}" if nearest else
            "see docs/configuration.md for the names"))
    return findings


def diagnose(harness: str, project: Path, env: Mapping[str, str]) -> list[Finding]:
    home = Path(env.get("HOME") or Path.home())
    findings, escalates = check_hooks(project, home, harness, env)
    try:
        settings = config.load(env)
    except ConfigError as exc:
        settings = None
        findings.append(Finding("config", "problem", str(exc)))
    if settings is not None:
        findings += check_policies(harness, project, settings, env)
        if escalates:
            findings += check_escalation(settings, env)
        else:
            findings.append(Finding("escalation", "ok", "off: no registered hook passes "
                                    "--watchdog, so Redis, workers and budget are not checked"))
    return findings + check_env(env)


def _text(findings: list[Finding], project: Path, harness: str) -> str:
    lines = [f"watchdog doctor: {project} ({harness})"]
    for f in findings:
        first, *rest = f.message.splitlines()
        lines.append(f"{f.level:<8} {f.check:<10} {first}")
        lines += [f"{'':<20}{line}" for line in rest]
        if f.fix:
            lines.append(f"{'':<20}-> {f.fix}")
    problems = sum(f.level == "problem" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    lines.append(f"{problems} problem(s), {warnings} warning(s)")
    return "\n".join(lines)


def run(harness: str, project_dir: str, as_json: bool = False,
        env: Mapping[str, str] | None = None) -> int:
    """Print the findings (text or JSON) and return 1 when any is a problem."""
    env = os.environ if env is None else env
    project = Path(project_dir).expanduser().resolve()
    if not project.is_dir():
        raise ConfigError(f"{project} is not a folder: pass the project with --dir")
    findings = diagnose(harness, project, env)
    if as_json:
        print(json.dumps({
            "project": str(project), "harness": harness,
            "findings": [f._asdict() for f in findings],
            "problems": sum(f.level == "problem" for f in findings),
            "warnings": sum(f.level == "warning" for f in findings),
        }, indent=2))
    else:
        print(_text(findings, project, harness))
    return 1 if any(f.level == "problem" for f in findings) else 0
