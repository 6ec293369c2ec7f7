"""The `watchdog` command line.

argparse rather than click (click costs 30-40 ms to import, more than the hook's whole budget
over the regopy floor), and each subcommand imports what it needs inside its handler. Usage
errors exit 1, never argparse's 2: Claude Code and other harnesses read exit 2 from a hook as
"block".

Exit codes: 0 success (and every hook decision, deny included); 1 usage error, or `verify`
found problems; 2 only from `hook`/`eval` failing closed on an event it could not read.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from watchdog import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(1)


def _hook_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--harness", default="claude", help="the agent that runs the hook (claude)")
    p.add_argument("--policy-dir", help="policy root; default: .watchdog/ or .cupcake/ above cwd")
    p.add_argument(
        "--watchdog",
        action="store_true",
        help="turn on escalation: events a policy marks `escalate` go to the judge workers",
    )


def _root_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--harness", default="claude")
    p.add_argument("--policy-dir", help="policy root; default: .watchdog/ or .cupcake/ above cwd")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="watchdog", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"watchdog {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)
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
    return parser


def _hook_parser(prog: str) -> argparse.ArgumentParser:
    """Only the hook's options: building the full parser costs time on every tool call."""
    p = _Parser(prog=prog)
    _hook_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hook"]:
        args = _hook_parser("watchdog hook").parse_args(argv[1:])
        from watchdog import hook

        return hook.main(args.harness, args.policy_dir, args.watchdog, explain=False)
    args = build_parser().parse_args(argv)
    from watchdog.errors import WatchdogError

    try:
        return int(_dispatch(args))
    except WatchdogError as exc:
        sys.stderr.write(f"watchdog: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: Any) -> int:
    if args.command == "eval":
        from watchdog import hook

        return hook.main(args.harness, args.policy_dir, args.watchdog, explain=args.explain)
    if args.command in ("verify", "inspect"):
        from watchdog.policies import verify

        if args.command == "verify":
            return verify.verify(args.harness, args.policy_dir)
        return verify.inspect(args.harness, args.policy_dir, as_json=args.json)
    raise AssertionError(args.command)
