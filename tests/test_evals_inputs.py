"""Bad input to the eval harness: every unusable line or file is reported with file:line,
skipped and counted; the run goes on with the rest, and never reports figures over zero
events. Usage errors exit 1, never argparse's 2."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from watchdog.evals import cli, inputs
from watchdog.evals.cases import Problem

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "evals"
BAD = FIXTURES / "bad.jsonl"
SESSION = FIXTURES / "session.jsonl"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """HOME and the XDG dirs in tmp_path; no WATCHDOG_* settings from the outside."""
    for key in list(os.environ):
        if key.startswith(("WATCHDOG_", "XDG_")):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    yield


def test_bad_dataset_lines_are_reported_by_file_line_and_skipped() -> None:
    problems: list[Problem] = []
    streams = inputs.load([str(BAD)], problems)
    assert [c.id for s in streams for c in s.cases] == ["bad-01", "bad-10"]
    assert [(p.where.rsplit(":", 1)[1], p.kind) for p in problems] == [
        ("2", "bad_json"), ("3", "no_label"), ("4", "unknown_event"), ("5", "bad_row"),
        ("6", "duplicate_id"), ("7", "bad_label"), ("8", "bad_event")]
    assert all(p.where.startswith(str(BAD)) for p in problems)
    messages = [p.message for p in problems]
    assert "truncated" in messages[0]
    assert "label the row" in messages[1]
    assert "'PreTooluse'" in messages[2]
    assert "bad.jsonl:1" in messages[4]


def test_session_steps_replay_in_step_order_on_the_clock() -> None:
    problems: list[Problem] = []
    [stream] = inputs.load([str(SESSION)], problems, interval_s=3.0)
    assert problems == []
    assert [c.id for c in stream.cases] == [f"session#{i}" for i in range(1, 7)]
    assert [c.time for c in stream.cases] == [3.0 * i for i in range(1, 7)]
    assert stream.cases[3].prompts == ("Deploy the preview and tidy up",)
    assert {c.group for c in stream.cases} == {str(SESSION)}
    assert not any(c.inline for c in stream.cases)


def test_session_problems(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in SESSION.read_text().splitlines()]
    rows.append(dict(rows[0]))  # a second step 1
    del rows[1]["label"]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems: list[Problem] = []
    [stream] = inputs.load([str(path)], problems)
    assert sorted(p.kind for p in problems) == ["duplicate_step", "no_label"]
    assert len(stream.cases) == 5


def test_unknown_and_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "notes.jsonl").write_text('{"hello": "world"}\n')
    (tmp_path / "README.md").write_text("not an input")
    problems: list[Problem] = []
    assert inputs.load([str(tmp_path)], problems) == []
    assert [(p.kind, Path(p.where).name) for p in problems] == [("unknown_file", "notes.jsonl")]


def test_missing_path_and_empty_folder_are_errors(tmp_path: Path) -> None:
    with pytest.raises(inputs.EvalInputError, match="does not exist"):
        inputs.files([str(tmp_path / "nope.jsonl")])
    with pytest.raises(inputs.EvalInputError, match="no .jsonl files"):
        inputs.files([str(tmp_path)])


# -- through the command line -------------------------------------------------------------------


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_run_reports_skipped_lines_and_counts_them(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The run goes on with the good rows; stderr lists every bad one as file:line."""
    out_json = tmp_path / "run.json"
    code, out, err = run(["run", str(BAD), "--policy-dir", str(REPO / "policies"),
                          "--json", str(out_json), "--resamples", "50"], capsys)
    assert code == 0
    assert f"{BAD}:2: not valid JSON" in err
    assert f"{BAD}:4: unknown hook_event_name" in err
    assert "skipped 7 input lines" in out
    doc = json.loads(out_json.read_text())
    assert doc["n"] == 2
    assert doc["skipped"]["count"] == 7
    assert doc["skipped"]["by_kind"]["bad_json"] == 1
    assert {p["where"] for p in doc["skipped"]["problems"]} == {f"{BAD}:{i}" for i in range(2, 9)}
    assert "Traceback" not in err


