"""Profile the default pack: what each event costs in Rego, per policy file and per rule.

Run with the project's venv:

    .venv/bin/python benchmarks/pack_profile.py [--policy-dir policies] [--against DIR]
        [--events FILE ...] [--long-writes 20] [--rounds 3] [--top 3 | --rules STEM ...]
        [--sample 150] [--no-files] [--only CLASS] [--decisions OUT [--no-timing]] [--json OUT]

Everything runs in one process against bundles compiled by the hook's own builder
(`watchdog.policies.build.build`), queried as `engine.Engine.query` does (the input as JSON
text through `set_input_term`, then the entrypoint), on inputs built as the hook builds them
(the harness's `parse`, `evaluation.base_input`, `input.watchdog.action`, plus
`input.watchdog.shell` when the pack reads it). Events: the labeled datasets
(`evals/datasets/dev.jsonl` and `../shared/datasets/public-dev.jsonl` by default) and
`--long-writes` Write events carrying a whole source file of this checkout (the datasets' file
contents are all short). An event that routes no policy is never queried by the hook, so it is
left out (`--unrouted` queries it anyway: a check that the pack ignores it).

Series, interleaved round-robin in a shuffled order so machine noise hits each alike:

  floor     a one-rule policy (one `contains` on the command) in the same loop: the input's
            JSON parse, the query and the generated aggregation, with next to nothing to evaluate
  pack      the whole pack, as the hook evaluates it
  against   (with --against DIR) another pack, e.g. an earlier version, in the same loop
  per file  `lib/` plus one policy file, for the same events (when any policy routes, the hook
            evaluates every loaded policy, so each file costs on every queried event; each file
            alone also pays for the shared values of lib/, which the pack computes once)
  per rule  for the costliest files (`--top`, or `--rules`), each rule body's marginal cost
            inside the whole pack: the pack against the pack with that body blanked, over a
            sample of `--sample` events

Each event's figure is its median over `--rounds`; p50/p90 are over events of a class (bash,
write, read, other, long) and are printed as ratios against the floor p50 of the same class in
the same run. `--decisions OUT` writes every event's decisions (verb, rule id, reason): two runs
on two versions of the pack, compared line by line, show whether a change kept behaviour.
Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
DEFAULT_EVENTS = [HERE.parent / "evals" / "datasets" / "dev.jsonl",
                  HERE.parent.parent / "shared" / "datasets" / "public-dev.jsonl"]
CLASSES = ("bash", "write", "read", "other", "long")
VERBS = "deny|escalate|halt|block|ask|modify|add_context"
VERB_RE = re.compile(rf"^((?:\w+_)?(?:{VERBS}))\s+contains\b")  # also shell_deny, file_escalate
RULE_ID_RE = re.compile(r'"rule_id"\s*:\s*"([^"]+)"')

FLOOR_POLICY = """\
# METADATA
# scope: package
# title: floor
# custom:
#   routing:
#     required_events: ["PreToolUse"]
package cupcake.policies.floor

import rego.v1

deny contains decision if {
	input.watchdog.action.event == "PreToolUse"
	contains(object.get(input.watchdog.action, "command", ""), "rm -rf /")
	decision := {"rule_id": "FLOOR", "reason": "floor", "severity": "HIGH"}
}
"""


class Case(NamedTuple):
    label: str  # dataset id
    cls: str  # bash | write | read | other
    tool: str
    event: Any  # watchdog.events.Event
    doc_text: str  # the Rego input as the hook sends it (the pack's fields)


class Bundle(NamedTuple):
    name: str
    interp: Any
    bundle: Any
    entry: str
    manifest: dict[str, Any]


# --------------------------------------------------------------------------- building


def root_for(policy_dir: str) -> Any:
    from watchdog.policies import layout

    return layout.resolve_policy_dir(policy_dir, "claude")


def compile_bundle(name: str, roots: list[Any], out_dir: str,
                   exclude: tuple[str, ...] = ()) -> Bundle:
    """Build with the hook's builder (one child-free call), then load it as engine.Engine does."""
    import regopy

    from watchdog.policies import build

    manifest = build.build("claude", roots, out_dir, exclude=exclude, isolate=False)
    if manifest.get("error"):
        raise SystemExit(f"{name}: {manifest['error']['message']}")
    interp = regopy.Interpreter()
    bundle = interp.load_bundle(os.path.join(out_dir, manifest["bundle"]),
                                regopy.BundleFormat.Binary)
    return Bundle(name, interp, bundle, manifest["entrypoints"]["project"][0], manifest)


