"""The `watchdog` command line.

argparse rather than click (click costs 30-40 ms to import, more than the hook's whole budget
over the regopy floor), and each subcommand imports what it needs inside its handler. Usage
errors exit 1, never argparse's 2: Claude Code and other harnesses read exit 2 from a hook as
"block".

Exit codes: 0 success (and every hook decision, deny included); 1 usage error, or `verify`
found problems; 2 only from `hook`/`eval` failing closed on an event it could not read.
"""

from __future__ import annotations

import sys

from watchdog import __version__

TYPE_CHECKING = False  # `typing` costs ~13 ms to import; `hook --serve` never needs it
if TYPE_CHECKING:
    from typing import Any, NoReturn


#: Kept in step with watchdog.harnesses.NAMES (a test checks), so --help needs no import.
HARNESS_NAMES = ["claude", "cursor", "factory", "opencode"]


def parser_class() -> Any:
    """The argparse parser every subcommand uses, imported only off the hook's fast path: usage
    errors print the usage and exit 1, never argparse's 2 (read as "block" by harnesses)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            self.print_usage(sys.stderr)
            sys.stderr.write(f"{self.prog}: error: {message}\n")
            sys.exit(1)

    return Parser


def _hook_args(p: Any) -> None:
    p.add_argument("--harness", default="claude",
                   help="the agent that runs the hook: " + ", ".join(HARNESS_NAMES))
    p.add_argument("--policy-dir", help="policy root; default: .watchdog/ or .cupcake/ above cwd")
    p.add_argument(
        "--watchdog",
        action="store_true",
        help="turn on escalation: events a policy marks `escalate` go to the judge workers",
    )


def _root_args(p: Any) -> None:
    p.add_argument("--harness", default="claude")
    p.add_argument("--policy-dir", help="policy root; default: .watchdog/ or .cupcake/ above cwd")


def build_parser() -> Any:
    cls = parser_class()
    parser = cls(prog="watchdog", description="Policy engine and LLM-as-judge watchdog "
                          "for AI coding agents.")
    parser.add_argument("--version", action="version", version=f"watchdog {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=cls, required=True)
    p = sub.add_parser("hook", help="answer one hook event: JSON on stdin, response on stdout")
    _hook_args(p)
    p = sub.add_parser("eval", help="like hook, plus a human-readable trace on stderr")
    _hook_args(p)
    p.add_argument("--explain", action="store_true", help="trace routing, rules and timings")
    p = sub.add_parser("verify", help="compile every policy and report problems as file:line")
    _root_args(p)
    p = sub.add_parser("inspect", help="list policies, their routing and the events they bind")
    _root_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("worker", help="start RQ judge workers for escalated events")
    p.add_argument("-n", "--count", type=int, default=1, help="how many worker processes")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.add_argument("-v", "--verbose", action="store_true", help="RQ's own log lines")
    p = sub.add_parser("doctor", help="check the hook registration, policies, Redis, workers, "
                       "budget caps and WATCHDOG_* variables; exit 1 on any problem")
    p.add_argument("--harness", default="claude", choices=HARNESS_NAMES, help="the agent")
    p.add_argument("--dir", default=".", help="the project folder (default: the current one)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("redis", help="the Redis hooks and workers share: url, status, stop")
    p.add_argument("action", choices=["url", "status", "stop"],
                   help="url: print it (for `rq info -u`); status: is it answering; stop: "
                        "stop the embedded server")
    sub.add_parser("fake-judge", help="a fake OpenAI/Anthropic API on 127.0.0.1 for demos",
                   add_help=False)
    sub.add_parser("evals", help="offline eval harness: `evals run`, `evals diff`",
                   add_help=False)
    sub.add_parser("test", help="run the Rego unit tests (*_test.rego) of a policy root",
                   add_help=False)
    sub.add_parser("init", help="install the default policy pack into .watchdog/ and register "
                   "the agent's hook (--harness claude|cursor|factory|opencode)", add_help=False)
    sub.add_parser("uninstall", help="remove watchdog's hooks from the agent's config, and the "
                   "pack files still as shipped", add_help=False)
    sub.add_parser("harnesses", help="the capability matrix: what each agent's answer can "
                   "express, per event", add_help=False)
    sub.add_parser("serve", help="a local server answering hook events over HTTP (Claude Code "
                   "`http` hooks, `hook --serve`)", add_help=False)
    return parser


def _serve_arg(p: Any) -> None:
    p.add_argument("--serve", nargs="?", const="", metavar="URL",
                   help="ask a running `watchdog serve` (default: the URL it recorded, or "
                        "$WATCHDOG_SERVE_URL); evaluates in-process when it cannot answer")


def _hook_parser(prog: str) -> Any:
    """Only the hook's options, for the messages of an unusual hook command line."""
    p = parser_class()(prog=prog)
    _hook_args(p)
    _serve_arg(p)
    return p


