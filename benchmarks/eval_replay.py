"""Eval replay benchmark: the eval harness's policy-only replay against a raw regopy loop.

Run with the project's venv:

    .venv/bin/python benchmarks/eval_replay.py [--events FILE.jsonl] [--policy-dir D]
                                               [--rounds 7] [--json OUT]

Both sides evaluate the same events against the same compiled bundle, in one process:

  harness   `watchdog.evals.runner.replay` with no judge: for every event claude.parse,
            evaluation.evaluate (roots, bundle cache check, routing, Cupcake preprocessing, the
            regopy query, decision synthesis), then the tiers and the action class
  floor     a bare regopy loop: the bundle loaded once, then per event `set_input` with the raw
            payload and one query of the project entrypoint (the least any regopy-based
            replay can do per event)

Rounds alternate harness and floor so machine noise hits both alike; each prints events/s,
and the summary is the median of each with the ratio harness / floor. Events default to the
project's labeled set (evals/datasets/dev.jsonl), else the public set in ../shared/datasets/.
Figures are reported, never asserted. Everything is written in a temp dir removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watchdog import config, evaluation  # noqa: E402
from watchdog.evals import inputs, runner  # noqa: E402
from watchdog.evals.cases import Problem  # noqa: E402
from watchdog.harnesses import claude  # noqa: E402
from watchdog.policies import bundle  # noqa: E402

DEFAULT_EVENTS = (REPO / "evals" / "datasets" / "dev.jsonl",
                  REPO.parent / "shared" / "datasets" / "public-dev.jsonl")


def _streams(path: str) -> list[Any]:
    problems: list[Problem] = []
    streams = inputs.load([path], problems)
    for p in problems[:5]:
        print(f"  skipped {p}", file=sys.stderr)
    return streams


def _floor_setup(settings: config.Settings, payloads: list[dict[str, Any]]) -> Any:
    """The regopy interpreter, bundle and entrypoint the hook uses for these events."""
    import regopy

    event = claude.parse(payloads[0])
    loaded = bundle.load("claude", evaluation.roots_for(settings, event), settings.cache_dir)
    if loaded.bundle_path is None:
        raise SystemExit("no policy routes these events: nothing for regopy to evaluate")
    entry = loaded.manifest["entrypoints"]["project"][0]
    interp = regopy.Interpreter()
    compiled = interp.load_bundle(loaded.bundle_path, regopy.BundleFormat.Binary)
    return regopy, interp, compiled, entry


def _floor(setup: Any, payloads: list[dict[str, Any]]) -> float:
    regopy, interp, compiled, entry = setup
    started = time.perf_counter()
    for payload in payloads:
        interp.set_input(regopy.Input(payload))
        interp.query_bundle_entrypoint(compiled, entry)
    return len(payloads) / (time.perf_counter() - started)


def _harness(settings: config.Settings, streams: list[Any]) -> float:
    started = time.perf_counter()
    run = runner.replay(settings, streams)
    elapsed = time.perf_counter() - started
    return len(run.outcomes) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", help="a labeled dataset (.jsonl); default: the project's")
    parser.add_argument("--policy-dir", default=str(REPO / "policies"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    events = args.events or next((str(p) for p in DEFAULT_EVENTS if p.is_file()), None)
    if events is None:
        raise SystemExit("no events: pass --events FILE.jsonl")
    with tempfile.TemporaryDirectory(prefix="watchdog-bench-") as tmp:
        env = {"HOME": tmp, "XDG_CACHE_HOME": f"{tmp}/cache", "XDG_STATE_HOME": f"{tmp}/state",
               "XDG_CONFIG_HOME": f"{tmp}/config", "PATH": os.environ.get("PATH", "")}
        settings = config.load(env, policy_dir=os.path.abspath(args.policy_dir))
        settings = settings._replace(global_policies=False)
        streams = _streams(events)
        payloads = [c.payload for s in streams for c in s.cases]
        print(f"{len(payloads)} events from {events}; policies {args.policy_dir}")
        runner.replay(settings, streams)  # compile the bundle and load the engine once
        setup = _floor_setup(settings, payloads)
        harness_rates, floor_rates = [], []
        for i in range(args.rounds):
            harness_rates.append(_harness(settings, streams))
            floor_rates.append(_floor(setup, payloads))
            print(f"  round {i + 1}: harness {harness_rates[-1]:8.0f} events/s   "
                  f"floor {floor_rates[-1]:8.0f} events/s")
    harness_rate = statistics.median(harness_rates)
    floor_rate = statistics.median(floor_rates)
    ratio = harness_rate / floor_rate
    overhead_ms = 1000 / harness_rate - 1000 / floor_rate
    print(f"\nharness (policy-only replay, in-process): {harness_rate:8.0f} events/s")
    print(f"floor (raw regopy loop, same events):     {floor_rate:8.0f} events/s")
    print(f"ratio harness / floor: {ratio:.2f}  (harness adds {overhead_ms:.2f} ms per event)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"events": len(payloads), "source": events, "policy_dir": args.policy_dir,
                       "harness_events_per_s": harness_rates, "floor_events_per_s": floor_rates,
                       "median_harness": harness_rate, "median_floor": floor_rate,
                       "ratio": ratio}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