def policy_files(manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(routed policy files, helper files without routing) that the pack's bundle holds
    (Cupcake builtins that the rulebook leaves off are not in it)."""
    from watchdog.policies import build

    routed = [p["file"] for p in manifest["scopes"]["project"]["policies"]]
    helpers = [m for m in manifest["modules"] if m not in routed and m != build.MAIN_MODULE]
    return routed, helpers


def event_class(tool: str | None, tool_class: str | None) -> str:
    if tool_class == "shell":
        return "bash"
    if tool in ("Write", "Edit", "MultiEdit", "NotebookEdit"):
        return "write"
    if tool == "Read":
        return "read"
    return "other"


def dataset_rows(paths: list[Path]) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, harness, payload) of every labeled row in the datasets."""
    rows = []
    for path in paths:
        if not path.exists():
            print(f"  (skipping {path}: not found)", file=sys.stderr)
            continue
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append((row.get("id", "?"), row.get("harness") or "claude", row["event"]))
    return rows


def long_write_rows(n: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Write events that put a whole source file (this checkout's own, 2-20 KB) into a project:
    the datasets' file contents are all short, an agent's Write often is not, and a regex costs
    by the length of its text."""
    files = sorted((p for p in (HERE.parent / "watchdog").rglob("*.py")
                    if 2000 <= p.stat().st_size <= 20000), key=lambda p: p.stat().st_size)
    picked = files[:: max(1, len(files) // n)][:n] if n > 0 else []
    return [(f"long-{p.name}", "claude", {
        "session_id": "5e0c1d2a-0000-4000-8000-000000000000", "cwd": "/home/dev/app",
        "hook_event_name": "PreToolUse", "tool_name": "Write",
        "tool_input": {"file_path": f"/home/dev/app/src/{p.name}", "content": p.read_text()},
    }) for p in picked]


def load_cases(rows: list[tuple[str, str, dict[str, Any]]], manifest: dict[str, Any],
               unrouted_too: bool = False) -> tuple[list[Case], int]:
    """The rows' events as the hook's inputs; (cases, events routing no policy, which are
    left out unless `unrouted_too`)."""
    from watchdog import evaluation, harnesses, shell
    from watchdog.policies import routing

    info = manifest["scopes"]["project"]
    reads_shell = info.get("reads_shell", True)
    cases: list[Case] = []
    unrouted = 0
    for label, harness, payload in rows:
        event = harnesses.get(harness).parse(payload)
        norm = event.norm
        packages = routing.lookup(info.get("index", {}), event.name, event.tool_name)
        packages += routing.lookup(info.get("common_index", {}), norm.event, norm.tool)
        if not packages:
            unrouted += 1
            if not unrouted_too:
                continue
        base, action = evaluation.base_input(event)
        extra: dict[str, Any] = {"action": action}
        if reads_shell and action.get("tool_class") == "shell":
            extra["shell"] = shell.parse(action["command"], event.cwd, os.path.expanduser("~"))
        doc = {**base, "watchdog": extra}
        cls = "long" if label.startswith("long-") else event_class(norm.tool, norm.tool_class)
        cases.append(Case(label, cls, norm.tool or "?", event, json.dumps(doc)))
    return cases, unrouted


# --------------------------------------------------------------------------- querying


def query(b: Bundle, doc_text: str) -> str:
    """One evaluation as engine.Engine.query makes it; the raw output text."""
    from regopy import rego_shared as rs

    b.interp.set_input_term(doc_text)
    out = rs.rego_bundle_query_entrypoint(b.interp._impl, b.bundle._impl, b.entry)
    try:
        if not rs.rego_output_ok(out):
            raise SystemExit(f"{b.name}: evaluation failed")
        text: str = rs.rego_output_string(out)
    finally:
        rs.rego_free_output(out)
    return text


def decisions(b: Bundle, doc_text: str) -> list[str]:
    """`verb RULE-ID: reason` for every decision the bundle makes on this input, sorted."""
    value = json.loads(query(b, doc_text))["expressions"][0]
    out = []
    for key, items in sorted((value.get("set") or {}).items()):
        out += [f"{key} {m.get('rule_id', '?')}: {m.get('reason')}" for m in items
                if isinstance(m, dict)]
    out += [f"escalate {m.get('rule_id', '?')}: {m.get('reason')}"
            for m in value.get("escalate") or [] if isinstance(m, dict)]
    return sorted(out)


def measure(bundles: list[Bundle], cases: list[Case], rounds: int, rng: random.Random,
            stat: Any = statistics.median) -> dict[str, list[float]]:
    """name -> per-case `stat` (median) of ms over rounds, interleaved: per case, every bundle
    once in a shuffled order, round after round."""
    samples: dict[str, list[list[float]]] = {b.name: [[] for _ in cases] for b in bundles}
    for b in bundles:  # first-call costs out of the way
        for case in cases[:5]:
            query(b, case.doc_text)
    order = list(bundles)
    for _ in range(rounds):
        for i, case in enumerate(cases):
            rng.shuffle(order)
            for b in order:
                t0 = time.perf_counter()
                query(b, case.doc_text)
                samples[b.name][i].append((time.perf_counter() - t0) * 1000)
    return {name: [stat(s) for s in per] for name, per in samples.items()}


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def by_class(cases: list[Case], ms: list[float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for cls in (*CLASSES, "all"):
        vals = [m for c, m in zip(cases, ms, strict=True) if cls in ("all", c.cls)]
        if vals:
            out[cls] = {"n": len(vals), "p50": quantile(vals, 0.5), "p90": quantile(vals, 0.9),
                        "mean": statistics.fmean(vals)}
    return out


# --------------------------------------------------------------------------- rule bodies


def blocks(source: str) -> list[tuple[int, int, str]]:
    """Top-level statements of a Rego file: (first line, last line, text); comments directly
    above a statement belong to it."""
    lines = source.splitlines()
    starts = [i for i, ln in enumerate(lines)
              if ln and not ln[0].isspace() and ln[0] not in "}#)]"]
    out = []
    for n, start in enumerate(starts):
        end = (starts[n + 1] if n + 1 < len(starts) else len(lines)) - 1
        while end > start and (not lines[end].strip() or lines[end].startswith("#")):
            end -= 1
        out.append((start, end, "\n".join(lines[start:end + 1])))
    return out


def rule_bodies(source: str) -> list[tuple[int, int, str, str]]:
    """(first line, last line, verb, label) of each verb body (deny/escalate/...)."""
    named: dict[str, str] = {}  # decision constants: `persist := {"rule_id": ...}`
    for _, _, text in blocks(source):
        head = re.match(r"(\w+)\s*:=\s*\{", text)
        rid = RULE_ID_RE.search(text)
        if head and rid:
            named[head.group(1)] = rid.group(1)
    out = []
    for start, end, text in blocks(source):
        verb = VERB_RE.match(text)
        if not verb or "some decision in" in text:  # not a rule: a router into a rule set
            continue
        rid = RULE_ID_RE.search(text)
        if rid:
            label = rid.group(1)
        else:
            ref = re.search(r"decision\s*:=\s*(\w+)\s*$", text, re.M)
            label = named.get(ref.group(1), ref.group(1)) if ref else "?"
        out.append((start, end, verb.group(1), label))
    return out


def only_body(source: str, keep: int, drop: bool = False) -> str:
    """The file with every verb body but the keep-th blanked, or (drop) with only the keep-th
    blanked; line numbers kept."""
    lines = source.splitlines()
    for n, (start, end, _, _) in enumerate(rule_bodies(source)):
        if (n == keep) == drop:
            for i in range(start, end + 1):
                lines[i] = ""
    return "\n".join(lines) + "\n"


def sample_cases(cases: list[Case], n: int, rng: random.Random) -> list[Case]:
    """About n cases, each class in its share (at least 3 of each when it has them)."""
    if n <= 0 or n >= len(cases):
        return cases
    out: list[Case] = []
    for cls in CLASSES:
        of = [c for c in cases if c.cls == cls]
        k = min(len(of), max(3, round(n * len(of) / len(cases))))
        out += rng.sample(of, k)
    return out


def ablate(pack: Bundle, modules: list[str], root: Any, path: str, cases: list[Case],
           rounds: int, rng: random.Random, tmp: Path) -> dict[str, Any]:
    """Each verb body's marginal cost inside the whole pack: the pack against the pack with
    that body blanked, per event (what it adds once the shared values are computed)."""
    source = Path(path).read_text()
    stem = Path(path).stem
    variants: list[tuple[str, Bundle]] = []
    for n, (start, _, verb, label) in enumerate(rule_bodies(source)):
        vroot = tmp / f"ablate-{stem}-{n}"
        for module in modules:
            rel = os.path.relpath(module, root.common_dir)
            target = vroot / "common" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            text = only_body(source, n, drop=True) if module == path else Path(module).read_text()
            target.write_text(text)
        name = f"{stem}.rego:{start + 1} {verb} {label}"
        variants.append((name, compile_bundle(name, [root_for(str(vroot))],
                                              str(tmp / f"ablate-b-{stem}-{n}"))))
    # The fastest of the rounds: a difference of 0.1 ms drowns in the noise of a busy machine,
    # which only ever adds time.
    per = measure([pack, *(b for _, b in variants)], cases, rounds, rng, stat=min)
    out: dict[str, Any] = {}
    for name, b in variants:
        diffs = [p - v for p, v in zip(per["pack"], per[b.name], strict=True)]
        out[name] = {cls: statistics.fmean([d for c, d in zip(cases, diffs, strict=True)
                                            if cls in ("all", c.cls)])
                     for cls in (*CLASSES, "all") if any(cls in ("all", c.cls) for c in cases)}
    pack_stats = by_class(cases, per["pack"])
    print(f"\nRule bodies of {stem}.rego: marginal cost inside the pack (the pack minus the "
          f"pack without the body, fastest of {rounds} rounds), mean per event over "
          f"{len(cases)} events, and its share of the pack's mean")
    for name in sorted(out, key=lambda n: -out[n]["all"]):
        cells = "   ".join(f"{cls} {ms * 1000:5.0f} us {100 * ms / pack_stats[cls]['mean']:4.1f}%"
                           for cls, ms in out[name].items())
        print(f"  {name:<44}{cells}")
    return out


# --------------------------------------------------------------------------- report


def ratio(a: float, b: float) -> str:
    return f"{a / b:6.2f}x" if b else "    - "


def print_series(title: str, stats: dict[str, dict[str, float]],
                 floor: dict[str, dict[str, float]]) -> None:
    cells = []
    for cls in (*CLASSES, "all"):
        if cls in stats:
            s, f = stats[cls], floor[cls]["p50"]
            cells.append(f"{cls} {ratio(s['p50'], f)} / {ratio(s['p90'], f)}")
    print(f"  {title:<34}" + "   ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy-dir", default=str(HERE.parent / "policies"))
    parser.add_argument("--events", nargs="+", type=Path, default=DEFAULT_EVENTS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=3,
                        help="profile rule by rule inside the N costliest files (0: none)")
    parser.add_argument("--rules", nargs="*", default=None,
                        help="policy files (by stem) to profile rule by rule instead of --top")
    parser.add_argument("--no-files", action="store_true", help="skip the per-file series")
    parser.add_argument("--sample", type=int, default=150,
                        help="events for the rule-by-rule series (0: all)")
    parser.add_argument("--decisions", type=Path,
                        help="write each event's decisions (verb, rule id) as JSON lines")
    parser.add_argument("--against", type=Path,
                        help="another policy root (an earlier pack), measured in the same loop")
    parser.add_argument("--only", choices=CLASSES, help="events of this class only")
    parser.add_argument("--long-writes", type=int, default=20,
                        help="Write events of whole source files added (class long; 0: none)")
    parser.add_argument("--unrouted", action="store_true",
                        help="query events that route no policy too (as when another policy "
                        "routes them): a check that the pack ignores them")
    parser.add_argument("--no-timing", action="store_true",
                        help="only compile and write --decisions (to compare two versions)")
    parser.add_argument("--json", type=Path, help="write every figure as JSON")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    root = root_for(args.policy_dir)
    with tempfile.TemporaryDirectory(prefix="wd-pack-profile-") as tmp:
        t0 = time.perf_counter()
        pack = compile_bundle("pack", [root], os.path.join(tmp, "pack"))
        routed, helpers = policy_files(pack.manifest)
        floor_root = Path(tmp) / "floor-root"
        (floor_root / "common").mkdir(parents=True)
        (floor_root / "common" / "floor.rego").write_text(FLOOR_POLICY)
        floor = compile_bundle("floor", [root_for(str(floor_root))], os.path.join(tmp, "floor"))
        rows = dataset_rows(args.events) + long_write_rows(args.long_writes)
        cases, unrouted = load_cases(rows, pack.manifest, args.unrouted)
        if args.only:
            cases = [c for c in cases if c.cls == args.only]
        counts = {cls: sum(c.cls == cls for c in cases) for cls in CLASSES}
        print(f"pack: {len(routed)} policies + {len(helpers)} helper file(s) from {root.path}; "
              f"compiled in {time.perf_counter() - t0:.1f} s")
        print(f"events: {len(cases)} queried ({', '.join(f'{k} {v}' for k, v in counts.items())})"
              f", {unrouted} routing no policy"
              + (" (queried too)" if args.unrouted else " (never queried)"))
        if args.decisions:
            with args.decisions.open("w") as fh:
                for case in cases:
                    fh.write(json.dumps({"id": case.label, "tool": case.tool,
                                         "decisions": decisions(pack, case.doc_text)}) + "\n")
            print(f"decisions written to {args.decisions}")
        if args.no_timing:
            return 0

        series = [floor, pack]
        if args.against:
            series.append(compile_bundle("against", [root_for(str(args.against))],
                                         os.path.join(tmp, "against")))
        medians = measure(series, cases, args.rounds, rng)
        stats_of = {b.name: by_class(cases, medians[b.name]) for b in series}
        floor_stats, pack_stats = stats_of["floor"], stats_of["pack"]
        result: dict[str, Any] = {"events": counts, "unrouted": unrouted,
                                  "rounds": args.rounds, "floor": floor_stats,
                                  "pack": pack_stats, "against": stats_of.get("against"),
                                  "files": {}, "rules": {}}
        titles = {"floor": "floor (one-rule policy)", "pack": "pack",
                  "against": f"against {args.against}"}
        print(f"\nPer event, ms (median of {args.rounds} rounds per event; p50 / p90 over events)")
        for b in series:
            cells = "   ".join(f"{cls} {s['p50']:.2f} / {s['p90']:.2f}"
                               for cls, s in stats_of[b.name].items())
            print(f"  {titles[b.name]:<34}{cells}")
        print("\nAgainst the floor p50 of the same class (p50 / p90)")
        for b in series[1:]:
            print_series(titles[b.name], stats_of[b.name], floor_stats)

        file_stats: dict[str, dict[str, dict[str, float]]] = {}
        if not args.no_files:
            singles = []
            for path in routed:
                others = tuple(p for p in routed if p != path)
                stem = Path(path).stem
                singles.append(compile_bundle(stem, [root], os.path.join(tmp, stem), others))
            per_file = measure([floor, *singles], cases, args.rounds, rng)
            for b in singles:
                file_stats[b.name] = by_class(cases, per_file[b.name])
            result["files"] = file_stats
            print("\nEach policy file alone (lib + the file), ranked by mean cost over all events")
            ranked = sorted(file_stats, key=lambda n: -file_stats[n]["all"]["mean"])
            refloor = by_class(cases, per_file["floor"])
            for name in ranked:
                print_series(name, file_stats[name], refloor)
            total = sum(file_stats[n]["all"]["mean"] for n in ranked)
            print(f"  sum of file means {total:.2f} ms vs pack mean "
                  f"{pack_stats['all']['mean']:.2f} ms vs floor mean "
                  f"{refloor['all']['mean']:.2f} ms")
            chosen = args.rules if args.rules is not None else ranked[:args.top]
        else:
            chosen = args.rules or []
        sample = sample_cases(cases, args.sample, rng)
        for stem in chosen:
            path = next((p for p in routed if Path(p).stem == stem), None)
            if path is None:
                print(f"\n(no policy file named {stem})")
                continue
            result["rules"][stem] = ablate(pack, routed + helpers, root, path, sample,
                                           args.rounds, rng, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