def _fast_hook_args(argv: list[str]) -> tuple[str, str | None, bool, str | None] | None:
    """Parse `hook [--harness H] [--policy-dir D] [--watchdog] [--serve [URL]]` without
    argparse (6 ms with its imports, on every tool call); None sends anything else to argparse
    for its messages. The last item is None without --serve, "" for its default URL."""
    harness, policy_dir, escalate, serve = "claude", None, False, None
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--watchdog":
            escalate = True
            continue
        if arg == "--serve":
            serve = rest.pop(0) if rest and rest[0].startswith("http://") else ""
            continue
        name, eq, value = arg.partition("=")
        if name not in ("--harness", "--policy-dir", "--serve"):
            return None
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        if name == "--harness":
            harness = value
        elif name == "--serve":
            serve = value
        else:
            policy_dir = value
    return harness, policy_dir, escalate, serve


def main(argv: list[str] | None = None) -> int:
    """Every command; the hook handles its own failures, the others end here on one line."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hook"]:
        fast = _fast_hook_args(argv[1:])
        if fast is None:
            args = _hook_parser("watchdog hook").parse_args(argv[1:])
            fast = (args.harness, args.policy_dir, args.watchdog, args.serve)
        from watchdog import hook

        harness, policy_dir, escalate, serve = fast
        if serve is not None:
            return hook.main_served(harness, serve or None, policy_dir, escalate)
        return hook.main(harness, policy_dir, escalate, explain=False)
    from watchdog.errors import WatchdogError

    try:
        return _command(argv)
    except WatchdogError as exc:
        sys.stderr.write(f"watchdog: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - no traceback for the user; it goes to the log
        import os
        import traceback

        from watchdog import dirs, logs

        state_dir = dirs.state_dir(os.environ)
        logs.write(state_dir, "error", "internal_error", command=argv[:1],
                   message=str(exc), traceback=traceback.format_exc())
        sys.stderr.write(f"watchdog: internal error: {type(exc).__name__}: {exc} (traceback in "
                         f"{logs.log_path(state_dir)}; please report it)\n")
        return 1


def _command(argv: list[str]) -> int:
    if argv[:1] == ["fake-judge"]:  # its own options, parsed by fake_judge.main
        from watchdog.escalation import fake_judge

        return fake_judge.main(argv[1:])
    if argv[:1] == ["evals"]:  # `evals run|diff`, parsed by the eval harness
        from watchdog.evals import cli as evals_cli

        return evals_cli.main(argv[1:])
    if argv[:1] == ["test"]:  # its own options, parsed by watchdog.policies.tests
        from watchdog.policies import tests

        return tests.main(argv[1:])
    if argv[:1] == ["init"]:  # its own options, parsed by watchdog.init
        from watchdog import init

        return init.main(argv[1:])
    if argv[:1] == ["uninstall"]:
        from watchdog import init

        return init.uninstall_main(argv[1:])
    if argv[:1] == ["harnesses"]:
        from watchdog import matrix

        return matrix.main(argv[1:])
    if argv[:1] == ["serve"]:  # its own options, parsed by watchdog.serve
        from watchdog import serve

        return serve.main(argv[1:])
    return int(_dispatch(build_parser().parse_args(argv)))


def _dispatch(args: Any) -> int:
    if args.command == "eval":
        from watchdog import hook

        return hook.main(args.harness, args.policy_dir, args.watchdog, explain=args.explain)
    if args.command in ("verify", "inspect"):
        from watchdog.policies import verify

        if args.command == "verify":
            return verify.verify(args.harness, args.policy_dir)
        return verify.inspect(args.harness, args.policy_dir, as_json=args.json)
    if args.command == "worker":
        from watchdog.escalation import workers

        return workers.run(args.count, args.burst, args.verbose)
    if args.command == "doctor":
        from watchdog import doctor

        return doctor.run(args.harness, args.dir, as_json=args.json)
    if args.command == "redis":
        from watchdog.escalation import embedded_cli

        return embedded_cli.run(args.action)
    raise AssertionError(args.command)
