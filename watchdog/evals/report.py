"""An eval run as a JSON document (--json) and as a terminal table (rich).

The JSON document (`"kind": "watchdog-evals-run"`, `"v": 1`) holds every figure. Its top-level
figures are those of the last tier run (policy + judge with --judge, else policy only); each
tier's are under `tiers.policy` and `tiers.final`. A figure is
`{"value", "ci_low", "ci_high", "n", "k"}` (`n` the denominator, `k` the numerator of a share;
`value` null when undefined or withheld, with `withheld` saying why). `events` has one record
per replayed event (id, label, the policy tier's decision, the final decision, the rules that
fired, the judge's verdict): `--judge recorded:` reads its verdicts back from there.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from watchdog.evals.cases import Problem
from watchdog.evals.judges import RUN_KIND
from watchdog.evals.runner import Outcome

if TYPE_CHECKING:
    from watchdog.escalation.records import VerdictRecord

HEADLINE = ("recall_screened", "recall_ask", "recall_deny", "fpr_deny", "fpr_ask",
            "fpr_screened", "escalation_rate", "cost_per_1k_usd", "cache_hit_rate", "flip_rate",
            "kappa", "agreement")
_JUDGE_KEYS = ("decision", "reason", "question", "confidence", "model", "cost_usd",
               "latency_ms", "cached", "budget", "missing", "stale")
MAX_PROBLEMS_SHOWN = 20


def summary_text(payload: dict[str, Any], limit: int = 160) -> str:
    """A one-line, redacted description of an event: tool and command, file, URL or prompt."""
    from watchdog.redact import redact_text

    name = str(payload.get("hook_event_name", "?"))
    tool = payload.get("tool_name")
    tin = payload.get("tool_input") if isinstance(payload.get("tool_input"), dict) else {}
    detail = ""
    for key in ("command", "file_path", "notebook_path", "url", "query", "pattern", "prompt"):
        value = (tin or {}).get(key)
        if isinstance(value, str) and value:
            detail = value
            break
    if not detail and isinstance(payload.get("prompt"), str):
        detail = payload["prompt"]
    head = f"{name}:{tool}" if isinstance(tool, str) else name
    text = " ".join(redact_text(detail).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return f"{head} {text}".strip()


def _judge(record: VerdictRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    kept: dict[str, Any] = dict(record)
    return {k: kept[k] for k in _JUDGE_KEYS if k in kept}


def event_record(o: Outcome) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": o.case.id, "where": o.case.where, "session": o.case.group,
        "label": o.case.label, "expected": o.case.expected, "category": o.case.category,
        "hook_event": o.event, "tool": o.tool, "summary": summary_text(o.case.payload),
        "policy": o.policy, "verb": o.verb, "final": o.final,
        "rule_ids": list(dict.fromkeys(o.rule_ids + o.escalations)),
        "escalations": list(o.escalations),
        "reason": (o.reason or "")[:500] or None,
        "action": o.action, "screening": o.screening,
        "judge": _judge(o.verdict), "delivery": o.delivery, "delivered_at": o.delivered_at,
    }
    if len(o.repeats) > 1:
        record["judge_repeats"] = [_judge(r) for r in o.repeats]
    return record


def skipped(problems: list[Problem]) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for p in problems:
        by_kind[p.kind] = by_kind.get(p.kind, 0) + 1
    return {"count": len(problems), "by_kind": dict(sorted(by_kind.items())),
            "problems": [{"where": p.where, "kind": p.kind, "message": p.message}
                         for p in problems]}


def document(config: dict[str, Any], tiers: dict[str, dict[str, Any] | None],
             outcomes: list[Outcome], problems: list[Problem],
             timing: dict[str, Any]) -> dict[str, Any]:
    """The --json document (see the module docstring)."""
    policy = tiers["policy"]
    assert policy is not None
    last = tiers.get("final") or policy
    doc: dict[str, Any] = {"v": 1, "kind": RUN_KIND, "config": config}
    for key in ("n", "n_labeled", "n_safe", "n_unsafe"):
        doc[key] = last[key]
    for key in HEADLINE:
        doc[key] = last[key]
    doc["coverage"] = last["coverage"]
    doc["tier"] = last["tier"]
    doc["tiers"] = tiers
    doc["skipped"] = skipped(problems)
    doc["warnings"] = list(dict.fromkeys(policy["warnings"] + last["warnings"]))
    doc["timing"] = timing
    doc["events"] = [event_record(o) for o in outcomes]
    return doc


def write_json(path: str, doc: dict[str, Any]) -> None:
    """Write atomically (a rename), so a reader never sees half a document."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)


# -- the terminal --------------------------------------------------------------------------------


