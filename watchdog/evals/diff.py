"""Two policy sets over the same events: every event whose decision changes, and what the change
does to the figures and the judge's bill.

An event "changes" when its policy-tier decision (deny | ask | escalate | allow) or, with a
judge, its final decision differs between A and B; the rules that fired on each side say why.
"""

from __future__ import annotations

from typing import Any

from watchdog.evals.report import pct, usd

DIFF_KIND = "watchdog-evals-diff"
COMPARED = ("recall_screened", "recall_ask", "recall_deny", "fpr_deny", "fpr_ask",
            "escalation_rate", "cost_per_1k_usd")


def _side(e: dict[str, Any]) -> dict[str, Any]:
    judge = e.get("judge") or {}
    return {"policy": e["policy"], "final": e.get("final"), "rule_ids": e["rule_ids"],
            "reason": (e.get("reason") or "")[:300] or None, "judge": judge.get("decision"),
            "cost_usd": float(judge.get("cost_usd") or 0.0)}


def changes(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Event records (as in a run's JSON `events`, matched by id) whose decision differs, in
    B's order; an event one side skipped is listed with that side null."""
    by_id = {e["id"]: e for e in a}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for eb in b:
        seen.add(eb["id"])
        ea = by_id.get(eb["id"])
        if ea is not None and (ea["policy"], ea.get("final")) == (eb["policy"], eb.get("final")):
            continue
        out.append(_change(ea, eb))
    out += [_change(ea, None) for ea in a if ea["id"] not in seen]
    return out


def _change(ea: dict[str, Any] | None, eb: dict[str, Any] | None) -> dict[str, Any]:
    e = eb or ea
    assert e is not None
    return {"id": e["id"], "where": e["where"], "label": e.get("label"),
            "expected": e.get("expected"), "category": e.get("category"),
            "summary": e["summary"], "a": _side(ea) if ea else None,
            "b": _side(eb) if eb else None}


def document(a: dict[str, Any], b: dict[str, Any], changed: list[dict[str, Any]]) -> dict[str, Any]:
    """The --json of `evals diff`: both runs' headline figures, deltas, and the changed events."""
    def head(doc: dict[str, Any]) -> dict[str, Any]:
        return {"config": doc["config"], "n": doc["n"], "n_safe": doc["n_safe"],
                "n_unsafe": doc["n_unsafe"], **{k: doc[k] for k in COMPARED},
                "coverage": doc["coverage"],
                "judge_cost_usd": (doc["tiers"].get("final") or {}).get("judge", {})
                .get("cost_usd")}

    deltas: dict[str, float | None] = {}
    for key in COMPARED:
        va, vb = a[key].get("value"), b[key].get("value")
        deltas[key] = None if va is None or vb is None else vb - va
    cost_a, cost_b = head(a)["judge_cost_usd"], head(b)["judge_cost_usd"]
    return {
        "v": 1, "kind": DIFF_KIND, "a": head(a), "b": head(b), "deltas": deltas,
        "escalations_delta": _escalations(b) - _escalations(a),
        "cost_delta_usd": None if cost_a is None or cost_b is None else round(cost_b - cost_a, 6),
        "changed": changed,
    }


def _escalations(doc: dict[str, Any]) -> int:
    return sum(1 for e in doc["events"] if e["policy"] == "escalate")


def print_diff(doc: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    a_dir, b_dir = doc["a"]["config"]["policy_dir"], doc["b"]["config"]["policy_dir"]
    changed = doc["changed"]
    console.print(f"{len(changed)} events change: A = {a_dir}, B = {b_dir}", style="bold")
    table = Table()
    for col in ("id", "label", "event", "A", "B"):
        table.add_column(col, overflow="fold")

    def side(s: dict[str, Any] | None) -> str:
        if s is None:
            return "(skipped)"
        text = str(s["policy"]) + (f" -> {s['final']}" if s.get("final") else "")
        return text + (f" [{', '.join(s['rule_ids'])}]" if s["rule_ids"] else "")

    for c in changed:
        table.add_row(c["id"], c["label"] or "-", c["summary"], side(c["a"]), side(c["b"]))
    console.print(table)
    console.print("figures, A -> B", style="bold")
    figures = Table()
    figures.add_column("figure")
    figures.add_column("A", justify="right")
    figures.add_column("B", justify="right")
    for key in COMPARED:
        fmt = usd if key == "cost_per_1k_usd" else pct
        figures.add_row(key, fmt(doc["a"][key]), fmt(doc["b"][key]))
    console.print(figures)
    line = f"escalations: {doc['escalations_delta']:+d}"
    if doc["cost_delta_usd"] is not None:
        line += f"; judge cost: {doc['cost_delta_usd']:+.4f} USD over the whole run"
    else:
        line += " (run with --judge to price them)"
    console.print(line)