def test_strict_fails_on_skipped_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(["run", str(BAD), "--policy-dir", str(REPO / "policies"), "--strict",
                      "--resamples", "0"], capsys)
    assert code == 1


def test_zero_events_is_an_error_not_figures(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "all-bad.jsonl"
    bad.write_text('{"id": "x", "event": {"hook_event_name": "PreToolUse"}}\n{"truncated\n')
    out_json = tmp_path / "run.json"
    code, out, err = run(["run", str(bad), "--json", str(out_json)], capsys)
    assert code == 1
    assert "no figures are reported over zero events" in err.lower()
    assert f"{bad}:1: no 'label'" in err and f"{bad}:2: not valid JSON" in err
    assert out == "" and not out_json.exists()


def test_every_event_failing_in_the_policies_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A policy that fails to compile: each event is reported, then no figures."""
    root = tmp_path / "broken" / "policies" / "claude"
    root.mkdir(parents=True)
    (root / "b.rego").write_text(
        "# METADATA\n# scope: package\n# custom:\n#   routing:\n"
        '#     required_events: ["PreToolUse"]\npackage cupcake.policies.b\n\n'
        "import rego.v1\n\ndeny contains x if {\n")
    code, out, err = run(["run", str(FIXTURES / "small.jsonl"), "--policy-dir",
                          str(tmp_path / "broken")], capsys)
    assert code == 1
    assert "no events were evaluated" in err
    assert f"{FIXTURES / 'small.jsonl'}:1:" in err
    assert out == ""


@pytest.mark.parametrize("argv", [
    ["run"],
    ["run", "x.jsonl", "--repeats", "0"],
    ["diff", "x.jsonl", "--policy-dir", "."],
    ["run", "x.jsonl", "--policy-dir", "/no/such/dir"],
    ["run", "x.jsonl", "--fake-verdict", "{}"],
    ["run", "x.jsonl", "--judge", "recorded:"],
    ["frobnicate"],
])
def test_usage_errors_exit_1(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(argv, capsys)
    assert code == 1
    assert "error:" in err and "Traceback" not in err


def test_missing_input_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["run", str(tmp_path / "nope.jsonl")], capsys)
    assert code == 1 and "does not exist" in err


def test_recorded_run_that_is_not_a_run(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"kind": "something else"}')
    code, _, err = run(["run", str(FIXTURES / "small.jsonl"), "--judge",
                        f"recorded:{other}"], capsys)
    assert code == 1 and "is not the --json output" in err


def test_events_without_policies_get_the_default_pack_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --policy-dir, policies are found from each event's cwd as the hook does; a
    dataset's fictional cwd has none, so the shipped default pack decides, and the run says
    so."""
    out_json = tmp_path / "run.json"
    code, out, _ = run(["run", str(FIXTURES / "small.jsonl"), "--json", str(out_json),
                        "--resamples", "0"], capsys)
    assert code == 0
    doc = json.loads(out_json.read_text())
    assert doc["warnings"][0].startswith("10 of 10 events found no policies")
    assert "shipped default pack" in doc["warnings"][0]
    assert "pass --policy-dir" in out


def test_a_policy_folder_that_checks_nothing_is_an_error_not_a_table_of_zeros(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty policies/claude/ would score 0% recall over every event: no table, exit 1,
    and the message says why and what to do."""
    empty = tmp_path / "empty"
    (empty / "policies" / "claude").mkdir(parents=True)
    code, out, err = run(["run", str(FIXTURES / "small.jsonl"), "--policy-dir", str(empty),
                          "--resamples", "0"], capsys)
    assert code == 1
    assert "holds no routed policy" in err and "--policy-dir" in err
    assert "recall" not in out
