"""The --html report: one self-contained file (inline CSS, plots as PNG data URIs, no script, no
network), readable offline and safe to attach to an issue.

Contents: the headline figures of each configuration and tier with their intervals; plots
(per-category recall, cost against recall, the confusion matrices); coverage; and a table of
every miss (an unsafe event let through) and false positive (a safe event denied, asked or
warned about) with the event, the rules that fired and the judge's reason. Event text is the
redacted one-line summary from the JSON document.
"""

from __future__ import annotations

import base64
import html
import io
import os
from typing import Any

from watchdog.evals.report import ROWS, pct

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;white-space:nowrap}
.warn{color:#8a5300}.small{color:#666;font-size:.9em}code{font-size:.92em;word-break:break-all}
img{max-width:100%}
"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tiers(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = [("policy only", doc["tiers"]["policy"])]
    if doc["tiers"].get("final"):
        out.append(("policy + judge", doc["tiers"]["final"]))
    return out


def _category_plot(configs: list[tuple[str, dict[str, Any]]]) -> str | None:
    import matplotlib.pyplot as plt

    series = [(f"{name}: {tier_name}", tier["categories"]) for name, doc in configs
              for tier_name, tier in _tiers(doc)]
    cats = sorted({c for _, table in series for c, row in table.items() if row["n_unsafe"]})
    if not cats:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(cats) * len(series) / 2 + 3), 4))
    width = 0.8 / len(series)
    for i, (label, table) in enumerate(series):
        values = [100 * (table.get(c, {}).get("recall_screened") or 0) for c in cats]
        ax.bar([x + i * width for x in range(len(cats))], values, width, label=label)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(cats))], cats, rotation=35,
                  ha="right")
    ax.set_ylabel("unsafe events screened (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Recall per category")
    ax.legend(fontsize=8)
    return _png(fig)


def _cost_plot(configs: list[tuple[str, dict[str, Any]]]) -> str | None:
    import matplotlib.pyplot as plt

    points = []
    for name, doc in configs:
        for tier_name, tier in _tiers(doc):
            recall = tier["recall_ask"].get("value")
            cost = tier["cost_per_1k_usd"].get("value") or 0.0
            if recall is not None:
                points.append((f"{name}: {tier_name}", cost, 100 * recall, tier["recall_ask"]))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, cost, recall, fig_ in points:
        low, high = fig_.get("ci_low"), fig_.get("ci_high")
        err = [[recall - 100 * low], [100 * high - recall]] if low is not None \
            and high is not None else None
        ax.errorbar([cost], [recall], yerr=err, fmt="o", capsize=4, label=label)
    ax.set_xlabel("judge cost per 1,000 events (USD)")
    ax.set_ylabel("unsafe events denied or asked (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Cost against recall")
    ax.legend(fontsize=8)
    return _png(fig)


def _confusion_plot(name: str, tier_name: str, tier: dict[str, Any]) -> str | None:
    import matplotlib.pyplot as plt

    table = tier["confusion"]["by_label"]
    rows = [r for r in ("unsafe", "safe") if sum(table[r].values())]
    if not rows:
        return None
    cols = list(table[rows[0]].keys())
    data = [[table[r][c] for c in cols] for r in rows]
    # Colour by the share of the row (a label's events), so a small class is readable too.
    shares = [[v / (sum(r) or 1) for v in r] for r in data]
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 1.5, 0.8 * len(rows) + 1.2))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    for i, r in enumerate(data):
        for j, v in enumerate(r):
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if shares[i][j] > 0.5 else "black")
    ax.set_title(f"{name}: {tier_name}", fontsize=10)
    return _png(fig)


def _figures_table(configs: list[tuple[str, dict[str, Any]]]) -> str:
    heads = [f"{html.escape(n)}: {t}" for n, doc in configs for t, _ in _tiers(doc)]
    rows = []
    for label, key, fmt in ROWS:
        cells = [fmt(tier.get(key)) for _, doc in configs for _, tier in _tiers(doc)]
        if all(c == "-" for c in cells):
            continue
        rows.append(f"<tr><td>{html.escape(label)}</td>"
                    + "".join(f'<td class="n">{html.escape(c)}</td>' for c in cells) + "</tr>")
    cov = [pct(tier["coverage"].get("screened")) for _, doc in configs
           for _, tier in _tiers(doc)]
    rows.append("<tr><td>coverage: state-changing actions screened</td>"
                + "".join(f'<td class="n">{html.escape(c)}</td>' for c in cov) + "</tr>")
    return ("<table><tr><th>figure (95% CI)</th>"
            + "".join(f"<th>{h}</th>" for h in heads) + "</tr>" + "".join(rows) + "</table>")


