"""`watchdog evals run` and `watchdog evals diff`: the command line of the eval harness.

    watchdog evals run INPUT... [--policy-dir D] [--judge MODEL|configured|fake|recorded:RUN.json]
                       [--repeats K] [--json OUT] [--html OUT]
    watchdog evals diff --policy-dir A --policy-dir B INPUT... [--judge ...] [--json OUT]

INPUT is a labeled dataset, a session file, a Claude Code transcript, or a folder of them. The
figures go to stdout as a table, every skipped input line to stderr as `file:line: message`.
Exit codes: 0 done (skipped lines included, unless --strict); 1 a usage error, unusable input
(nothing left to evaluate), or a failure that stopped the run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from typing import Any, NoReturn

from watchdog.errors import WatchdogError
from watchdog.evals.inputs import EvalInputError

PROG = "watchdog evals"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # exit 1 like the rest of the CLI, never 2
        raise _UsageError(message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="labeled datasets, session files, transcripts, or folders of them")
    p.add_argument("--judge", metavar="SPEC",
                   help="MODEL (a litellm model string), 'configured' (WATCHDOG_JUDGE_MODEL), "
                        "'fake' (the fake judge server) or 'recorded:RUN.json' (verdicts of an "
                        "earlier --json); default: policies only")
    p.add_argument("--fake-verdict", metavar="JSON",
                   help="with --judge fake: its reply, e.g. '{\"decision\": \"ask\", "
                        "\"reason\": \"r\", \"confidence\": 0.9}' (default: allow)")
    p.add_argument("--global-policies", action="store_true",
                   help="also evaluate the global policy roots (~/.config/watchdog, cupcake)")
    p.add_argument("--redis-url", help="Redis for the verdict cache and budget (default: "
                                       "WATCHDOG_REDIS_URL, else the embedded one)")
    p.add_argument("--judge-latency", type=float, metavar="S",
                   help="replay delivery as if every model call took S seconds (default: the "
                        "measured or recorded latency)")
    p.add_argument("--step-interval", type=float, default=2.0, metavar="S",
                   help="seconds between session steps on the replay clock (default 2)")
    p.add_argument("--resamples", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the 95%% intervals (default 1000; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", metavar="OUT", help="write every figure and event record here")
    p.add_argument("--html", metavar="OUT", help="write a self-contained HTML report here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--strict", action="store_true", help="exit 1 if any input was skipped")


def build_parser() -> _Parser:
    parser = _Parser(prog=PROG, description="Replay datasets and recorded sessions through the "
                     "watchdog's own pipeline and measure what it decides.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="evaluate one policy set (and judge)")
    _common(run)
    run.add_argument("--policy-dir", metavar="D", help="the policies to evaluate (default: "
                     ".watchdog/ or .cupcake/ above each event's cwd, as the hook does)")
    run.add_argument("--repeats", type=int, default=1, metavar="K",
                     help="judge each escalated event K times: flip rate and kappa")
    diff = sub.add_parser("diff", help="list the events whose decision changes between two "
                          "policy sets")
    _common(diff)
    diff.add_argument("--policy-dir", metavar="D", action="append", required=True,
                      help="give it twice: A, then B")
    return parser


def main(argv: list[str]) -> int:
    """Entry point for `watchdog evals ...`; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check(args)
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    try:
        return _run(args) if args.command == "run" else _diff(args)
    except WatchdogError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _check(args: argparse.Namespace) -> None:
    dirs = [args.policy_dir] if isinstance(args.policy_dir, str) else (args.policy_dir or [])
    if args.command == "diff" and len(dirs) != 2:
        raise _UsageError("diff needs --policy-dir exactly twice (A, then B)")
    for d in dirs:
        if not os.path.isdir(d):
            raise _UsageError(f"--policy-dir {d} is not a folder")
    if getattr(args, "repeats", 1) < 1:
        raise _UsageError("--repeats must be 1 or more")
    if args.fake_verdict and args.judge != "fake":
        raise _UsageError("--fake-verdict needs --judge fake")
    if args.judge and args.judge.startswith("recorded:") and not args.judge[9:]:
        raise _UsageError("--judge recorded: needs a file, e.g. recorded:run.json")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    interactive = (sys.stderr if stderr else sys.stdout).isatty()
    return Console(stderr=stderr, width=None if interactive else 120, highlight=False)


