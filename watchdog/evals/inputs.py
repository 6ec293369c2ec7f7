"""The paths given to `watchdog evals` into streams of cases: which files, of which kind.

A path is a file or a folder (searched recursively for `*.jsonl`, in sorted order, so a run is
repeatable). Each file's kind is told from its first JSON object:

* `{"step": ..., "event": ...}`: one labeled session (datasets.load_session)
* `{"event": ...}`: a labeled event dataset (datasets.load_dataset)
* `{"type": ..., ...}` with `sessionId`/`uuid`: a Claude Code transcript (transcripts)

A subagent's transcript (`<session>/subagents/agent-<id>.jsonl`) found in a folder is replayed
inside its parent session, at the Agent tool call that started it, never on its own. Ids must be
unique across all inputs: `--judge recorded:RUN` finds earlier verdicts by id.
"""

from __future__ import annotations

import os
from typing import Literal

from watchdog.errors import WatchdogError
from watchdog.evals import datasets, transcripts
from watchdog.evals.cases import Problem, Stream
from watchdog.evals.datasets import STEP_INTERVAL_S

Kind = Literal["dataset", "session", "transcript"]
_SNIFF_LINES = 20


class EvalInputError(WatchdogError):
    """An input path that cannot be used at all (missing, empty, nothing to evaluate)."""

    kind = "eval_input_error"


def sniff(path: str) -> Kind | None:
    """The file's kind from its first JSON object (None when there is none to go by)."""
    import json

    try:
        lines = datasets.read_lines(path)
        for count, (_, text) in enumerate(lines):
            if count >= _SNIFF_LINES:
                break
            try:
                obj = json.loads(text)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if "event" in obj:
                return "session" if "step" in obj else "dataset"
            if "type" in obj or "sessionId" in obj or "parentUuid" in obj:
                return "transcript"
            return None
    except OSError:
        return None
    return None


def _is_subagent(path: str) -> bool:
    parts = os.path.normpath(path).split(os.sep)
    return "subagents" in parts[:-1]


def files(paths: list[str]) -> list[str]:
    """Every input file, in a stable order; EvalInputError for a path that gives none."""
    out: list[str] = []
    for path in paths:
        if os.path.isfile(path):
            out.append(path)
            continue
        if not os.path.isdir(path):
            raise EvalInputError(
                f"{path} does not exist. Pass labeled datasets (.jsonl), session files, Claude "
                "Code transcripts (~/.claude/projects/<project>/), or folders of them.")
        found: list[str] = []
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [os.path.join(root, n) for n in sorted(names) if n.endswith(".jsonl")]
        found = [f for f in found if not _is_subagent(f)]
        if not found:
            raise EvalInputError(f"{path} holds no .jsonl files: nothing to evaluate there.")
        out += found
    return out


def load(paths: list[str], problems: list[Problem],
         interval_s: float = STEP_INTERVAL_S) -> list[Stream]:
    """All streams of all inputs; unusable lines and files are added to `problems`."""
    streams: list[Stream] = []
    seen: dict[str, str] = {}
    for path in files(paths):
        kind = sniff(path)
        try:
            if kind == "dataset":
                streams += datasets.load_dataset(path, problems, seen)
            elif kind == "session":
                streams += datasets.load_session(path, problems, seen, interval_s)
            elif kind == "transcript":
                streams += transcripts.load_transcript(path, problems, seen)
            else:
                problems.append(Problem(path, "unknown_file", (
                    "not a labeled dataset, a session file or a Claude Code transcript (no line "
                    f"in its first {_SNIFF_LINES} is a JSON object with 'event' or 'type'): "
                    "skipped")))
        except OSError as exc:
            problems.append(Problem(path, "unreadable", f"cannot read it ({exc.strerror}): "
                                    "skipped"))
    return streams