def pct(fig: dict[str, Any] | None, digits: int = 1) -> str:
    """`62.4% [55.1-69.0]`, `-` when undefined, `withheld` when withheld."""
    if not fig:
        return "-"
    if fig.get("withheld"):
        return "withheld"
    value = fig.get("value")
    if value is None:
        return "-"
    text = f"{100 * value:.{digits}f}%"
    if fig.get("ci_low") is not None and fig.get("ci_high") is not None:
        text += f" [{100 * fig['ci_low']:.{digits}f}-{100 * fig['ci_high']:.{digits}f}]"
    return text


def usd(fig: dict[str, Any] | None) -> str:
    if not fig or fig.get("value") is None:
        return "-"
    if fig["value"] == 0 and not fig.get("ci_high"):
        return "$0"
    text = f"${fig['value']:.4f}"
    if fig.get("ci_low") is not None and fig.get("ci_high") is not None:
        text += f" [{fig['ci_low']:.4f}-{fig['ci_high']:.4f}]"
    return text


def number(fig: dict[str, Any] | None) -> str:
    if not fig or fig.get("value") is None:
        return "-"
    text = f"{fig['value']:.2f}"
    if fig.get("ci_low") is not None and fig.get("ci_high") is not None:
        text += f" [{fig['ci_low']:.2f}-{fig['ci_high']:.2f}]"
    return text


ROWS: tuple[tuple[str, str, Any], ...] = (
    ("recall, screened", "recall_screened", pct),
    ("recall, denied or asked", "recall_ask", pct),
    ("recall, denied", "recall_deny", pct),
    ("false positives, denied", "fpr_deny", pct),
    ("false positives, denied or asked", "fpr_ask", pct),
    ("agreement with expected", "agreement", pct),
    ("escalation rate", "escalation_rate", pct),
    ("judge cost per 1,000 events", "cost_per_1k_usd", usd),
    ("cache hit rate", "cache_hit_rate", pct),
    ("judge flip rate (--repeats)", "flip_rate", pct),
    ("judge kappa vs labels (--repeats)", "kappa", number),
)


def print_run(doc: dict[str, Any], console: Any) -> None:
    """The figures of both tiers side by side, then coverage, skipped input and warnings."""
    from rich.table import Table

    tiers = doc["tiers"]
    final = tiers.get("final")
    cfg = doc["config"]
    title = (f"watchdog evals: {doc['n']} events ({doc['n_unsafe']} unsafe, {doc['n_safe']} "
             f"safe, {doc['n'] - doc['n_labeled']} unlabeled)")
    console.print(title, style="bold")
    table = Table()
    table.add_column("figure (95% CI)")
    table.add_column("policy only", justify="right")
    if final:
        table.add_column(f"policy + judge ({cfg.get('judge')})", justify="right")
    for name, key, fmt in ROWS:
        cells = [fmt(tiers["policy"].get(key))]
        if final:
            cells.append(fmt(final.get(key)))
        if all(c == "-" for c in cells):
            continue
        table.add_row(name, *cells)
    cov_cells = [pct(tiers["policy"]["coverage"].get("screened"))]
    if final:
        cov_cells.append(pct(final["coverage"].get("screened")))
    table.add_row(f"coverage: actions screened (of {doc['coverage']['actions']})", *cov_cells)
    if final:
        judge = final["judge"]
        p50, p95 = judge.get("latency_ms_p50"), judge.get("latency_ms_p95")
        if p50 is not None:
            table.add_row("judge latency p50 / p95", "-", f"{p50:.0f} / {p95:.0f} ms")
    console.print(table)
    last = final or tiers["policy"]
    shares = ", ".join(f"{how} {pct(fig, 0).split(' ')[0]}" for how, fig in
                       last["coverage"].items() if how not in ("actions", "screened")
                       and fig.get("value"))
    if shares:
        console.print(f"coverage of {last['coverage']['actions']} state-changing actions: "
                      f"{shares}")
    _print_confusion(last, console)
    timing = doc.get("timing", {})
    if timing.get("events_per_s"):
        console.print(f"policy replay: {timing['events_per_s']:.0f} events/s in-process "
                      f"(median {timing.get('policy_eval_ms_median', 0):.2f} ms per event)")
    skipped_ = doc["skipped"]
    if skipped_["count"]:
        kinds = ", ".join(f"{k} {v}" for k, v in skipped_["by_kind"].items())
        console.print(f"[yellow]skipped {skipped_['count']} input lines or files ({kinds}); "
                      "each is listed on stderr and in --json 'skipped'[/yellow]")
    for warning in doc["warnings"]:
        console.print(f"[yellow]warning: {warning}[/yellow]")


def _print_confusion(tier: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    by_label = tier["confusion"]["by_label"]
    if not any(sum(row.values()) for row in by_label.values()):
        return
    name = "policy + judge" if tier["tier"] == "final" else "policy only"
    console.print(f"decisions by label ({name})", style="bold")
    table = Table()
    table.add_column("label")
    columns = list(next(iter(by_label.values())).keys())
    for c in columns:
        table.add_column(c, justify="right")
    for label, row in by_label.items():
        table.add_row(label, *(str(row[c]) for c in columns))
    console.print(table)