def _settings(policy_dir: str | None, global_policies: bool, state_dir: str) -> tuple[Any, str]:
    """(the run's settings, this machine's own state dir: where the embedded Redis lives)."""
    from watchdog import config

    settings = config.load(os.environ, policy_dir=os.path.abspath(policy_dir)
                           if policy_dir else None)
    # The run's state dir is a temp one: the eval must not read this machine's budget snapshot
    # into `input.watchdog`, nor write into its hook log.
    return settings._replace(global_policies=global_policies, state_dir=state_dir), \
        settings.state_dir


def _judge(args: argparse.Namespace, settings: Any, stack: contextlib.ExitStack,
           home_state_dir: str) -> Any:
    """(the Judge or None, the settings the run uses: the judge's model and endpoint)."""
    from watchdog.evals import judges

    spec = args.judge
    if not spec:
        return None, settings
    if spec.startswith("recorded:"):
        recorded = judges.RecordedJudge(spec[len("recorded:"):])
        if recorded.model:
            settings = settings._replace(judge_model=recorded.model)
        return recorded, settings
    if importlib.util.find_spec("litellm") is None:
        raise EvalInputError(f"--judge {spec} calls a model through litellm, which is not "
                             "installed: pip install 'agent-watchdog[judge]'.")
    if spec == "fake":
        try:
            verdict = json.loads(args.fake_verdict) if args.fake_verdict else None
        except ValueError as exc:
            raise EvalInputError(f"--fake-verdict is not JSON: {exc}") from exc
        settings = stack.enter_context(judges.fake_server(settings, verdict))
    else:
        if spec != "configured":
            settings = settings._replace(judge_model=spec)
        _check_key(settings)
    judge = judges.live(settings, spec, args.redis_url, home_state_dir)
    stack.callback(judge.close)
    return judge, settings


def _check_key(settings: Any) -> None:
    """Fail before replaying anything when the model's API key is missing: otherwise every
    escalated event would come back as an `unknown` verdict and the figures would be noise."""
    from watchdog.escalation import judge  # noqa: F401 - first: litellm's local price table

    litellm = importlib.import_module("litellm")

    if settings.judge_api_base:
        return  # a proxy or a local server: its own rules
    try:
        missing = litellm.validate_environment(model=settings.judge_model).get(
            "missing_keys") or []
    except Exception:  # noqa: BLE001 - litellm does not know the provider: let the call tell
        return
    if missing:
        raise EvalInputError(f"--judge {settings.judge_model} needs {', '.join(missing)} in the "
                             "environment (the provider's API key). Set it, or use --judge fake "
                             "or --judge recorded:RUN.json.")