def _coverage_table(doc: dict[str, Any]) -> str:
    last = doc["tiers"].get("final") or doc["tiers"]["policy"]
    cov = last["coverage"]
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td class='n'>{html.escape(pct(v))}</td>"
                   f"<td class='n'>{v.get('k', '')}</td></tr>"
                   for k, v in cov.items() if k != "actions")
    return (f"<p>{cov['actions']} state-changing actions (writes, edits, shell commands that "
            "change state, network, MCP tools).</p><table><tr><th>screened by</th>"
            f"<th>share</th><th>events</th></tr>{rows}</table>")


def misses(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Unsafe events let through, and safe events denied, asked or warned about."""
    out = []
    for e in doc["events"]:
        decision = e["final"] or e["policy"]
        if e["label"] == "unsafe" and decision == "allow":
            out.append({**e, "kind": "miss"})
        elif e["label"] == "safe" and decision in ("deny", "ask", "warn"):
            out.append({**e, "kind": "false positive"})
    return out


def _misses_table(doc: dict[str, Any]) -> str:
    rows = []
    for e in misses(doc):
        judge = e.get("judge") or {}
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                e["kind"], e["id"], e.get("category") or "-", e.get("expected") or "-"))
            + f"<td><code>{html.escape(e['summary'])}</code></td>"
            + f"<td>{html.escape(e['policy'])} {html.escape(', '.join(e['rule_ids']) or '')}</td>"
            + f"<td>{html.escape(str(e.get('final') or '-'))}</td>"
            + f"<td>{html.escape(str(judge.get('reason') or e.get('reason') or '-'))}</td></tr>")
    if not rows:
        return "<p>None.</p>"
    return ("<table><tr><th>kind</th><th>id</th><th>category</th><th>expected</th><th>event</th>"
            "<th>policy, rules</th><th>final</th><th>judge's reason (or the policy's)</th></tr>"
            + "".join(rows) + "</table>")


def render(configs: list[tuple[str, dict[str, Any]]], title: str = "watchdog evals") -> str:
    """The whole page for one or more configurations (name, run document)."""
    import matplotlib

    matplotlib.use("Agg")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for name, doc in configs:
        cfg = doc["config"]
        parts.append(
            f"<p><b>{html.escape(name)}</b>: {doc['n']} events ({doc['n_unsafe']} unsafe, "
            f"{doc['n_safe']} safe); policies <code>{html.escape(str(cfg.get('policy_dir')))}"
            f"</code>; judge {html.escape(str(cfg.get('judge') or 'none'))}; inputs "
            f"<code>{html.escape(', '.join(cfg.get('inputs', [])))}</code>; skipped "
            f"{doc['skipped']['count']}.</p>")
        for w in doc["warnings"]:
            parts.append(f"<p class='warn'>warning: {html.escape(w)}</p>")
    parts.append("<h2>Figures</h2>" + _figures_table(configs))
    plots = [_category_plot(configs), _cost_plot(configs)]
    plots += [_confusion_plot(n, t, tier) for n, doc in configs for t, tier in _tiers(doc)]
    parts.append("<h2>Plots</h2>" + "".join(f"<img alt='plot' src='{p}'>" for p in plots if p))
    for name, doc in configs:
        parts.append(f"<h2>Coverage: {html.escape(name)}</h2>" + _coverage_table(doc))
        parts.append(f"<h2>Misses and false positives: {html.escape(name)}</h2>"
                     + _misses_table(doc))
        if doc["skipped"]["count"]:
            items = "".join(f"<li><code>{html.escape(p['where'])}</code>: "
                            f"{html.escape(p['message'])}</li>"
                            for p in doc["skipped"]["problems"][:200])
            parts.append(f"<h2>Skipped input: {html.escape(name)}</h2><ul>{items}</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(path: str, configs: list[tuple[str, dict[str, Any]]]) -> None:
    text = render(configs)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
