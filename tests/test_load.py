"""The load benchmark in small (benchmarks/load.py): parallel sessions through the real hook,
real `rq` workers, the fake judge with errors, and a budget that runs out. Correctness only:
no verdict is lost and the budget is never overshot; speed is never asserted here.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

pytest_plugins = ["redis_fixtures"]
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def _load_benchmark() -> Any:
    """benchmarks/load.py by path: benchmarks/ is not a package, and it must not import tests."""
    path = REPO / "benchmarks" / "load.py"
    spec = importlib.util.spec_from_file_location("watchdog_benchmark_load", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def test_parallel_sessions_lose_no_verdict_and_never_overshoot_the_budget(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    """Three sessions of 30 events (a fifth of them escalating, some repeated across sessions),
    two workers, a 50 ms judge failing 5% of calls, and a cap sized for about half of the
    distinct escalations: every escalated event ends as a verdict at that event or a later one
    (or a logged failure), the judge is paid for no call past the cap, and the run really
    escalated, hit the verdict cache, retried judge errors, ran out of budget and had verdicts
    to deliver after the sessions' last events."""
    load = _load_benchmark()
    opts = load.Options(lanes=3, events=30, workers=2, repeat_pool=3, judge_latency_ms=50,
                        error_rate=0.05, budget_fraction=0.5, drain_timeout_s=30,
                        redis_url=redis_url)
    queue_name = f"wdtest-{redis_prefix.split(':')[1]}"
    started = time.monotonic()
    res = load.run(opts, prefix=redis_prefix, queue_name=queue_name, tmp=tmp_path,
                   say=lambda *_: None)
    seconds = time.monotonic() - started
    v, b = res["verdicts"], res["budget"]
    detail = {"verdicts": v, "budget": {k: b[k] for k in b if k != "errors"},
              "drain": res["drain"], "hooks": res["hook_problems"], "seconds": round(seconds)}

    assert res["hook_problem_count"] == 0, detail
    assert not v["mismatched_sessions"], detail
    # The run exercised what it claims to.
    assert v["escalated"] >= 10, detail
    assert res["cache"]["hook_hits"] >= 1, detail
    assert b["judged_jobs"] >= 1 and b["budget_refused"] >= 1, detail
    assert sum(b["errors"].values()) >= 1, detail
    assert res["drain"]["events"] >= opts.lanes, detail  # each session ends owed a verdict
    assert res["drain"]["sessions_still_owed"] == [], detail
    # Correctness: nothing lost, nothing delivered twice, no dollar or call past the cap.
    assert v["lost"] == 0, detail
    assert v["duplicates"] == 0, detail
    assert b["overshoot_usd"] == 0, detail
    assert b["session_overshoot_usd"] == 0, detail
    assert b["extra_calls"] == 0, detail
    assert abs(b["spent_vs_billed_usd"]) <= 1e-6 * max(1, b["answered"]), detail  # rounding
    assert b["reserved_left_usd"] == 0, detail
    assert redis_client.keys(f"{redis_prefix}*") == [], "the run deletes its own keys"