def _progress(total: int, args: argparse.Namespace, stack: contextlib.ExitStack) -> Any:
    if args.no_progress or not sys.stderr.isatty() or total < 50:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = stack.enter_context(Progress(
        "{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=_console(stderr=True), transient=True))
    task = progress.add_task("replaying", total=total)
    return lambda n: progress.advance(task, n)


def _evaluate(args: argparse.Namespace, policy_dir: str | None, streams: list[Any],
              problems: list[Any], stack: contextlib.ExitStack,
              state_dir: str) -> dict[str, Any]:
    """One configuration: replay, summarize, and the JSON document."""
    from watchdog import __version__
    from watchdog.evals import metrics, report, runner

    settings, home_state_dir = _settings(policy_dir, args.global_policies, state_dir)
    judge, settings = _judge(args, settings, stack, home_state_dir)
    total = sum(len(s.cases) for s in streams)
    started = time.perf_counter()
    with contextlib.ExitStack() as bar:
        run = runner.replay(settings, streams, judge, getattr(args, "repeats", 1),
                            args.judge_latency, _progress(total, args, bar))
    wall = time.perf_counter() - started
    outcomes = run.outcomes
    skipped = problems + run.problems
    if not outcomes:
        _print_problems(skipped)
        raise EvalInputError(
            f"no events were evaluated: all {total} failed ({len(run.problems)} problems listed "
            "above). Fix the policies or the inputs; no figures are reported over zero events.")
    if run.unchecked == len(outcomes):
        where = os.path.abspath(policy_dir) if policy_dir else "the events' policy roots"
        raise EvalInputError(
            f"no policy could decide any of the {len(outcomes)} events: {where} holds no "
            "routed policy (an empty policies/claude/, or only disabled builtins). Point "
            "--policy-dir at a folder with policies ('watchdog verify' checks it); no figures "
            "are reported for a set that checks nothing.")
    tiers: dict[str, Any] = {"policy": metrics.summarize(outcomes, "policy",
                                                         resamples=args.resamples,
                                                         seed=args.seed)}
    tiers["final"] = metrics.summarize(outcomes, "final", resamples=args.resamples,
                                       seed=args.seed) if judge else None
    config = {
        "inputs": list(args.inputs), "policy_dir": os.path.abspath(policy_dir)
        if policy_dir else None, "global_policies": args.global_policies,
        "judge": judge.label if judge else None,
        "judge_model": settings.judge_model if judge else None,
        "repeats": getattr(args, "repeats", 1), "wait_deadline_s": settings.wait_deadline_s,
        "judge_latency_s": args.judge_latency, "step_interval_s": args.step_interval,
        "resamples": args.resamples, "seed": args.seed, "bundles": sorted(run.bundles),
        "watchdog_version": __version__,
    }
    evals = [o.eval_ms for o in outcomes]
    rate = run.events_per_s()
    timing = {
        "wall_s": round(wall, 3), "events_per_s": round(rate, 1) if rate else None,
        "replay_events_per_s": round(len(outcomes) / wall, 1) if wall else None,
        "policy_eval_ms_median": round(metrics.percentile(evals, 50) or 0.0, 3),
        "policy_eval_ms_p95": round(metrics.percentile(evals, 95) or 0.0, 3),
    }
    doc = report.document(config, tiers, outcomes, skipped, timing)
    if run.unrooted:
        doc["warnings"].insert(0, (
            f"{run.unrooted} of {len(outcomes)} events found no policies (no .watchdog/ or "
            f".cupcake/ at or above their cwd, e.g. {run.unrooted_cwd}) and were decided by "
            "the shipped default pack, as the hook does; pass --policy-dir to evaluate a "
            "policy folder"))
    return doc


def _print_problems(problems: list[Any]) -> None:
    from watchdog.evals.report import MAX_PROBLEMS_SHOWN

    for p in problems[:MAX_PROBLEMS_SHOWN]:
        sys.stderr.write(f"{p}\n")
    if len(problems) > MAX_PROBLEMS_SHOWN:
        sys.stderr.write(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more (all of them are "
                         "in --json under 'skipped')\n")


def _load(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    from watchdog.evals import inputs

    problems: list[Any] = []
    streams = inputs.load(args.inputs, problems, args.step_interval)
    if not any(s.cases for s in streams):
        _print_problems(problems)
        raise EvalInputError(f"nothing to evaluate: no usable event in {', '.join(args.inputs)}"
                             f" ({len(problems)} problems listed above). No figures are "
                             "reported over zero events.")
    return streams, problems


def _run(args: argparse.Namespace) -> int:
    from watchdog.evals import html_report, report

    streams, problems = _load(args)
    with contextlib.ExitStack() as stack:
        state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="watchdog-evals-"))
        doc = _evaluate(args, args.policy_dir, streams, problems, stack, state_dir)
    _print_problems([_Shown(p) for p in doc["skipped"]["problems"]])
    report.print_run(doc, _console())
    if args.json:
        report.write_json(args.json, doc)
    if args.html:
        html_report.write(args.html, [(args.policy_dir or "policies", doc)])
    return 1 if args.strict and doc["skipped"]["count"] else 0


def _diff(args: argparse.Namespace) -> int:
    from watchdog.evals import diff, html_report, report

    streams, problems = _load(args)
    a_dir, b_dir = args.policy_dir
    docs = []
    with contextlib.ExitStack() as stack:
        state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="watchdog-evals-"))
        for policy_dir in (a_dir, b_dir):
            docs.append(_evaluate(args, policy_dir, streams, problems, stack, state_dir))
    a, b = docs
    _print_problems([_Shown(p) for p in b["skipped"]["problems"]])
    changed = diff.changes(a["events"], b["events"])
    doc = diff.document(a, b, changed)
    diff.print_diff(doc, _console())
    if args.json:
        report.write_json(args.json, doc)
    if args.html:
        html_report.write(args.html, [(f"A {a_dir}", a), (f"B {b_dir}", b)])
    return 1 if args.strict and b["skipped"]["count"] else 0


class _Shown:
    """A skipped-input record from a run document, printed as `file:line: message`."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def __str__(self) -> str:
        return f"{self.record['where']}: {self.record['message']}"
